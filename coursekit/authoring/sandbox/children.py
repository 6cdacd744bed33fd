"""The two kinds of child a worker forks, each shut in first (:mod:`.confine`).

- the **notebook process** runs the graded notebook's code cells one by one in an
  IPython shell and, just before each check cell, sends the worker a copy
  (cloudpickle) of the objects that check reads, with the random-number state;
- a **check process** binds the solution's imports afresh (the real ``coursekit``),
  takes a fingerprint of coursekit, the builtins, torch and numpy, loads the copied
  objects, runs the released check code and reports *passed* only when the code
  raised nothing and the fingerprint is unchanged.
"""
from __future__ import annotations

import builtins
import sys
import types

from coursekit.authoring.sandbox.confine import shut_in
from coursekit.authoring.sandbox.messages import (CellEnd, CellStart, CheckSpec, Done, Error,
                                                  Exit, Hello, Job, Snapshot, Verdict, send)

# Modules and classes whose callables the check process fingerprints.
WATCHED_MODULES = ("builtins", "sys", "os", "io", "math", "random", "operator", "functools",
                   "inspect", "json", "torch", "torch.nn", "torch.nn.functional",
                   "torch.linalg", "torch.autograd", "numpy", "einops")


def _snapshot(shell, names: list[str], limit_mb: int) -> tuple[dict, bytes]:
    """Copy the objects a check reads out of the learner's namespace (cloudpickle)."""
    import cloudpickle
    index, blobs, offset = {}, [], 0
    room = limit_mb * 2**20 - 2**20            # leave room for the random-number state
    for name in names:
        if name not in shell.user_ns:
            continue
        try:
            blob = cloudpickle.dumps(shell.user_ns[name])
        except BaseException as err:
            index[name] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
            continue
        if offset + len(blob) > room:
            index[name] = {"error": f"it is too large to copy ({len(blob) / 2**20:.0f} MB; "
                                    f"the limit is {limit_mb} MB)"}
            continue
        index[name] = [offset, len(blob)]
        blobs.append(blob)
        offset += len(blob)
    try:
        import random
        import numpy as np
        import torch
        state = cloudpickle.dumps({"torch": torch.get_rng_state(), "random": random.getstate(),
                                   "numpy": np.random.get_state(),
                                   "dtype": torch.get_default_dtype(),
                                   "grad": torch.is_grad_enabled()})
        index["\0state"] = [offset, len(state)]
        blobs.append(state)
    except BaseException:
        pass
    return index, b"".join(blobs)


def run_notebook(job: Job, secret: list, shell, fd: int) -> None:
    """Child: run the graded notebook's code cells in ``shell``, reporting each."""
    secret.clear()   # the grading secret is for the check processes, not the learner's code
    send(fd, Hello(shut_in(job, fd)))
    for i, cell in enumerate(job.cells):
        send(fd, CellStart(i))
        if cell.check is not None:
            index, payload = _snapshot(shell, job.checks[cell.check].names, job.snapshot_mb)
            send(fd, Snapshot(cell.check, index), payload)
        result = shell.run_cell(cell.source, store_history=False)
        send(fd, CellEnd(i, Error.of(result.error_before_exec or result.error_in_exec)))
        if getattr(shell, "exit_now", False):
            send(fd, Exit(i))
            break
    send(fd, Done())


# -- the check process ----------------------------------------------------------------------
def _watched_spaces() -> dict[str, dict]:
    spaces = {"sys.modules": {k: v for k, v in sys.modules.items()
                              if k.split(".")[0] in ("coursekit", "builtins", "torch", "numpy")}}
    for name, module in list(sys.modules.items()):
        if module is not None and (name in WATCHED_MODULES or name.split(".")[0] == "coursekit"):
            spaces[name] = vars(module)
    try:
        import torch
        for cls in (torch.Tensor, torch.nn.Module, torch.nn.Parameter):
            spaces[f"{cls.__module__}.{cls.__qualname__}"] = dict(cls.__dict__)
    except Exception:
        pass
    return spaces


def fingerprint() -> dict[tuple[str, str], tuple]:
    """(namespace, name) -> (object, code object) for every callable, class or module."""
    prints = {}
    for space, mapping in _watched_spaces().items():
        for key, value in list(mapping.items()):
            if space == "sys.modules" or callable(value) or isinstance(value, types.ModuleType):
                prints[(space, str(key))] = (value, getattr(value, "__code__", None))
    return prints


def changed_since(prints: dict) -> list[str]:
    now = {}
    for space, mapping in _watched_spaces().items():
        for key, value in list(mapping.items()):
            now[(space, str(key))] = value
    changed = []
    for (space, key), (value, code) in prints.items():
        current = now.get((space, key), _MISSING)
        if current is not value or getattr(current, "__code__", None) is not code:
            changed.append(f"{space}.{key}" if space != "sys.modules" else f"sys.modules[{key!r}]")
    return sorted(changed)


_MISSING = object()


class NotCopied:
    """Stands for a learner object the grader could not copy out of the notebook."""

    def __init__(self, name: str, error: str):
        object.__setattr__(self, "_why", f"the grader could not copy `{name}` out of the "
                                         f"notebook to check it ({error})")

    def __getattr__(self, attr):
        raise RuntimeError(object.__getattribute__(self, "_why"))

    def __call__(self, *args, **kwargs):
        raise RuntimeError(object.__getattribute__(self, "_why"))

    def __repr__(self):
        return f"<not copied: {object.__getattribute__(self, '_why')}>"


def run_check(job: Job, check: CheckSpec, index: dict, payload: bytes, secret: list,
              shell, prints: tuple[int, dict] | None, fd: int) -> None:
    """Child: run one released check on the copied objects, in pristine coursekit.
    ``prints`` is the worker's (len(sys.modules), fingerprint): reused when the
    check's imports loaded nothing new."""
    shut_in(job, fd)
    from coursekit.checks import assertions
    assertions._GRADING_SECRET = secret[0] if secret else ""   # seeds of the hidden cases
    import cloudpickle
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for statement in job.imports:
        try:
            exec(compile(statement, "<solution imports>", "exec"), namespace)
        except Exception:
            pass
    for module in check.modules:
        try:
            __import__(module)
        except Exception:
            pass
    prints = fingerprint() if prints is None or prints[0] != len(sys.modules) else prints[1]
    namespace["get_ipython"] = lambda: shell
    copy_errors = {}
    for name, where in index.items():
        if name == "\0state":
            continue
        if isinstance(where, dict):
            copy_errors[name] = where.get("error", "unknown error")
            if name not in check.bound:
                namespace[name] = NotCopied(name, copy_errors[name])
            continue
        try:
            start, length = where
            namespace[name] = cloudpickle.loads(payload[start:start + length])
        except BaseException as err:
            copy_errors[name] = f"{type(err).__name__}: {str(err)[:300]}"
            namespace[name] = NotCopied(name, copy_errors[name])
    try:
        start, length = index["\0state"]
        _restore(cloudpickle.loads(payload[start:start + length]))
    except BaseException:
        pass
    error = None
    try:
        exec(compile(check.code, f"<{check.gid}>", "exec"), namespace)
    except BaseException as err:  # SystemExit and KeyboardInterrupt too: all are failures
        error = err
    tampered = changed_since(prints)
    send(fd, Verdict(error is None and not tampered, Error.of(error), tampered[:20], copy_errors))


def _restore(state: dict) -> None:
    import random
    import numpy as np
    import torch
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])


