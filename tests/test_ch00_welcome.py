"""Chapter 00: the warm-up checks, the lesson's inline-vs-package loop, notebook structure."""
import nbformat
import pytest
import torch
import torch.nn.functional as F

from coursekit.checks import CheckFailure, ch00
from nbtools import exec_tagged_cells, notebook

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"


# -- reference answers and typical wrong answers ------------------------------------------

def checkerboard(h, w):
    return ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0).float()


def standardise(x):
    return (x - x.mean(0)) / (x.std(0, correction=0) + 1e-8)


def one_hot(labels, n_classes):
    return F.one_hot(labels, n_classes).float()


def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean()


def to_fahrenheit(c):
    return c * 9 / 5 + 32


def stub(*args):
    raise NotImplementedError()


def _standardise_in_place(x):
    x -= x.mean(0)
    x /= x.std(0, correction=0) + 1e-8
    return x


REFERENCES = {
    ch00.check_checkerboard: checkerboard,
    ch00.check_standardise: standardise,
    ch00.check_one_hot: one_hot,
    ch00.check_accuracy: accuracy,
    ch00.check_fahrenheit: to_fahrenheit,
}

WRONG = [
    # (check, wrong answer, words the failure message must contain)
    (ch00.check_checkerboard, lambda h, w: 1 - checkerboard(h, w), "colours are swapped"),
    (ch00.check_checkerboard, lambda h, w: checkerboard(h, w).long(), "should hold floats"),
    (ch00.check_checkerboard, lambda h, w: checkerboard(w, h), "wrong shape"),
    (ch00.check_checkerboard, lambda h, w: torch.ones(h, w), "(i + j) % 2"),
    (ch00.check_checkerboard, lambda h, w: checkerboard(h, w).tolist(), "torch.Tensor"),
    (ch00.check_checkerboard, checkerboard(2, 3), "should be a function"),
    (ch00.check_standardise, lambda x: (x - x.mean(1, keepdim=True)) / (x.std(1, correction=0, keepdim=True) + 1e-8),
     "each row"),
    (ch00.check_standardise, lambda x: (x - x.mean(0)) / (x.std(0) + 1e-8), "correction=0"),
    (ch00.check_standardise, lambda x: x / (x.std(0, correction=0) + 1e-8), "subtract the column means"),
    (ch00.check_standardise, lambda x: (x - x.mean(0)) / x.std(0, correction=0), "NaN"),
    (ch00.check_standardise, _standardise_in_place, "in place"),
    (ch00.check_standardise, lambda x: x.std(0), "wrong shape"),
    (ch00.check_one_hot, lambda y, c: F.one_hot(y, c), "one_hot returns int64"),
    (ch00.check_one_hot, lambda y, c: F.one_hot(y).float(), "labels.max() + 1"),
    (ch00.check_one_hot, lambda y, c: one_hot(y, c).T, "transposed"),
    (ch00.check_one_hot, lambda y, c: torch.ones(len(y), c), "single 1"),
    (ch00.check_accuracy, lambda z, y: (z.argmax(1) == y).sum(), "number of right answers"),
    (ch00.check_accuracy, lambda z, y: 100 * accuracy(z, y), "not a percentage"),
    (ch00.check_accuracy, lambda z, y: (z.argmax(1) == y).float(), "one number"),
    (ch00.check_accuracy, lambda z, y: (z.argmin(1) == y).float().mean(), "argmax(dim=1)"),
    (ch00.check_fahrenheit, lambda c: c * 9 / 5, "offset is missing"),
    (ch00.check_fahrenheit, lambda c: (c + 32) * 9 / 5, "mind the brackets"),
    (ch00.check_fahrenheit, lambda c: None, "return statement"),
    (ch00.check_fahrenheit, lambda c: c + 32, "Fahrenheit = Celsius * 9 / 5 + 32"),
]


