"""Every chapter follows the course's shape (docs/authoring.md), checked statically.

Executing the notebooks is nbval's job (`bash course.sh test` runs it on notebooks/ and
solutions/); these tests read them.
"""
import json
import re

import nbformat
import pytest

from nbtools import ROOT

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"


def _read(path):
    return nbformat.read(path, as_version=4)


def _ids(paths):
    return [p.name for p in paths]


def test_there_are_lessons():
    assert len(LESSONS) >= 4


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_has_objectives_run_first_cell_plot_and_recap(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "title first"
    assert re.search(r"learning objectives", first.source, re.I), "objectives at the top"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.strip() == RUN_FIRST, "the run-this-first cell comes first, alone"
    text = "\n".join(c.source for c in nb.cells)
    assert re.search(r"^#+ .*recap", text, re.I | re.M), "a Recap section"
    assert re.search(r"^#+ .*further reading", text, re.I | re.M), "a Further reading section"
    assert "ck.budget(" in text or "budget(" in text, "training lengths go through ck.budget"
    assert re.search(r"set_xlabel|xlabel\(|ck\.plots\.|\.plot\(|show_images|scatter2d", text), "a plot"


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_every_lesson_has_exercises_and_solutions(path):
    assert (ROOT / "solutions" / path.name).exists(), f"solutions/{path.name} is missing"
    assert (ROOT / "exercises" / path.name).exists(), f"exercises/{path.name} is missing"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solutions_start_like_lessons_and_check_with_coursekit(path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.strip() == RUN_FIRST
    chapter = path.name[:2]
    for cell in code:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert f"ck.checks.ch{chapter}.{meta['grade_id']}(" in cell.source, \
                f"check cell {meta['grade_id']} should call ck.checks.ch{chapter}.{meta['grade_id']}"


@pytest.mark.parametrize("folder", ["notebooks", "solutions", "exercises"])
def test_no_widget_state_is_committed(folder):
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        data = json.loads(path.read_text())
        assert "widgets" not in data.get("metadata", {}), f"{path.name} carries widget state"


def test_exercises_are_committed_clean():
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        for cell in _read(path).cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
