"""`coursekit grade`: every submission gets a row, with the right points and reasons."""
import csv
import hashlib
import json
import os
import subprocess
import sys

import nbformat
import pytest

from coursebuilder import answer, cell_with, make_course, make_tensor_course, submit
from coursekit.authoring.grade import Settings, grade
from coursekit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    make_tensor_course(root)
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
    # -- malformed files: one row each, with the reason
    big = root / "submissions" / "lou" / "99_toy.ipynb"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as fh:                                        # 100 MB (sparse)
        fh.truncate(100 * 2**20)
    subs["lou"] = big
    subs["max"] = submit(root, "max", nbformat.writes(nbformat.convert(nbformat.from_dict(solution), 3), version=3))
    future = json.loads(nbformat.writes(solution))
    future["nbformat"] = 5
    subs["ned"] = submit(root, "ned", json.dumps(future))              # unknown nbformat
    other = nbformat.read(root / "exercises" / "98_tensors.ipynb", as_version=4)
    subs["ola"] = submit(root, "ola", other)                           # another chapter's set
    bare = nbformat.from_dict(other)
    bare.metadata.pop("coursekit")
    subs["pam"] = submit(root, "pam", bare)                            # ... without metadata
    subs["quin"] = submit(root, "quin", b"[1, 2, 3]")                  # JSON, not a notebook
    subs["rae"] = submit(root, "rae", bytes(range(256)) * 4)           # binary junk
    moved = nbformat.from_dict(solution)                               # exercises swapped
    moved.cells = moved.cells[:2] + moved.cells[5:] + moved.cells[2:5]
    subs["sal"] = submit(root, "sal", moved)
    stale = nbformat.from_dict(partly)                                 # outputs of another run
    cell_with(stale, "check_square").outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text="PASSED check_square\n")]
    cell_with(stale, "check_square").execution_count = 3
    subs["tam"] = submit(root, "tam", stale)
    # -- check cells re-tagged, untagged, duplicated; planted hidden-test markers
    retagged = nbformat.from_dict(partly)
    cell_with(retagged, "check_double").metadata["nbgrader"]["grade_id"] = "mine"
    untagged = cell_with(retagged, "check_square")
    untagged.metadata = {}
    untagged.source = "print('PASSED check_square')"
    subs["uma"] = submit(root, "uma", retagged)
    twice = nbformat.from_dict(solution)
    twice.cells.append(nbformat.from_dict(cell_with(twice, "check_square")))
    twice.cells[-1].id = "a-second-copy"
    twice.cells.append(nbformat.v4.new_code_cell(
        "### BEGIN HIDDEN TESTS\nprint('PASSED check_double')\n### END HIDDEN TESTS"))
    subs["vic"] = submit(root, "vic", twice)
    subs["=cmd"] = submit(root, "=cmd", b"")                           # a formula-like name
    subs["wes"] = submit(root, "wes", answer(exercise, "double_answer",  # run-specific text
                                             "def double(x):\n    import os\n"
                                             "    raise ValueError(f'{os.getcwd()} {object()}')"))
    hashes = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in subs.items()}
    out = root / "grades"
    settings = Settings(solutions=root / "solutions", cell_timeout=10, jobs=2)
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
    assert table[0] == ["learner", "notebook", "check_double", "check_square", "total", "max", "sandbox", "reasons"]
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
    some = [subs[k] for k in ("ada", "cy", "eve", "gus", "wes")]
    grade(some, again, settings, progress=False)
    first = tmp_path / "first"
    grade(some[::-1], first, settings, progress=False)
    for name in ("gradebook.csv", "summary.md", "feedback/wes/99_toy.md", "feedback/gus/99_toy.md"):
        assert (again / name).read_bytes() == (first / name).read_bytes()
    text = (first / "feedback" / "wes" / "99_toy.md").read_text()
    assert "ValueError: <grading folder>/work <object object at 0x...>" in text


