"""`coursekit grade` holds its limits: runaway notebooks stop, nothing escapes.

Every submission answers both toy exercises correctly and misbehaves in a cell of
its own between them (after check_double, before square's answer). Where grading
must stop there, check_double keeps its 2 points and check_square scores 0 with the
reason; an honest submission in the same run keeps full marks.
"""
import hashlib
import os
import random
from pathlib import Path

import nbformat
import pytest

from coursebuilder import answer, make_course, submit, with_cell_after
from coursekit.authoring.grade import Settings, grade

pytestmark = pytest.mark.slow

MARK = str(random.Random().randint(100000, 999999))   # names this run's escape attempts

MISBEHAVIOUR = {
    "sleep": ("import time\ntime.sleep(600)", "ran past the 8 s time limit"),
    "memory": ("hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))", "ran out of memory"),
    "memory_shared": ("import mmap\nm = mmap.mmap(-1, 2**32)\nchunk = b'x' * 2**20\n"
                      "for i in range(0, 2**32, 2**20):\n    m[i:i + 2**20] = chunk",
                      "ran out of memory"),
    "memory_torch": ("import torch\nx = torch.empty(10**12)", "ran out of memory"),
    "spawn": (f"import subprocess\nsubprocess.Popen(['sleep', '{MARK}'])",
              "does not allow: starting a process (subprocess.Popen)"),
    "os_system": (f"import os\nos.system('sleep {MARK} &')",
                  "does not allow: starting a process (os.system)"),
    "exit": ("exit()", "made the kernel exit"),
    "os_exit": ("import os\nos._exit(0)", "ended the notebook's process"),
    "kill_kernel": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                    "ended the notebook's process"),
    "kill_grader": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
                    "does not allow: signalling another process"),
    "write_outside": ("open('../../escaped-{MARK}.txt', 'w').write('x')",
                      "does not allow: writing <grading area>/escaped-"),
}


def escape_attempts(root: Path) -> str:
    """Code that tries to write over files near the submission and elsewhere."""
    targets = [root / "solutions" / "99_toy.ipynb", root / "exercises" / "99_toy.ipynb",
               root / "submissions" / "good" / "99_toy.ipynb",
               root / "submissions" / "escape" / "99_toy.ipynb",
               root / f"escaped-{MARK}.txt", Path.home() / f"escaped-{MARK}.txt",
               Path("/tmp") / f"escaped-{MARK}.txt"]
    return f"""import os, shutil
blocked = []
for target in {[str(t) for t in targets]!r} + ['../../escaped-{MARK}.txt', '../../../escaped-{MARK}.txt']:
    try:
        with open(target, 'w') as fh:
            fh.write('overwritten')
    except OSError as err:
        blocked.append(type(err).__name__)
for action in (lambda: shutil.rmtree({str(root / 'solutions')!r}),
               lambda: os.remove({str(root / 'exercises' / '99_toy.ipynb')!r}),
               lambda: os.rename({str(root / 'solutions')!r}, '../../stolen'),
               lambda: os.symlink('/', 'root-link') or open('root-link{root}/x', 'w')):
    try:
        action()
    except OSError as err:
        blocked.append(type(err).__name__)
print(blocked)"""


def spawn_past_the_audit_hook(argv: str) -> str:
    """Code that starts a program in a new session through _posixsubprocess (which the
    audit hook does not see), the way subprocess.Popen does inside."""
    return ("import _posixsubprocess, os\nr, w = os.pipe()\n"
            f"argv = {argv}\n"
            "_posixsubprocess.fork_exec(argv, [argv[0]], True, (w,), None, None, -1, -1, -1, -1,"
            " -1, -1, r, w, True, True, -1, None, None, None, -1, None, False)")


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "grades" not in p.parts}