@pytest.mark.parametrize("check", REFERENCES, ids=lambda c: c.__name__)
def test_check_passes_on_the_reference(check, capsys):
    check(REFERENCES[check])
    assert capsys.readouterr().out.startswith(f"PASSED {check.__name__}")


@pytest.mark.parametrize("check", REFERENCES, ids=lambda c: c.__name__)
def test_check_fails_on_the_stub(check):
    with pytest.raises(CheckFailure, match="not written yet"):
        check(stub)


@pytest.mark.parametrize("check, wrong, says", WRONG,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_check_fails_on_a_typical_wrong_answer(check, wrong, says):
    with pytest.raises(CheckFailure) as info:
        check(wrong)
    message = str(info.value)
    assert says in message, message
    assert message.startswith(f"{check.__name__} failed")


# -- notebooks -------------------------------------------------------------------------------

def test_lesson_loop_by_hand_equals_ck_train():
    """The lesson's hand-written training loop and its ck.train version give the same line."""
    path = notebook("notebooks", "00")
    by_hand = exec_tagged_cells(path, "inline")
    with_ck = exec_tagged_cells(path, "package")
    assert len(by_hand["losses"]) == len(with_ck["history"]["loss"]) == by_hand["n_steps"]
    torch.testing.assert_close(torch.tensor(with_ck["history"]["loss"]),
                               torch.tensor(by_hand["losses"]), rtol=1e-6, atol=1e-7)
    assert abs(with_ck["w_package"] - by_hand["w_inline"]) < 1e-6
    assert abs(with_ck["b_package"] - by_hand["b_inline"]) < 1e-6
    assert by_hand["losses"][-1] < by_hand["losses"][0] / 5   # it did learn (fast mode too)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_notebooks_start_with_the_run_this_first_cell(folder):
    path = notebook(folder, "00")
    assert _code_cells(nbformat.read(path, as_version=4))[0].source == RUN_FIRST
    text = nbformat.read(path, as_version=4).cells[0].source
    assert text.startswith("# 00")


def test_lesson_has_objectives_recap_and_further_reading():
    md = "\n".join(c.source for c in nbformat.read(notebook("notebooks", "00"), as_version=4).cells
                   if c.cell_type == "markdown")
    for heading in ("Learning objectives", "## Recap", "## Further reading", "coursekit grade"):
        assert heading in md, heading


def test_every_exercise_check_has_a_check_cell_with_its_name():
    nb = nbformat.read(notebook("solutions", "00"), as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    wanted = {n for n in dir(ch00) if n.startswith("check_") and n != "check_fahrenheit"}
    assert set(graded) == wanted
    for gid, cell in graded.items():
        assert f"ck.checks.ch00.{gid}(" in cell.source
        assert cell.metadata["tags"] == ["check"] and cell.metadata["nbgrader"]["points"] > 0


@pytest.mark.parametrize("released", [False, True], ids=["solution", "exercise"])
def test_solution_passes_every_check_and_the_released_stubs_fail_them(released, capsys):
    """Run the notebook's cells in order: every check passes on the solution notebook; in the
    exercise made from it by `coursekit release`, every answer raises NotImplementedError
    and every check fails with "not written yet"."""
    from coursekit.authoring.release import make_exercise
    nb = nbformat.read(notebook("solutions", "00"), as_version=4)
    if released:
        nb = make_exercise(nb, "00_welcome.ipynb")
    ns: dict = {}
    n_checks = 0
    for cell in _code_cells(nb):
        meta = cell.metadata.get("nbgrader", {})
        if released and meta.get("solution"):
            with pytest.raises(NotImplementedError):
                exec(cell.source, ns)
        elif released and meta.get("grade"):
            with pytest.raises(CheckFailure, match="not written yet"):
                exec(cell.source, ns)
        else:
            exec(cell.source, ns)
        n_checks += bool(meta.get("grade"))
    assert n_checks == 4
    if not released:
        assert capsys.readouterr().out.count("PASSED check_") == 4
