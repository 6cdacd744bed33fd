"""Build tiny but real course folders (solutions, exercises, submissions) for tests."""
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


def meta_answer(gid: str) -> dict:
    return {"nbgrader": {"grade": False, "solution": True, "locked": False,
                         "grade_id": gid, "schema_version": 3}}


def meta_check(gid: str, points: float) -> dict:
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": gid,
                         "points": points, "schema_version": 3}, "tags": ["check"]}


def solution_notebook():
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
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_course(root: Path, name: str = "99_toy.ipynb") -> tuple[Path, Path]:
    """Write root/solutions/NAME and its released root/exercises/NAME."""
    (root / "solutions").mkdir(parents=True, exist_ok=True)
    nbformat.write(solution_notebook(), root / "solutions" / name)
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
