"""A pool of sandbox workers (:mod:`coursekit.authoring.sandbox`) for ``coursekit grade``.

Each worker is a separate Python process that has imported torch, coursekit and IPython
once and forks a fresh, shut-in process per notebook and per check, so a class is
graded without paying the interpreter's and torch's start-up per submission, and no
submission can affect another. Workers hold no learner state between jobs, so one
pool serves every ``grade()`` call of a process; it is closed at exit.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from coursekit.authoring.sandbox.messages import Job, JobResult


class WorkerError(RuntimeError):
    """A worker died, hung or answered nonsense; the job was not graded."""

    def __init__(self, message: str, died: bool = False):
        super().__init__(message)
        self.died = died          # the worker process is gone (a retry may succeed)


_AREA: list[str] = []


def grading_area() -> str:
    """The one folder of this process under which every submission is graded (made on
    first use, removed at exit): the only place a bubblewrapped worker can write."""
    if not _AREA or not os.path.isdir(_AREA[0]):
        _AREA[:] = [tempfile.mkdtemp(prefix="coursekit-grading-area-")]
    return _AREA[0]


class Worker:
    """One sandbox worker process and its JSON-lines channel.

    Where bubblewrap works (:func:`coursekit.authoring.view.bwrap_works`), the worker
    starts inside it and sees only the allow-listed view, its own folder and the
    grading area; elsewhere it starts as a plain process and each child it forks
    builds the same view with namespaces."""

    def __init__(self, threads: int, start_timeout: float = 300, bubblewrap: bool | None = None):
        from coursekit.authoring import view
        self.home = tempfile.mkdtemp(prefix="coursekit-worker-")
        env = dict(os.environ)
        env.update({"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "IPYTHONDIR": self.home,
                    "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.pop("COURSEKIT_FAST", None)
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.log = open(os.path.join(self.home, "worker.log"), "wb")
        self.bubblewrap = view.bwrap_works() if bubblewrap is None else bubblewrap
        command = [sys.executable, "-m", "coursekit.authoring.sandbox"]
        if self.bubblewrap:
            env["COURSEKIT_BWRAP"] = "1"
            env["TMPDIR"] = self.home
            command = view.bwrap_command([self.home, grading_area()]) + command
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, cwd=self.home, env=env,
            start_new_session=True)
        self.started = time.monotonic()
        self.start_timeout = start_timeout
        self.ready = False

    def _readline(self, timeout: float) -> bytes:
        out = self.proc.stdout
        ready, _, _ = select.select([out], [], [], max(0.0, timeout))
        if not ready:
            raise WorkerError("the grading worker did not answer in time")
        line = out.readline()
        if not line:
            raise WorkerError("the grading worker stopped (see its log: "
                              + self.log_tail() + ")", died=True)
        return line

    def wait_ready(self) -> None:
        if not self.ready:
            left = self.start_timeout - (time.monotonic() - self.started)
            message = json.loads(self._readline(left))
            if not message.get("ready"):
                raise WorkerError(f"the grading worker could not start: {message}")
            self.ready = True

    def run(self, job: Job, timeout: float) -> JobResult:
        self.wait_ready()
        try:
            line = '{"op": "grade", "job": ' + job.to_json() + '}\n'
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except OSError:
            raise WorkerError("the grading worker had stopped", died=True) from None
        answer = json.loads(self._readline(timeout))
        if not answer.get("ok"):
            raise WorkerError(f"grader bug: {answer.get('error')}\n{answer.get('trace', '')}")
        return JobResult.from_dict(answer["result"])

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.home, "worker.log"), "rb") as fh:
                return fh.read()[-2000:].decode(errors="replace").strip() or "empty"
        except OSError:
            return "no log"

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


class WorkerPool:
    """Up to ``size`` workers, started on demand; ``run`` blocks until one is free."""

    def __init__(self, size: int, threads: int, bubblewrap: bool | None = None):
        self.size, self.threads, self.bubblewrap = size, threads, bubblewrap
        self.idle: queue.Queue[Worker] = queue.Queue()
        self.count = 0
        self.lock = threading.Lock()
        self.all: list[Worker] = []

    def _take(self) -> Worker:
        """A free, living worker: an idle one, a new one while under ``size``, or the
        next one to come free. Workers found dead are replaced."""
        while True:
            with self.lock:
                if self.idle.empty() and self.count < self.size:
                    self.count += 1
                    worker = Worker(self.threads, bubblewrap=self.bubblewrap)
                    self.all.append(worker)
                    return worker
            worker = self.idle.get()
            if worker.proc.poll() is None:
                return worker
            self._drop(worker)

    def _drop(self, worker: Worker) -> None:
        worker.close()
        with self.lock:
            if worker in self.all:
                self.all.remove(worker)
                self.count -= 1

    def warm_up(self, n: int) -> None:
        """Start ``n`` workers now (they import torch in parallel)."""
        with self.lock:
            while self.count < min(n, self.size):
                self.count += 1
                worker = Worker(self.threads, bubblewrap=self.bubblewrap)
                self.all.append(worker)
                self.idle.put(worker)

    def run(self, job: Job, timeout: float, retry: bool = True) -> JobResult:
        """Grade one job on a free worker. A worker found dead is replaced and the job
        tried once more; a worker that hangs or dies twice fails the job."""
        worker = self._take()
        try:
            result = worker.run(job, timeout)
        except (WorkerError, OSError, ValueError) as err:
            self._drop(worker)
            if retry and getattr(err, "died", False):
                return self.run(job, timeout, retry=False)
            raise WorkerError(str(err)) from None
        self.idle.put(worker)
        return result

    def close(self) -> None:
        with self.lock:
            for worker in self.all:
                worker.close()
            self.all.clear()
            self.count = 0
            self.idle = queue.Queue()


_POOLS: dict[tuple[int, int], WorkerPool] = {}


def get_pool(size: int, threads: int, isolate: bool = True) -> WorkerPool:
    """The process's shared pool for this size (workers are stateless between jobs).
    ``isolate=False`` (``Settings.isolate``) starts its workers outside bubblewrap too."""
    key = (size, threads, isolate)
    if key not in _POOLS:
        _POOLS[key] = WorkerPool(size, threads, bubblewrap=None if isolate else False)
    return _POOLS[key]


@atexit.register
def close_all() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()
    if _AREA:
        shutil.rmtree(_AREA[0], ignore_errors=True)
