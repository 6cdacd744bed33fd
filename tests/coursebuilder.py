"""Build tiny but real course folders (solutions, exercises, submissions) for tests.

Two chapters: ``99_toy.ipynb`` (plain Python, check code written inline in the check
cells) and ``98_tensors.ipynb`` (torch: a function and an ``nn.Module`` class, checks
that call ``ck.checks.assertions`` through the ``ck`` module the way chapter checks
call ``ck.checks.chNN``, a hidden test, and a check that draws from the global random
generator). ``coursekit grade`` and the benchmark use them. ``make_course(written=True)``
adds a written answer to the toy chapter (a markdown cell a person marks, worth 2).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from coursekit.authoring.release import release

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0, quiet=True)"

ANSWER_DOUBLE = """def double(x):
    \"\"\"Return twice x.\"\"\"
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION"""

CHECK_DOUBLE = """from coursekit.checks.assertions import fail, passed
for x in [0, 1, -3, 2.5]:
    if double(x) != 2 * x:
        fail("check_double", f"double({x})", 2 * x, double(x), "multiply by two")
passed("check_double")
### BEGIN HIDDEN TESTS
if double(1000) != 2000:
    fail("check_double", "hidden case double(1000)", 2000, double(1000), "no special cases")
### END HIDDEN TESTS"""

ANSWER_SQUARE = """def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION"""

CHECK_SQUARE = """from coursekit.checks.assertions import fail, passed
for x in [0, 2, -3]:
    if square(x) != x * x:
        fail("check_square", f"square({x})", x * x, square(x), "x times x")
passed("check_square")"""


RUN_FIRST_TENSORS = "import coursekit as ck\ndevice = ck.setup(seed=0, quiet=True)\nimport torch"

ANSWER_SOFTMAX = """def softmax(z):
    \"\"\"Softmax over the last axis: z (B, K) -> probabilities (B, K).\"\"\"
    ### BEGIN SOLUTION
    z = z - z.max(dim=-1, keepdim=True).values
    return z.exp() / z.exp().sum(dim=-1, keepdim=True)
    ### END SOLUTION"""

CHECK_SOFTMAX = """z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
got = ck.checks.assertions.call("check_softmax", softmax, z, what="softmax(z)")
ck.checks.assertions.expect_close("check_softmax", "softmax of two rows", got,
                                  torch.softmax(z, dim=-1), hint="exp(z) / sum of exp(z)")
ck.checks.assertions.passed("check_softmax")
### BEGIN HIDDEN TESTS
big = torch.tensor([[1000.0, 1001.0]])
got = ck.checks.assertions.call("check_softmax", softmax, big, what="softmax(big)")
ck.checks.assertions.expect_close("check_softmax", "hidden case: large logits", got,
                                  torch.softmax(big, dim=-1), hint="subtract the max first")
### END HIDDEN TESTS"""

ANSWER_SCALE = """class Scale(torch.nn.Module):
    \"\"\"y = w * x with one learnable number w, initialised to w0.\"\"\"

    def __init__(self, w0=2.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.w = torch.nn.Parameter(torch.tensor(float(w0)))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.w * x
        ### END SOLUTION"""

CHECK_SCALE = """x = torch.randn(5)
model = ck.checks.assertions.call("check_scale", Scale, 3.0, what="Scale(3.0)")
got = ck.checks.assertions.call("check_scale", model, x, what="Scale(3.0)(x)")
ck.checks.assertions.expect_close("check_scale", "Scale(3.0)(x) for a random x", got, 3.0 * x)
n = sum(p.numel() for p in model.parameters())
if n != 1:
    ck.checks.assertions.fail("check_scale", "number of parameters", 1, n,
                              "make w a torch.nn.Parameter")
ck.checks.assertions.passed("check_scale")"""


def meta_answer(gid: str) -> dict:
    return {"nbgrader": {"grade": False, "solution": True, "locked": False,
                         "grade_id": gid, "schema_version": 3}}


