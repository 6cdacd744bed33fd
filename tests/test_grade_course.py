"""The real course through the grader: every solution notebook gets full marks and every
untouched exercise notebook zero, with a reason for each lost point."""
import shutil

import pytest

from coursekit.authoring.grade import Settings, grade
from nbtools import ROOT

pytestmark = pytest.mark.slow
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = []
    for who, folder in (("answer-key", "solutions"), ("untouched", "exercises")):
        (root / who).mkdir()
        for path in SOLUTIONS:
            shutil.copy(ROOT / folder / path.name, root / who / path.name)
            subs.append(root / who / path.name)
    rows = grade(subs, root / "out", Settings(solutions=ROOT / "solutions", cell_timeout=300),
                 progress=False)
    return {(r.learner, r.notebook): r for r in rows}


@pytest.mark.parametrize("name", [p.name for p in SOLUTIONS])
def test_solution_gets_full_marks(gradebook, name):
    row = gradebook[("answer-key", name)]
    # every automatic check passes; written answers wait for a person (not lost, not given)
    assert row.max_total > 0 and row.total == row.max_total - row.awaiting_points, row.reasons
    assert set(row.awaiting) == set(row.manual)
    assert not any("lost" in r for r in row.reasons), row.reasons


@pytest.mark.parametrize("name", [p.name for p in SOLUTIONS])
def test_untouched_exercise_gets_zero_with_reasons(gradebook, name):
    row = gradebook[("untouched", name)]
    assert row.total == 0 and row.max_total > 0
    lost = [g for g, p in row.points.items() if p == 0]
    for gid in lost:
        assert any(r.startswith(gid + ":") for r in row.reasons), (gid, row.reasons)
