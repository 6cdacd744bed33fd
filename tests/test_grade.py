"""`coursekit grade`: every submission gets a row, with the right points and reasons."""
import csv
import hashlib
import json
import subprocess
import sys

import nbformat
import pytest

from coursebuilder import answer, make_course, submit
from coursekit.authoring.grade import Settings, grade
from coursekit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    sol, ex = make_course(root)
    return root, nbformat.read(sol, as_version=4), nbformat.read(ex, as_version=4)


@pytest.fixture(scope="module")
def graded(course):
    """Grade one class of varied submissions once; tests read the gradebook."""
    root, solution, exercise = course
    subs = {}
    subs["ada"] = submit(root, "ada", solution)                        # the answer key
    subs["ben"] = submit(root, "ben", exercise)                        # untouched
    partly = answer(exercise, "double_answer", "def double(x):\n    return x + x")
    subs["cy"] = submit(root, "cy", partly)                            # one right
    hidden = answer(exercise, "double_answer",
                    "def double(x):\n    return 2 * x if abs(x) < 100 else 0")
    hidden = answer(hidden, "square_answer", "def square(x):\n    return x ** 2")
    subs["dee"] = submit(root, "dee", hidden)                          # fails hidden test
    subs["eve"] = submit(root, "eve", b"{ this is not json")
    subs["fay"] = submit(root, "fay", b"")
    broken = answer(exercise, "double_answer", "def double(x):\n    return 2 * x\nsquare = (")
    subs["gus"] = submit(root, "gus", broken)                          # syntax error
    tampered = nbformat.from_dict(partly)
    for cell in tampered.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "check_square":
            cell.source = "print('PASSED check_square')"
    subs["hal"] = submit(root, "hal", tampered)                        # edited check cell
    deleted = nbformat.from_dict(solution)
    deleted.cells = [c for c in deleted.cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") != "check_double"]
    subs["ivy"] = submit(root, "ivy", deleted)                         # deleted check cell
    loop = answer(exercise, "square_answer", "def square(x):\n    return x * x\nwhile True:\n    pass")
    loop = answer(loop, "double_answer", "def double(x):\n    return 2 * x")
    subs["jo"] = submit(root, "jo", loop)                              # endless loop
    subs["kim"] = submit(root, "kim", solution, name="42_other.ipynb")  # not this course's
    hashes = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in subs.items()}
    out = root / "grades"
    settings = Settings(solutions=root / "solutions", cell_timeout=30, jobs=2)
    rows = grade(list(subs.values()), out, settings, progress=False)
    return root, subs, hashes, {r.learner: r for r in rows}, out, settings


def test_answer_key_gets_full_marks(graded):
    row = graded[3]["ada"]
    assert row.total == row.max_total == 3, row.reasons


def test_untouched_exercise_gets_zero_with_reasons(graded):
    row = graded[3]["ben"]
    assert row.total == 0 and row.max_total == 3
    assert any("check_double" in r and "not" in r.lower() for r in row.reasons), row.reasons
    assert "NotImplementedError" in row.feedback["check_square"] or "not written" in row.feedback["check_square"]


def test_partly_right(graded):
    row = graded[3]["cy"]
    assert row.points == {"check_double": 2, "check_square": 0}
    assert row.reasons and all(r.startswith("check_square") for r in row.reasons)


def test_hidden_tests_are_graded(graded):
    row = graded[3]["dee"]
    assert row.points == {"check_double": 0, "check_square": 1}
    assert any("hidden case" in r for r in row.reasons), row.reasons


@pytest.mark.parametrize("learner, reason", [
    ("eve", "not valid JSON"),
    ("fay", "empty"),
])
def test_unreadable_files_get_a_row_with_the_reason(graded, learner, reason):
    row = graded[3][learner]
    assert row.total == 0 and row.max_total == 3
    assert any(reason in r for r in row.reasons), row.reasons


def test_syntax_error_costs_only_the_broken_exercise(graded):
    row = graded[3]["gus"]
    assert row.points["check_square"] == 0
    assert any("SyntaxError" in r for r in row.reasons), row.reasons


def test_edited_check_cell_is_restored_and_flagged(graded):
    row = graded[3]["hal"]
    assert row.points == {"check_double": 2, "check_square": 0}
    assert any("check_square: check cell was edited" in r for r in row.reasons)


def test_deleted_check_cell_is_reinserted(graded):
    row = graded[3]["ivy"]
    assert row.total == 3
    assert any("check_double: check cell was deleted" in r for r in row.reasons)


def test_endless_loop_hits_the_cell_time_limit(graded):
    row = graded[3]["jo"]
    assert row.points["check_double"] == 2
    assert row.points["check_square"] == 0
    assert any("time limit" in r for r in row.reasons), row.reasons


def test_unknown_notebook_gets_a_row(graded):
    row = graded[3]["kim"]
    assert row.max_total == 0 and "not an exercise of this course" in row.reasons[0]


def test_submissions_are_never_changed(graded):
    _, subs, hashes, *_ = graded
    for learner, path in subs.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashes[learner], learner


def test_gradebook_columns_and_rows(graded):
    out = graded[4]
    with open(out / "gradebook.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["learner", "notebook", "check_double", "check_square", "total", "max", "reasons"]
    assert len(table) == 1 + len(graded[1])
    by_learner = {r[0]: r for r in table[1:]}
    assert by_learner["ada"][2:6] == ["2", "2", "1", "3"][:0] + ["2", "1", "3", "3"]
    summary = (out / "summary.md").read_text()
    assert "| ben | 99_toy.ipynb | 0 / 3 |" in summary
    feedback = (out / "feedback" / "cy" / "99_toy.md").read_text()
    assert "check_square: 0 / 1" in feedback and "NotImplementedError" in feedback


def test_regrading_gives_the_same_bytes(graded, tmp_path):
    root, subs, _, _, out, settings = graded
    again = tmp_path / "again"
    grade([subs["ada"], subs["cy"], subs["eve"]], again, settings, progress=False)
    first = tmp_path / "first"
    grade([subs["eve"], subs["cy"], subs["ada"]], first, settings, progress=False)
    for name in ("gradebook.csv", "summary.md"):
        assert (again / name).read_bytes() == (first / name).read_bytes()


def test_plain_nbval_agrees_per_check_cell(graded):
    """An instructor running plain `pytest --nbval-lax` sees the same pass/fail per check."""
    root, subs, _, rows, _, _ = graded
    path = subs["cy"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                           "-p", "no:cacheprovider", "-q", "-o", "addopts=", "-rA", str(path)],
                          capture_output=True, text=True, cwd=root)
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid and gid.startswith("check_"):
            expected = "PASSED" if rows["cy"].points[gid] > 0 else "FAILED"
            assert f"{expected} {path.name}::Cell {i}" in proc.stdout, (gid, proc.stdout[-2000:])


def test_cli_grade_writes_reports(course, tmp_path, capsys):
    root, solution, _ = course
    path = submit(tmp_path, "zed", solution)
    code = main(["grade", str(path), "--out", str(tmp_path / "g"), "--solutions",
                 str(root / "solutions"), "--quiet", "--jobs", "1"])
    assert code == 0
    assert "zed" in capsys.readouterr().out
    assert (tmp_path / "g" / "gradebook.csv").read_text().splitlines()[1].startswith("zed,99_toy.ipynb,2,1,3,3,")