def meta_check(gid: str, points: float) -> dict:
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": gid,
                         "points": points, "schema_version": 3}, "tags": ["check"]}


WRITTEN_ANSWER = """### BEGIN SOLUTION
Doubling is linear and squaring is not: double(a + b) = double(a) + double(b).
### END SOLUTION"""


def meta_written(gid: str, points: float) -> dict:
    return {"nbgrader": {"grade": True, "solution": True, "locked": False, "grade_id": gid,
                         "points": points, "schema_version": 3}}


def solution_notebook(written: bool = False):
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell("# Toy exercises\nWrite `double` and `square`."),
        v4.new_code_cell(RUN_FIRST),
        v4.new_code_cell(ANSWER_DOUBLE, metadata=meta_answer("double_answer")),
        v4.new_code_cell(CHECK_DOUBLE, metadata=meta_check("check_double", 2)),
        v4.new_markdown_cell("Now squares."),
        v4.new_code_cell(ANSWER_SQUARE, metadata=meta_answer("square_answer")),
        v4.new_code_cell(CHECK_SQUARE, metadata=meta_check("check_square", 1)),
    ]
    if written:
        cells += [v4.new_markdown_cell("In one sentence: which of the two is linear?"),
                  v4.new_markdown_cell(WRITTEN_ANSWER, metadata=meta_written("linear_answer", 2))]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def tensor_solution_notebook():
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell("# Tensor exercises\nWrite `softmax` and the `Scale` module."),
        v4.new_code_cell(RUN_FIRST_TENSORS),
        v4.new_code_cell(ANSWER_SOFTMAX, metadata=meta_answer("softmax_answer")),
        v4.new_code_cell(CHECK_SOFTMAX, metadata=meta_check("check_softmax", 2)),
        v4.new_markdown_cell("A module with one parameter."),
        v4.new_code_cell(ANSWER_SCALE, metadata=meta_answer("scale_answer")),
        v4.new_code_cell(CHECK_SCALE, metadata=meta_check("check_scale", 3)),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_course(root: Path, name: str = "99_toy.ipynb", written: bool = False) -> tuple[Path, Path]:
    """Write root/solutions/NAME and its released root/exercises/NAME."""
    (root / "solutions").mkdir(parents=True, exist_ok=True)
    nbformat.write(solution_notebook(written), root / "solutions" / name)
    release(root / "solutions", root / "exercises")
    return root / "solutions" / name, root / "exercises" / name


def make_tensor_course(root: Path, name: str = "98_tensors.ipynb") -> tuple[Path, Path]:
    """Write root/solutions/NAME (the torch chapter) and its released exercise."""
    (root / "solutions").mkdir(parents=True, exist_ok=True)
    nbformat.write(tensor_solution_notebook(), root / "solutions" / name)
    release(root / "solutions", root / "exercises")
    return root / "solutions" / name, root / "exercises" / name


def submit(root: Path, learner: str, nb, name: str = "99_toy.ipynb") -> Path:
    """Write a learner's notebook (a NotebookNode, str or bytes) as a submission."""
    folder = root / "submissions" / learner
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    elif isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, path)
    return path


def answer(exercise_nb, gid: str, source: str):
    """Return a copy of the exercise notebook with the answer cell ``gid`` replaced."""
    nb = nbformat.from_dict(exercise_nb)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid:
            cell.source = source
            return nb
    raise KeyError(gid)


def cell_with(nb, gid: str):
    """The cell of ``nb`` whose nbgrader grade_id is ``gid``."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid:
            return cell
    raise KeyError(gid)


def with_cell_after(nb, gid: str, source: str):
    """A copy of ``nb`` with a new code cell right after the cell ``gid``."""
    nb = nbformat.from_dict(nb)
    index = nb.cells.index(cell_with(nb, gid))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb
