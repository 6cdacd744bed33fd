"""The course as a learner sees it: JupyterLab in headless Chromium.

Runs every cell of the lessons of chapters 02, 03, 09, 10 and 11 and asserts that no cell shows an
error, that widgets render as controls (not as a text fallback), and that moving a
slider changes the plot it drives; then fills an exercise with a right and a wrong
answer and reads the check's verdict. Screenshots land in ``screenshots/browser/``
(or ``$COURSEKIT_SCREENSHOTS``).
"""
from __future__ import annotations

import re

import nbformat
import pytest

from labdriver import (cells, errors, nudge_first_slider, open_notebook, output_text, run_all,
                       run_cells, set_source, show_cell, traceback_text, widget_outputs)
from nbtools import notebook

LESSONS = ["02", "03", "09", "10", "11"]


@pytest.mark.parametrize("chapter", LESSONS)
def test_lesson_runs_and_widgets_respond(lab, page, screenshots, chapter):
    rel = f"notebooks/{notebook('notebooks', chapter).name}"
    open_notebook(page, lab, rel)
    try:
        run_all(page)
    finally:
        page.screenshot(path=screenshots / f"lesson-{chapter}-after-run.png", full_page=True)
    all_cells = cells(page)
    code = [c for c in all_cells if c["type"] == "code"]
    assert code and all(c["execution_count"] for c in code), "some code cells did not run"
    assert errors(all_cells) == []

    assert page.get_by_text(re.compile(r"^(VBox|HBox|PlotWidget)\(")).count() == 0, \
        "a widget rendered as its text fallback instead of controls"
    areas = widget_outputs(page)
    assert areas, "the lesson shows no widget with a slider and a plot"
    for n, area in enumerate(areas):
        image = area.locator("img").first
        image.scroll_into_view_if_needed()
        before = image.screenshot()
        area.screenshot(path=screenshots / f"lesson-{chapter}-widget{n}-before.png")
        nudge_first_slider(page, area)
        for _ in range(40):  # the kernel redraws, then the new PNG reaches the page
            page.wait_for_timeout(500)
            after = image.screenshot()
            if after != before:
                break
        area.screenshot(path=screenshots / f"lesson-{chapter}-widget{n}-after.png")
        assert after != before, f"widget {n}: moving its slider did not change the plot"


def _first_exercise(chapter: str):
    sol = nbformat.read(notebook("solutions", chapter), as_version=4)
    ex = nbformat.read(notebook("exercises", chapter), as_version=4)
    meta = lambda c: c.get("metadata", {}).get("nbgrader", {})
    answer_gid = next(meta(c)["grade_id"] for c in ex.cells if meta(c).get("solution"))
    right = next(c.source for c in sol.cells if meta(c).get("grade_id") == answer_gid)
    right = "\n".join(l for l in right.splitlines() if "### " not in l)
    index = next(i for i, c in enumerate(ex.cells) if meta(c).get("grade_id") == answer_gid)
    check = next(i for i, c in enumerate(ex.cells) if i > index and meta(c).get("grade"))
    return index, check, right


def _wrong(right: str) -> str:
    """A typical wrong answer: the learner's function returns nothing useful."""
    header = [l for l in right.splitlines() if l.lstrip().startswith(("def ", "class "))]
    assert header, "the first exercise of the chapter should define a function"
    indent = re.match(r"\s*", header[0]).group(0) + "    "
    return header[0] + "\n" + indent + "return None"


@pytest.mark.parametrize("chapter", ["02"])
def test_exercise_check_passes_then_fails(lab, page, screenshots, chapter):
    rel = f"exercises/{notebook('exercises', chapter).name}"
    index, check, right = _first_exercise(chapter)
    open_notebook(page, lab, rel)

    set_source(page, index, right)
    run_cells(page, list(range(0, check + 1)))
    verdict = cells(page)[check]
    show_cell(page, check)
    page.screenshot(path=screenshots / f"exercise-{chapter}-right.png", full_page=True)
    assert "PASSED" in output_text(verdict), output_text(verdict)

    set_source(page, index, _wrong(right))
    run_cells(page, [index, check])
    verdict = cells(page)[check]
    show_cell(page, check)
    page.screenshot(path=screenshots / f"exercise-{chapter}-wrong.png", full_page=True)
    text = output_text(verdict)
    assert "PASSED" not in text
    assert "CheckFailure" in text and "failed" in text and "expected" in text, text
    # the teacher's message and the learner's own code, not coursekit's internals
    shown = traceback_text(verdict)
    assert "only your own code is shown" in shown, shown
    assert "assertions.py" not in shown and "coursekit/checks" not in shown, shown
    assert len([l for l in shown.splitlines() if l.strip()]) < 25, shown

    # one switch away for an instructor: the full traceback, coursekit's frames included
    set_source(page, index, "ck.checks.full_tracebacks()\n" + _wrong(right))
    run_cells(page, [index, check])
    verdict = cells(page)[check]
    show_cell(page, check)
    page.screenshot(path=screenshots / f"exercise-{chapter}-wrong-full.png", full_page=True)
    full = traceback_text(verdict)
    assert "CheckFailure" in full and "coursekit/checks" in full, full
    assert "only your own code is shown" not in full, full
