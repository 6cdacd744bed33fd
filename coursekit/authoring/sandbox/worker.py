"""The grading worker: a pristine process that forks one child per notebook and per check.

It reads one :class:`~.messages.Job` per line on stdin and answers one
:class:`~.messages.JobResult` per line. It enforces time limits (per cell, per notebook,
per check) and a memory limit (resident memory of the whole process tree) from outside,
kills with SIGKILL and, as a child subreaper, kills whatever the notebook left running.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import sys
import time

from coursekit.authoring.sandbox.children import fingerprint, run_check, run_notebook
from coursekit.authoring.sandbox.confine import LINUX
from coursekit.authoring.sandbox.messages import (CellEnd, CellResult, CellStart, CheckResult,
                                                  Done, Error, Exit, FrameReader, Hello, Job,
                                                  JobResult, Snapshot, Stop, Verdict)
from coursekit.authoring.sandbox.proctree import kill_tree, memory_used, rss_bytes

_POLL = 0.05                          # seconds between the watcher's checks


@dataclasses.dataclass
class WorkerState:
    """What the worker prepared once and every job shares."""

    shell: object = None              # the IPython shell the notebook children run cells in
    view_base: str = ""               # an empty folder each child mounts its view on
    warm: set = dataclasses.field(default_factory=set)
    prints: tuple | None = None       # (len(sys.modules), fingerprint) of the worker


STATE = WorkerState()


def prepare() -> None:
    """Import what every notebook needs, once, in the pristine worker."""
    import tempfile
    STATE.view_base = tempfile.mkdtemp(prefix="view-", dir=os.getcwd())
    if LINUX:
        try:
            import ctypes
            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        except Exception:
            pass
    import importlib
    import cloudpickle  # noqa: F401
    import matplotlib
    matplotlib.use("Agg")
    import coursekit.checks
    # What notebooks use all the time. torch._dynamo comes in with the first optimizer
    # step and rebinds torch.manual_seed, so it must be loaded before any fingerprint.
    # (Not scikit-learn: importing it starts an OpenMP thread, and forking after that
    # is not safe.)
    for name in ("numpy", "torch", "torch.optim", "torch._dynamo", "matplotlib.pyplot",
                 "einops", "tqdm.auto", "ipywidgets", "IPython.display", "coursekit",
                 "coursekit.checks.assertions", "coursekit.data", "coursekit.models",
                 "coursekit.plots", "coursekit.train"):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    import pkgutil
    for info in pkgutil.iter_modules(coursekit.checks.__path__):
        if re.fullmatch(r"ch\d+", info.name):
            try:
                getattr(coursekit.checks, info.name)
            except Exception:
                pass
    from traitlets.config import Config
    from IPython.core.interactiveshell import InteractiveShell
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)

    def ask_exit():   # exit() / quit(): ipykernel shuts the kernel down; the runner stops
        shell.exit_now = True
    shell.ask_exit = ask_exit
    STATE.shell = shell


def warm(statements: list[str]) -> None:
    """Run the solution's import statements in the worker, so children start warm."""
    for statement in statements:
        if statement in STATE.warm:
            continue
        STATE.warm.add(statement)
        try:
            exec(compile(statement, "<warm-up>", "exec"), {"__name__": "__warm__"})
        except Exception:
            pass


def _fork(target, *args) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            target(*args, write_fd)
        except BaseException:
            pass
        finally:
            os._exit(0)
    os.close(write_fd)
    return pid, read_fd


def watch(pid: int, fd: int, job: Job, on_frame, limit) -> Stop | None:
    """Follow a child until it exits, feeding its frames to ``on_frame``.

    ``limit(now)`` returns a :class:`Stop` when a deadline passed. Returns None when the
    child exited by itself after saying Done or Verdict, else why it was stopped
    (timeout, memory, died, protocol).
    """
    reader = FrameReader(job.snapshot_mb * 2**20)
    baseline = rss_bytes(os.getpid())
    memory = job.memory_mb * 2**20
    finished, status, eof, stop = False, None, False, None
    last_memory, used = 0.0, 0

    def drain(wait: float) -> bool:
        """Read what the child wrote; False at end of file."""
        nonlocal finished, stop
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True
        data = os.read(fd, 1 << 20)
        if not data:
            return False
        try:
            for message, payload in reader.feed(data):
                if isinstance(message, (Done, Verdict)):
                    finished = True
                on_frame(message, payload)
        except (ValueError, KeyError, TypeError, IndexError):
            stop = Stop("protocol")
        return True

    while True:
        if not eof:
            eof = not drain(_POLL)
        else:
            time.sleep(_POLL)
        if status is None:
            done_pid, code = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                status = code
                for _ in range(64):     # what it wrote before exiting (a pipe holds 64 KiB)
                    if eof or stop is not None or not select.select([fd], [], [], 0)[0]:
                        break
                    eof = not drain(0)
                break_now = True
            else:
                break_now = False
        else:
            break_now = True
        now = time.monotonic()
        if stop is None and not break_now:
            stop = limit(now)
        if stop is None and not break_now and LINUX and now - last_memory > 0.2:
            last_memory = now
            used = memory_used(pid, baseline)
            if used > memory:
                stop = Stop("memory")
        if stop is not None or break_now:
            break
    kill_tree(pid)
    os.close(fd)
    if stop is None and not finished:   # died: most likely of memory if it was near the limit
        stop = Stop("memory" if used > 0.8 * memory else "died")
    return stop


