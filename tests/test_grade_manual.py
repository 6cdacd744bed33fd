"""Written answers (nbgrader's manually graded answers) under `coursekit grade`: their
points wait for a person, their text reaches the feedback, and a marks file records them
(`--manual`), in one run or when shards merge, with clear errors for a wrong file."""
import csv

import nbformat
import pytest

from coursebuilder import answer, make_course, submit
from coursekit.authoring.grade import Settings, grade
from coursekit.cli import main

pytestmark = pytest.mark.slow

SECRET = "manual-marks"
GID = "linear_answer"


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    root = tmp_path_factory.mktemp("written")
    sol, ex = make_course(root, written=True)
    solution, exercise = nbformat.read(sol, as_version=4), nbformat.read(ex, as_version=4)
    half = answer(exercise, "double_answer", "def double(x):\n    return x + x")
    half = answer(half, GID, "Doubling, since double(a + b) = double(a) + double(b).")
    gone = nbformat.from_dict(solution)
    gone.cells = [c for c in gone.cells if c.metadata.get("nbgrader", {}).get("grade_id") != GID]
    subs = [submit(root, "ann", solution), submit(root, "bob", exercise),
            submit(root, "cat", half), submit(root, "dan", b"not a notebook"),
            submit(root, "=eve", gone)]
    out = root / "grades"
    grade(subs, out, Settings(solutions=root / "solutions", jobs=2, secret=SECRET), progress=False)
    return root, subs, out


def _rows(folder):
    return {r["learner"]: r for r in csv.DictReader(open(folder / "gradebook.csv"))}


def _marks(path, *lines, header="learner,notebook,grade_id,points,comment"):
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_release_keeps_the_written_answer_for_a_person(klass):
    root, _, _ = klass
    nb = nbformat.read(root / "exercises" / "99_toy.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == GID)
    assert cell.cell_type == "markdown" and cell.source == "YOUR ANSWER HERE"
    assert cell.metadata["nbgrader"]["grade"] and cell.metadata["nbgrader"]["points"] == 2
    assert nb.metadata["coursekit"]["manual"] == {GID: 2.0}
    assert GID not in nb.metadata["coursekit"]["checks"]


def test_written_answers_await_a_person(klass):
    _, _, out = klass
    rows = _rows(out)
    ann, bob, cat, dan, eve = (rows[k] for k in ("ann", "bob", "cat", "dan", "'=eve"))
    # awaiting: not zero, not lost, not in the total, in max and in the awaiting column
    assert (ann[GID], ann["total"], ann["max"], ann["awaiting"]) == ("awaiting", "3", "5", "2")
    assert GID not in ann["reasons"]
    assert (cat[GID], cat["total"], cat["awaiting"]) == ("awaiting", "2", "2")
    # left as the stub, unreadable, or the cell deleted: zero, with the reason
    assert (bob[GID], bob["awaiting"]) == ("0", "0") and f"{GID}: not answered" in bob["reasons"]
    assert (dan[GID], dan["awaiting"]) == ("0", "0")
    assert (eve[GID], eve["awaiting"]) == ("0", "0") and "cell is missing" in eve["reasons"]
    feedback = (out / "feedback" / "cat" / "99_toy.md").read_text()
    assert f"## {GID}: awaiting an instructor / 2" in feedback
    assert "double(a + b) = double(a) + double(b)" in feedback
    summary = (out / "summary.md").read_text()
    assert "Written answers: 2 wait for a person (4 points" in summary
    assert f"| {GID} (written) | 0 (2 awaiting a person) | 5 |" in summary
    template = list(csv.DictReader(open(out / "marks-template.csv")))
    assert [(t["learner"], t["grade_id"], t["points"], t["max"]) for t in template] == \
        [("ann", GID, "", "2"), ("cat", GID, "", "2")]


def test_marks_complete_the_gradebook(klass, tmp_path):
    root, subs, out = klass
    marks = _marks(tmp_path / "marks.csv", f"ann,99_toy.ipynb,{GID},2,clear",
                   f'cat,99_toy.ipynb,{GID},1.5,"=HYPERLINK(""http://x"")"',
                   f"'=eve,99_toy.ipynb,{GID},1,found it in the e-mail",
                   f"bob,99_toy.ipynb,{GID},,not marked yet")
    assert main(["grade", *map(str, subs), "--out", str(tmp_path / "g"), "--solutions",
                 str(root / "solutions"), "--secret", SECRET, "--manual", str(marks),
                 "--quiet", "--jobs", "2"]) == 0
    rows = _rows(tmp_path / "g")
    assert (rows["ann"][GID], rows["ann"]["total"], rows["ann"]["awaiting"]) == ("2", "5", "0")
    assert (rows["cat"][GID], rows["cat"]["total"]) == ("1.5", "3.5")
    assert (rows["'=eve"][GID], "cell is missing" not in rows["'=eve"]["reasons"]) == ("1", True)
    assert rows["bob"][GID] == "0"
    feedback = (tmp_path / "g" / "feedback" / "cat" / "99_toy.md").read_text()
    assert f"## {GID}: 1.5 / 2 (marked by an instructor)" in feedback
    assert "double(a + b)" in feedback and "HYPERLINK" in feedback
    template = (tmp_path / "g" / "marks-template.csv").read_text()
    assert "'=HYPERLINK" in template                     # no formula for a spreadsheet
    assert "Written answers: 0 wait for a person" in (tmp_path / "g" / "summary.md").read_text()
    # the same marks on the graded folder, without regrading, give the same gradebook
    assert main(["gradebook", "merge", str(out), "--out", str(tmp_path / "m"),
                 "--manual", str(marks)]) == 0
    for name in ("gradebook.csv", "summary.md", "marks-template.csv", "feedback/cat/99_toy.md"):
        assert (tmp_path / "m" / name).read_bytes() == (tmp_path / "g" / name).read_bytes(), name


def test_marked_shards_merge_to_one_marked_run(klass, tmp_path):
    root, subs, _ = klass
    marks = _marks(tmp_path / "marks.csv", f"ann,99_toy.ipynb,{GID},2,", f"cat,99_toy.ipynb,{GID},1,")
    common = ["--solutions", str(root / "solutions"), "--secret", SECRET, "--quiet", "--jobs", "2"]
    assert main(["grade", *map(str, subs), "--out", str(tmp_path / "whole"), "--manual",
                 str(marks), *common]) == 0
    for k in (1, 2):
        assert main(["grade", *map(str, subs), "--out", str(tmp_path / f"s{k}"),
                     "--shard", f"{k}/2", *common]) == 0
    assert main(["gradebook", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out",
                 str(tmp_path / "merged"), "--manual", str(marks)]) == 0
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*")
                   if p.is_file() and p.name != ".grading-secret")
    assert files == sorted(p.relative_to(tmp_path / "merged") for p in
                           (tmp_path / "merged").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "merged" / name).read_bytes(), name