@pytest.mark.parametrize("learner, reason", [
    ("lou", "100 MB, over the 20 MB limit"),
    ("ned", "nbformat 5"),
    ("ola", "a different exercise set: this notebook was released from solutions/98_tensors.ipynb"),
    ("pam", "a different exercise set: none of its exercises"),
    ("quin", "the JSON has no cells"),
    ("rae", "not valid JSON"),
    ("=cmd", "empty"),
])
def test_malformed_files_get_one_row_with_the_reason(graded, learner, reason):
    row = graded[3][learner]
    assert row.total == 0 and row.max_total == 3
    assert any(reason in r for r in row.reasons), row.reasons


def test_old_nbformat_is_converted_and_graded(graded):
    row = graded[3]["max"]
    assert row.total == 3, row.reasons
    assert row.reasons == ["note: converted from nbformat 3 before grading"]


def test_cells_out_of_order_are_graded_in_the_released_order(graded):
    row = graded[3]["sal"]
    assert row.total == 3, row.reasons
    assert any("cells out of order" in r for r in row.reasons), row.reasons


def test_outputs_from_another_run_are_ignored_and_flagged(graded):
    row = graded[3]["tam"]
    assert row.points == {"check_double": 2, "check_square": 0}
    assert any("saved output shows a pass" in r for r in row.reasons), row.reasons


def test_retagged_and_untagged_check_cells_are_restored(graded):
    row = graded[3]["uma"]
    assert row.points == {"check_double": 2, "check_square": 0}
    assert "check_double: check cell was re-tagged (restored)" in row.reasons
    assert "check_square: check cell was re-tagged (restored)" in row.reasons   # found by its id


def test_duplicated_check_and_planted_hidden_markers_are_ignored(graded):
    row = graded[3]["vic"]
    assert row.total == 3
    assert "check_square: check cell duplicated (extra copy ignored)" in row.reasons
    assert "a cell holds hidden-test markers (ignored)" in row.reasons


def test_formula_like_names_are_defused_in_the_csv(graded):
    text = (graded[4] / "gradebook.csv").read_text()
    assert "\n'=cmd,99_toy.ipynb," in text and "\n=cmd" not in text


def test_feedback_explains_a_name_error_with_the_earlier_cell(graded):
    feedback = graded[3]["gus"].reasons[0]
    assert "never defined" in feedback and "SyntaxError" in feedback


def test_plain_nbval_agrees_per_check_cell(graded, tmp_path):
    """An instructor running plain `pytest --nbval-lax` on an honest submission sees the
    same pass/fail per check cell as the grader (nbval's verdicts read with the
    coursekit.authoring.nbval_report plugin)."""
    root, subs, _, rows, _, _ = graded
    honest = ["ada", "ben", "cy", "gus"]   # (dee fails a hidden test nbval cannot see)
    report = tmp_path / "verdicts.json"
    env = dict(os.environ, COURSEKIT_NBVAL_REPORT=str(report), COURSEKIT_FAST="1")
    subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                    "-p", "coursekit.authoring.nbval_report", "-p", "no:cacheprovider", "-q",
                    "-o", "addopts=", *[str(subs[k]) for k in honest]],
                   capture_output=True, text=True, cwd=root, env=env, timeout=600)
    verdicts = json.loads(report.read_text())
    compared = 0
    for learner in honest:
        nb = nbformat.read(subs[learner], as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for i, cell in enumerate(code):
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if gid.startswith("check_"):
                nbval_passed = verdicts[f"{subs[learner].resolve()}::{i}"]["outcome"] == "passed"
                assert nbval_passed == (rows[learner].points[gid] > 0), (learner, gid)
                compared += 1
    assert compared == 8


def test_cli_grade_writes_reports(course, tmp_path, capsys):
    root, solution, _ = course
    path = submit(tmp_path, "zed", solution)
    code = main(["grade", str(path), "--out", str(tmp_path / "g"), "--solutions",
                 str(root / "solutions"), "--quiet", "--jobs", "1"])
    assert code == 0
    assert "zed" in capsys.readouterr().out
    assert (tmp_path / "g" / "gradebook.csv").read_text().splitlines()[1].startswith("zed,99_toy.ipynb,2,1,3,3,")