def refusal(error: Error | None) -> str:
    """'memory' or 'sandbox' when a cell's error means grading must stop there."""
    if error is None:
        return ""
    if error.ename == "MemoryError" or "can't allocate memory" in error.evalue:
        return "memory"
    if error.ename == "PermissionError" and error.evalue.startswith("grading sandbox:"):
        return "sandbox"
    return ""


def grade_job(job: Job) -> JobResult:
    """Run one submission: the notebook process, then one check process per check."""
    secret = [job.secret]              # one holder, emptied in the notebook's process
    job.secret = ""
    if job.view is not None:
        job.view = {**job.view, "base": STATE.view_base}
    warm(job.imports)
    if STATE.prints is None or STATE.prints[0] != len(sys.modules):   # shared by the checks
        STATE.prints = (len(sys.modules), fingerprint())
    start = time.monotonic()
    cells = [CellResult() for _ in job.cells]
    snapshots: dict[int, tuple[dict, bytes]] = {}
    current = {"cell": None, "since": start, "confinement": "", "stop": None, "exit": None}

    def on_frame(message, payload):
        if isinstance(message, Hello):
            current["confinement"] = message.confinement
        elif isinstance(message, CellStart):
            current["cell"], current["since"] = message.cell, time.monotonic()
        elif isinstance(message, CellEnd):
            cells[message.cell] = CellResult(True, message.error)
            current["cell"] = None
            why = refusal(message.error)
            if why:   # out of memory, or refused by the sandbox: grading stops here
                current["stop"] = Stop(why, message.cell, message.error.evalue[:300])
        elif isinstance(message, Snapshot):
            snapshots[message.check] = (message.index, payload)
        elif isinstance(message, Exit):
            current["exit"] = message.cell

    def limit(now):
        if current["stop"] is not None:
            return current["stop"]
        if now - start > job.notebook_timeout:
            return Stop("notebook-timeout", current["cell"])
        if current["cell"] is not None and now - current["since"] > job.cell_timeout:
            return Stop("timeout", current["cell"])
        return None

    pid, fd = _fork(run_notebook, job, secret, STATE.shell)
    stop = watch(pid, fd, job, on_frame, limit)
    if stop is not None and stop.cell is None:
        stop.cell = current["cell"]
    if stop is None and current["exit"] is not None:
        stop = Stop("exit", current["exit"])

    checks = []
    for k, check in enumerate(job.checks):
        stopped_at = stop.cell if stop is not None else None
        if k not in snapshots or (stopped_at is not None and stopped_at <= check.cell):
            checks.append(CheckResult("not-run"))   # not reached, or stopped inside or before
            continue
        index, payload = snapshots[k]
        verdicts: list[Verdict] = []

        def on_verdict(message, _payload, verdicts=verdicts):
            if isinstance(message, Verdict):
                verdicts.append(message)

        began = time.monotonic()

        def check_limit(now, began=began):
            return Stop("timeout") if now - began > job.cell_timeout else None

        pid, fd = _fork(run_check, job, check, index, payload, secret, STATE.shell, STATE.prints)
        check_stop = watch(pid, fd, job, on_verdict, check_limit)
        kernel = cells[check.cell].error
        if check_stop is not None or not verdicts:
            checks.append(CheckResult("stopped", stop=check_stop or Stop("died"), kernel=kernel))
        else:
            verdict = verdicts[-1]
            checks.append(CheckResult("passed" if verdict.passed else "failed", verdict.error,
                                      list(verdict.tampered), dict(verdict.copy_errors), kernel))
    return JobResult(cells, stop, checks, confinement=current["confinement"],
                     bubblewrap=os.environ.get("COURSEKIT_BWRAP") == "1",
                     seconds=round(time.monotonic() - start, 3))


def serve() -> None:
    """The worker's loop: one JSON job per line on stdin, one JSON answer per line."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                 # stray prints must not corrupt the protocol
    prepare()
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("op") == "quit":
            break
        try:
            answer = '{"ok": true, "result": ' + grade_job(Job.from_dict(message["job"])).to_json() + "}"
        except Exception as err:  # a bug in the grader, not in the submission
            import traceback
            answer = json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}",
                                 "trace": traceback.format_exc()})
        kill_tree()
        out.write(answer + "\n")