@pytest.mark.parametrize("lines, header, message", [
    ([f"zed,99_toy.ipynb,{GID},1,"], None, "no submission by a learner 'zed'"),
    ([f"ann,98_other.ipynb,{GID},1,"], None, "ann submitted no '98_other.ipynb'"),
    (["ann,99_toy.ipynb,made_up,1,"], None, "'made_up' is not a cell of this notebook"),
    (["ann,99_toy.ipynb,check_double,2,"], None, "'check_double' is an automatically graded check"),
    ([f"ann,99_toy.ipynb,{GID},3,"], None, f"3 points for {GID}, which is worth at most 2"),
    ([f"ann,99_toy.ipynb,{GID},-1,"], None, "points must be a number >= 0, got '-1'"),
    ([f"ann,99_toy.ipynb,{GID},two,"], None, "points must be a number >= 0, got 'two'"),
    ([f"ann,99_toy.ipynb,{GID},nan,"], None, "points must be a number >= 0, got 'nan'"),
    ([f"ann,99_toy.ipynb,{GID},1,", f"ann,99_toy.ipynb,{GID},2,"], None,
     "line 3: ann's linear_answer in 99_toy.ipynb is already marked on line 2"),
    ([f"ann,99_toy.ipynb,{GID},1"], "learner,notebook,points", "missing: grade_id"),
])
def test_a_wrong_marks_file_is_refused_with_its_line(klass, tmp_path, capsys, lines, header, message):
    _, _, out = klass
    marks = _marks(tmp_path / "marks.csv", *lines,
                   **({"header": header} if header else {}))
    assert main(["gradebook", "merge", str(out), "--out", str(tmp_path / "m"),
                 "--manual", str(marks)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()                 # nothing half-written


def test_grade_refuses_a_bad_marks_file_before_grading_and_marks_with_shards(klass, tmp_path, capsys):
    root, subs, _ = klass
    bad = _marks(tmp_path / "bad.csv", f"ann,99_toy.ipynb,{GID},lots,")
    common = ["--solutions", str(root / "solutions"), "--secret", SECRET, "--quiet"]
    assert main(["grade", str(subs[0]), "--out", str(tmp_path / "g"), "--manual", str(bad), *common]) == 2
    assert "points must be a number" in capsys.readouterr().err
    assert not (tmp_path / "g" / "gradebook.csv").exists()
    good = _marks(tmp_path / "good.csv", f"ann,99_toy.ipynb,{GID},1,")
    assert main(["grade", str(subs[0]), "--out", str(tmp_path / "s"), "--manual", str(good),
                 "--shard", "1/2", *common]) == 2
    assert "gradebook merge --manual" in capsys.readouterr().err
    # a mark the class does not match: the gradebook is still written, without marks
    stranger = _marks(tmp_path / "stranger.csv", f"zed,99_toy.ipynb,{GID},1,")
    assert main(["grade", str(subs[0]), "--out", str(tmp_path / "k"), "--manual", str(stranger),
                 *common]) == 2
    err = capsys.readouterr().err
    assert "no submission by a learner 'zed'" in err and "without marks" in err
    assert _rows(tmp_path / "k")["ann"][GID] == "awaiting"
