"""The worker's view of what a child started: memory used and clean-up, through psutil.

The worker is a child subreaper (Linux), so a process the notebook started and left
behind becomes the worker's own child and is still found here.
"""
from __future__ import annotations

import os
import signal
import time

import psutil


def descendants(root: int) -> list[psutil.Process]:
    """Every process below ``root`` (orphans included, since the worker is a subreaper)."""
    try:
        return psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []


def memory_used(pid: int, baseline: int) -> int:
    """Resident memory a child and everything below it added: a fork of the worker
    (same executable) counts what it holds beyond the worker's own pages."""
    me = _exe(psutil.Process())
    try:
        tree = [psutil.Process(pid), *descendants(pid)]
    except psutil.Error:
        return 0
    total = 0
    for proc in tree:
        try:
            rss = proc.memory_info().rss
        except psutil.Error:
            continue
        total += max(0, rss - baseline) if _exe(proc) in (me, None) else rss
    return total


def rss_bytes(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _exe(proc: psutil.Process) -> str | None:
    try:
        return proc.exe()
    except psutil.Error:
        return None


def kill_tree(pid: int | None = None) -> None:
    """SIGKILL a child's process group and every process left below the worker; reap them."""
    me = os.getpid()
    for _ in range(5):
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        left = descendants(me)
        for child in left:
            try:
                child.kill()
            except psutil.Error:
                pass
        reap()
        if not left:
            break
        time.sleep(0.01)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
