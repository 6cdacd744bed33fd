"""A submission reads only what it needs (docs/grading.md, "What a submission can see").

A hostile answer looks for files planted outside its grading folder: beside the
course (its parent folder), in the course's ``.git``, in ``/etc``, in the instructor's
home. ``os.path.exists`` is used on purpose: the audit hook does not see it, so only
the allow-listed view can make those files absent. The same answer then raises an
exception that carries what it could read, and a long message: the learner's feedback
keeps a line of it, and the instructor's gradebook and summary keep none.

Both ways of building the view are tried: bubblewrap (where installed) and the
namespaces fallback.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import nbformat
import pytest

from coursebuilder import answer, make_course, make_tensor_course, submit
from coursekit.authoring import view, workers
from coursekit.authoring.grade import Settings, grade

pytestmark = pytest.mark.slow

SECRET = f"planted-{random.Random().randint(10**8, 10**9)}"


def namespaces_work() -> bool:
    import shutil
    import subprocess
    return bool(shutil.which("unshare")) and subprocess.run(
        ["unshare", "-Ur", "true"], capture_output=True).returncode == 0


def hostile_square(targets: list[str]) -> str:
    return f"""def square(x):
    import os
    targets = {targets!r}
    seen = ''.join('1' if os.path.exists(t) else '0' for t in targets)
    text = ''
    for t in targets:
        try:
            text += open(t).read()
        except Exception as err:
            text += type(err).__name__ + ' '
    raise ValueError('seen=' + seen + ' ' + 'y' * 3000 + ' ' + text)"""


@pytest.fixture(params=["bubblewrap", "namespaces"])
def mode(request, monkeypatch):
    if request.param == "bubblewrap":
        view.bwrap_works.cache_clear()
        if not view.bwrap_works():
            pytest.skip("bubblewrap is not installed or cannot start here")
    else:
        if not namespaces_work():
            pytest.skip("no unprivileged user namespaces here")
        monkeypatch.setenv("COURSEKIT_NO_BWRAP", "1")
    view.bwrap_works.cache_clear()
    workers.close_all()                       # fresh workers, started the way this mode says
    yield request.param
    workers.close_all()
    view.bwrap_works.cache_clear()


def test_a_hostile_submission_sees_nothing_outside_the_allow_list(tmp_path, mode):
    root = tmp_path / "course"
    root.mkdir()
    _, ex = make_course(root)
    (root / ".git").mkdir()
    planted = [tmp_path / "beside-the-course.txt", root / ".git" / "planted",
               Path.home() / f".{SECRET}.txt"]
    for path in planted:
        path.write_text(SECRET)
    targets = [*map(str, planted), "/etc/passwd", "/etc/hostname",
               str(root / "solutions" / "99_toy.ipynb")]
    try:
        exercise = nbformat.read(ex, as_version=4)
        good = answer(exercise, "double_answer", "def double(x):\n    return 2 * x")
        sub = submit(root, "mallory", answer(good, "square_answer", hostile_square(targets)))
        out = root / "grades"
        [row] = grade([sub], out, Settings(solutions=root / "solutions", cell_timeout=30,
                                           jobs=1, isolate=True), progress=False)
    finally:
        (Path.home() / f".{SECRET}.txt").unlink(missing_ok=True)
    assert row.points == {"check_double": 2, "check_square": 0}, row.reasons
    expected = {"bubblewrap": "bubblewrap: allow-listed files, no network",
                "namespaces": "namespaces: allow-listed files, no network"}[mode]
    assert row.sandbox == expected
    feedback = row.feedback["check_square"]
    assert "seen=" + "0" * len(targets) in feedback, feedback      # none of them exists
    assert SECRET not in feedback and "root:" not in feedback
    assert "characters in all]" in feedback and len(feedback) < 400   # cut, and says so
    for report in ("gradebook.csv", "summary.md"):
        text = (out / report).read_text()
        assert "seen=" not in text and "yyyy" not in text and SECRET not in text, report
        assert "ValueError raised while the check ran" in text, report


def test_a_view_keeps_what_notebooks_need(tmp_path, mode):
    """An honest torch notebook grades in full inside the view (site-packages, the
    package, the cache and the system's libraries are there)."""
    root = tmp_path / "course"
    root.mkdir()
    tensors, _ = make_tensor_course(root)
    sub = submit(root, "honest", nbformat.read(tensors, as_version=4), name="98_tensors.ipynb")
    [row] = grade([sub], root / "grades", Settings(solutions=root / "solutions", jobs=1,
                                                    isolate=True), progress=False)
    assert row.total == row.max_total, row.reasons
    assert "allow-listed files" in row.sandbox


def test_the_view_lists_only_what_grading_needs():
    reads = view.view_reads()
    import coursekit
    package = str(Path(coursekit.__file__).resolve().parent)
    assert package in reads
    checkout = os.path.dirname(package)
    assert checkout not in reads and "/etc" not in reads and str(Path.home()) not in reads
    assert not any(p == "/" for p in reads)
