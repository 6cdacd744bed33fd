"""Chapter 00: the lesson's inline-vs-package loop and notebook structure (the checks' answer
table is tests/answers/ch00.py, run by tests/test_check_contract.py)."""
import re

import nbformat
import pytest
import torch

from coursekit.checks import CheckFailure, ch00
from nbtools import exec_tagged_cells, notebook

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"


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
        passed = set(re.findall(r"PASSED (check_\w+)", capsys.readouterr().out))
        assert len(passed) == 4, passed   # the hidden cases pass too