def processes_with(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    _, ex = make_course(root)
    exercise = nbformat.read(ex, as_version=4)
    good = answer(answer(exercise, "double_answer", "def double(x):\n    return 2 * x"),
                  "square_answer", "def square(x):\n    return x * x")
    subs = {"good": submit(root, "good", good)}
    for name, (code, _) in MISBEHAVIOUR.items():
        subs[name] = submit(root, name, with_cell_after(good, "check_double",
                                                        code.replace("{MARK}", MARK)))
    subs["threads"] = submit(root, "threads", with_cell_after(   # what OpenMP and torch do
        good, "check_double", "import threading\nt = threading.Thread(target=print)\n"
                              "t.start()\nt.join()"))
    subs["flood"] = submit(root, "flood", with_cell_after(
        good, "check_double", "for _ in range(20000):\n    print('y' * 5000)"))
    sleeper = spawn_past_the_audit_hook(f"[b'/bin/sleep', b'{MARK}']")
    subs["fork_exec"] = submit(root, "fork_exec", with_cell_after(good, "check_double", sleeper))
    killer = spawn_past_the_audit_hook("[b'/bin/kill', b'-9', str(os.getppid()).encode()]")
    subs["kill_worker"] = submit(root, "kill_worker", with_cell_after(good, "check_double", killer))
    subs["escape"] = submit(root, "escape", with_cell_after(good, "check_double",
                                                            escape_attempts(root)))
    huge = answer(good, "double_answer", "big = b'x' * (100 * 2**20)\n"
                                         "def double(x):\n    return 2 * x if big else 0")
    subs["huge"] = submit(root, "huge", huge)
    steal = answer(good, "square_answer",
                   f"import json\nkey = json.load(open({str(root / 'solutions' / '99_toy.ipynb')!r}))"
                   "\nexec(key['cells'][5]['source'])")
    subs["steal"] = submit(root, "steal", steal)
    before = tree(root)
    rows = grade(list(subs.values()), root / "grades",
                 Settings(solutions=root / "solutions", cell_timeout=8, memory_mb=400, jobs=2,
                          isolate=True, snapshot_mb=64), progress=False)
    return root, subs, {r.learner: r for r in rows}, before


def test_honest_submission_in_the_same_run_keeps_full_marks(limited):
    row = limited[2]["good"]
    assert row.total == 3 and row.reasons == []


@pytest.mark.parametrize("name", sorted(MISBEHAVIOUR))
def test_misbehaviour_stops_grading_with_the_reason(limited, name):
    row = limited[2][name]
    assert row.points == {"check_double": 2, "check_square": 0}, row.reasons
    reason = MISBEHAVIOUR[name][1]
    assert len(row.reasons) == 1 and row.reasons[0].startswith("check_square: not run:")
    assert reason in row.reasons[0], row.reasons


def test_notebooks_may_start_threads(limited):
    """Regression: the process that enters a new pid namespace cannot start threads
    (scikit-learn's and torch's thread pools died there); its pid-1 child runs the code."""
    row = limited[2]["threads"]
    assert row.total == 3 and row.reasons == []


def test_printing_megabytes_changes_nothing(limited):
    row = limited[2]["flood"]
    assert row.total == 3 and row.reasons == []


def test_nothing_outside_the_temporary_copy_is_written(limited):
    root, subs, rows, before = limited
    assert rows["escape"].total == 3, rows["escape"].reasons    # every attempt was refused
    assert tree(root) == before
    for place in (root, Path.home(), Path("/tmp"), root.parent, root.parent.parent):
        assert not list(place.glob(f"escaped-{MARK}*")), place
    assert not (root.parent / "stolen").exists()


def test_processes_left_running_are_killed(limited):
    assert limited[2]["fork_exec"].total == 3       # spawned past the audit hook ...
    assert processes_with(MARK) == []               # ... and killed after the notebook


def test_a_process_started_past_the_audit_hook_cannot_kill_the_worker(limited):
    row = limited[2]["kill_worker"]
    if row.sealed:     # its own pid namespace: the worker is not even visible
        assert row.total == 3 and row.reasons == []
    else:              # else the worker may die: that submission fails, nothing else
        assert row.total == 3 or any("grader failed" in r for r in row.reasons)


def test_notebooks_are_sealed_where_linux_allows(limited):
    """With user namespaces (unshare -Ur works), the file system is read-only."""
    import shutil
    import subprocess
    if not shutil.which("unshare") or subprocess.run(["unshare", "-Ur", "true"],
                                                     capture_output=True).returncode:
        pytest.skip("no unprivileged user namespaces here: the audit hook guards alone")
    assert all(row.sealed for row in limited[2].values() if row.total == 3)


def test_a_dead_worker_is_replaced(limited, tmp_path):
    from coursekit.authoring.workers import get_pool
    root, subs = limited[0], limited[1]
    pool = get_pool(2, max(1, (os.cpu_count() or 1) // 2))
    for worker in list(pool.all):
        worker.proc.kill()
        worker.proc.wait()
    [row] = grade([subs["good"]], tmp_path / "again",
                  Settings(solutions=root / "solutions", cell_timeout=8, memory_mb=400, jobs=2,
                           isolate=True, snapshot_mb=64), progress=False)
    assert row.total == 3 and row.reasons == []


def test_objects_too_large_to_copy_fail_their_check_with_the_reason(limited):
    row = limited[2]["huge"]
    assert row.points == {"check_double": 0, "check_square": 1}, row.reasons
    assert "could not copy `double`" in row.reasons[0] and "too large" in row.reasons[0]


def test_the_answer_key_cannot_be_read(limited):
    row = limited[2]["steal"]
    assert row.points == {"check_double": 2, "check_square": 0}
    assert "does not allow: reading" in row.reasons[0], row.reasons


def test_the_notebook_time_limit_holds(limited, tmp_path):
    root = limited[0]
    exercise = nbformat.read(root / "exercises" / "99_toy.ipynb", as_version=4)
    slow = answer(exercise, "double_answer", "def double(x):\n    return 2 * x")
    for _ in range(4):
        slow = with_cell_after(slow, "check_double", "import time\ntime.sleep(2)")
    path = submit(tmp_path, "slow", slow)
    [row] = grade([path], tmp_path / "grades", Settings(
        solutions=root / "solutions", cell_timeout=8, notebook_timeout=5, jobs=1), progress=False)
    assert row.points["check_double"] == 2
    assert "the notebook reached its 5 s time limit" in row.reasons[-1], row.reasons
