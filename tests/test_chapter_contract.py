"""What every chapter promises, checked on every chapter the course has (new ones included).

The lesson: a numbered title, learning objectives, the run-this-first cell, at least one
plot with a labelled axis, a recap and further reading with papers by year, a progress bar
on every training loop. The solutions: the run-this-first cell, nbgrader metadata on every
answer and check, each check cell calling the check its grade_id names, each answer before
its check, instructor-only cases seeded by ``hidden_seed``. The exercises: clean, in sync
(``tests/test_release.py``). Each check's answer table: ``tests/test_check_contract.py``.
Per-chapter test files keep only what is specific to a chapter.
"""
from __future__ import annotations

import ast
import importlib
import re

import nbformat
import pytest

from nbtools import ROOT

RUN_FIRST = "import coursekit as ck\ndevice = ck.setup(seed=0)"
CHAPTERS = sorted(p.name[:2] for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _nb(folder: str, chapter: str):
    (path,) = (ROOT / folder).glob(f"{chapter}_*.ipynb")
    return nbformat.read(path, as_version=4)


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_chapter_has_its_three_notebooks_and_a_check_module():
    assert CHAPTERS[:8] == [f"{n:02d}" for n in range(8)]
    for chapter in CHAPTERS:
        for folder in ("notebooks", "solutions", "exercises"):
            assert len(list((ROOT / folder).glob(f"{chapter}_*.ipynb"))) == 1, (folder, chapter)
        importlib.import_module(f"coursekit.checks.ch{chapter}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_lesson_opens_with_title_objectives_and_the_run_this_first_cell(chapter):
    nb = _nb("notebooks", chapter)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {chapter}")
    assert "Learning objectives" in _markdown(nb)
    assert _code(nb)[0].source.strip() == RUN_FIRST


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_lesson_closes_with_a_recap_and_papers(chapter):
    md = _markdown(_nb("notebooks", chapter))
    assert re.search(r"^#+ .*Recap", md, re.M), "no Recap heading"
    reading = md.split("Further reading", 1)
    assert len(reading) == 2, "no Further reading section"
    years = re.findall(r"\b(19[5-9]\d|20[0-2]\d)\b", reading[1])
    assert len(years) >= 2, "further reading should cite papers with their years"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_lesson_draws_a_labelled_plot(chapter):
    code = "\n".join(c.source for c in _code(_nb("notebooks", chapter)))
    assert re.search(r"set_xlabel|xlabel\(|set_ylabel|ck\.plots\.|show_images|\.plot\(", code), \
        "a lesson shows at least one plot"
    if "plt." in code or "ax." in code:
        assert re.search(r"set_xlabel|set_ylabel|xlabel\(|ylabel\(|set_title", code), \
            "label the axes of the lesson's plots"


def _budget_names(cells) -> set[str]:
    """Names assigned from ck.budget(...) anywhere in the notebook."""
    names = set()
    for cell in cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and "ck.budget(" in ast.unparse(node.value):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_every_training_loop_shows_a_progress_bar(folder, chapter):
    """A `for` over range(<a ck.budget length>) must go through ck.progress / ck.train / tqdm,
    or sit inside a loop that does, or say on its line why it needs none (``# quick: ...``)."""
    cells = _code(_nb(folder, chapter))
    budgets = _budget_names(cells)
    bare = []
    for cell in cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        lines = cell.source.splitlines()
        inside_bar = {id(n) for outer in ast.walk(tree) if isinstance(outer, ast.For)
                      and re.search(r"progress\(|tqdm\(", ast.unparse(outer.iter))
                      for n in ast.walk(outer) if n is not outer}
        for node in ast.walk(tree):
            if not isinstance(node, ast.For) or id(node) in inside_bar:
                continue
            if "# quick:" in lines[node.lineno - 1]:
                continue
            it = ast.unparse(node.iter)
            if it.startswith("range(") and (any(re.search(rf"\b{re.escape(b)}\b", it) for b in budgets)
                                           or "ck.budget(" in it):
                bare.append(it)
    assert not bare, f"loops over a training budget without a progress bar: {bare}; wrap them in ck.progress(...)"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_follow_the_grading_layout(chapter):
    nb = _nb("solutions", chapter)
    assert _code(nb)[0].source.strip() == RUN_FIRST
    module = importlib.import_module(f"coursekit.checks.ch{chapter}")
    bans = getattr(module, "BANS", None)
    assert isinstance(bans, dict), f"coursekit.checks.ch{chapter} declares no BANS"
    answers_seen = set()
    graded = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            answers_seen.add(meta["grade_id"])
        if meta.get("grade") and cell.cell_type == "code":
            gid = meta["grade_id"]
            graded.append(gid)
            assert gid.startswith("check_") and meta.get("points", 0) > 0 and meta.get("locked")
            assert cell.metadata.get("tags") == ["check"]
            assert f"ck.checks.ch{chapter}.{gid}(" in cell.source, f"{gid}'s cell calls another check"
            assert callable(getattr(module, gid, None)), f"no {gid} in coursekit.checks.ch{chapter}"
            assert gid in bans, f"BANS of ch{chapter} says nothing about {gid}"
            assert answers_seen, f"{gid} comes before any answer cell"
    assert len(graded) >= 3 and len(set(graded)) == len(graded), graded


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_exercises_are_committed_clean_and_say_they_are_generated(chapter):
    nb = _nb("exercises", chapter)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in _code(nb))
    assert "generated" in nb.cells[0].source.lower() or "coursekit release" in nb.cells[0].source
    for cell in nb.cells:
        assert "### BEGIN SOLUTION" not in cell.source and "### BEGIN HIDDEN TESTS" not in cell.source
