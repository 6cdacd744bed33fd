"""nbgrader takes every chapter as it is (issue 14).

An instructor who runs nbgrader puts each solutions notebook in ``source/<chapter>/`` and
runs ``nbgrader generate_assignment`` and ``nbgrader autograde``. This test does exactly
that with nbgrader 0.9.6 in its own virtual environment (tests/nbgrader_env.py: one
``pip install``, cached in the temporary folder; skipped only when it cannot be
installed) on every solutions/*.ipynb present, and checks that

1. every chapter releases, and nbgrader's released notebook equals ``exercises/`` cell for
   cell (types, sources and grading metadata), beside coursekit's header cell;
2. nbgrader's autograde gives each chapter's solution full marks on every auto-graded cell,
   with the same points as coursekit, and leaves every written answer to a person.

Autograde runs in fast mode (COURSEKIT_FAST=1). A chapter whose autograde takes long goes
in SLOW with the reason and is released but not autograded here. Measured on 2 busy
cores: 6-12 s per chapter, 25 s for 07_diffusion; none is skipped.
"""
import nbformat
import pytest

from coursekit.authoring.release import GENERATED_TAG, check_cells, manual_cells
from nbgrader_env import NBGRADER_VERSION, NbgraderCourse, NbgraderUnavailable, nbgrader_venv
from nbtools import ROOT

pytestmark = pytest.mark.slow

CHAPTERS = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
SLOW: dict[str, str] = {}   # chapter -> why its autograde is skipped here (none today)
GRADING_KEYS = ("grade", "solution", "grade_id", "points")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """An nbgrader course with one assignment per chapter, released and autograded once."""
    try:
        python = nbgrader_venv()
    except NbgraderUnavailable as err:
        pytest.skip(f"nbgrader {NBGRADER_VERSION} cannot be installed here: {err}")
    course = NbgraderCourse(python, tmp_path_factory.mktemp("nbgrader") / "course",
                            env={"COURSEKIT_FAST": "1"})
    for chapter in CHAPTERS:
        course.add_source(chapter, ROOT / "solutions" / f"{chapter}.ipynb")
        if chapter not in SLOW:
            course.submit("solution", chapter, ROOT / "solutions" / f"{chapter}.ipynb")
    generated = course.generate("*")           # nbgrader globs the assignment names
    graded = course.autograde("*")
    return course, generated, graded


def _log(proc, chapter: str) -> str:
    """The part of nbgrader's log about one chapter (else its tail)."""
    lines = proc.stderr.splitlines()
    hits = [i for i, line in enumerate(lines) if chapter in line]
    if not hits:
        return "\n".join(lines[-40:])
    return "\n".join(lines[max(0, hits[0] - 5): hits[-1] + 40])[-6000:]


def _grading(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return {k: meta.get(k) for k in GRADING_KEYS if meta.get(k) not in (None, False)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_releases_what_coursekit_releases(course, chapter):
    course, generated, _ = course
    released = course.released(chapter) / f"{chapter}.ipynb"
    assert released.is_file(), (f"nbgrader generate_assignment refused {chapter}:\n"
                                f"{_log(generated, chapter)}")
    theirs = nbformat.read(released, as_version=4)
    ours = nbformat.read(ROOT / "exercises" / f"{chapter}.ipynb", as_version=4)
    assert GENERATED_TAG in ours.cells[0].metadata.get("tags", [])
    ours_cells = ours.cells[1:]                       # beside coursekit's header cell
    assert len(theirs.cells) == len(ours_cells)
    for i, (a, b) in enumerate(zip(theirs.cells, ours_cells)):
        assert (a.cell_type, a.source.rstrip()) == (b.cell_type, b.source.rstrip()), \
            f"{chapter}, cell {i + 1} of exercises/ differs from nbgrader's release"
        assert _grading(a) == _grading(b), f"{chapter}, cell {i + 1}: grading metadata differs"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_autograde_gives_the_solution_full_marks(course, chapter):
    if chapter in SLOW:
        pytest.skip(f"{chapter}: autograde not run here: {SLOW[chapter]}")
    course, _, graded = course
    scores = course.scores(chapter).get("solution", {}).get(chapter)
    assert scores, f"nbgrader autograde did not grade {chapter}:\n{_log(graded, chapter)}"
    solution = nbformat.read(ROOT / "solutions" / f"{chapter}.ipynb", as_version=4)
    checks = {c.grade_id: c.points for c in check_cells(solution)}
    written = {m.grade_id: m.points for m in manual_cells(solution)}
    assert {g: s[2] for g, s in scores.items()} == {**checks, **written}, \
        "nbgrader and coursekit disagree on the graded cells or their points"
    lost = {g: s[0] for g, s in scores.items() if g in checks and s[0] != s[2]}
    assert not lost, f"{chapter}: the solution lost points under nbgrader: {lost}\n" \
                     f"{_log(graded, chapter)}"
    decided = {g: s[0] for g, s in scores.items() if g in written and s[0] is not None}
    assert not decided, f"{chapter}: nbgrader scored written answers automatically: {decided}"


def test_nbgrader_is_not_a_course_dependency():
    """nbgrader lives in its own environment, never in the course's."""
    for name in ("pyproject.toml", "environment.yml"):
        text = (ROOT / name).read_text().lower()
        assert "nbgrader" not in text, name
