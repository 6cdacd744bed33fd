"""The building blocks every check uses: readable failures, type and shape guards.

A failure message has always the same four parts, so a learner knows where to look::

    check_relu failed: relu(x) for x = tensor([-1., 0., 2.])
      expected: tensor([0., 0., 2.])
      got:      tensor([-1., 0., 2.])
      hint:     negative inputs should become 0; try torch.clamp(x, min=0)
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from collections.abc import Callable
from typing import Any

import torch

PASS_MARK = "PASSED"


class CheckFailure(AssertionError):
    """Raised by a check whose case did not match the reference."""


def _short(value: Any, limit: int = 300) -> str:
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            text = f"tensor of shape {tuple(value.shape)}, dtype {str(value.dtype).replace('torch.', '')}"
            if value.numel() <= 40:
                text += f": {value.detach().cpu().tolist()}"
            elif value.is_floating_point() and value.numel():
                text += (f", mean {value.float().mean().item():.4g}, "
                         f"first values {value.detach().flatten()[:4].cpu().tolist()}")
            return text
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def fail(check: str, case: str, expected: Any, got: Any, hint: str = "") -> None:
    """Raise a CheckFailure with the standard four-part message."""
    lines = [f"{check} failed: {case}",
             f"  expected: {expected if isinstance(expected, str) else _short(expected)}",
             f"  got:      {got if isinstance(got, str) else _short(got)}"]
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailure("\n".join(lines))


def passed(check: str, detail: str = "") -> None:
    """Print the one-line pass message of a check."""
    print(f"{PASS_MARK} {check}" + (f": {detail}" if detail else ""))


def require_callable(check: str, fn: Any, what: str, n_args: int | None = None) -> None:
    """Fail clearly when ``fn`` is not a function (e.g. the learner passed its result)."""
    if not callable(fn):
        fail(check, f"{what} should be a function", "a function (pass it without calling it)",
             f"{type(fn).__name__}: {_short(fn, 80)}",
             "pass the function itself, e.g. check(my_fn), not check(my_fn(x))")
    if n_args is not None:
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.default is inspect.Parameter.empty
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            return
        if len(params) > n_args:
            fail(check, f"{what} takes the wrong number of arguments",
                 f"{n_args} argument(s)", f"{len(params)}: {[p.name for p in params]}",
                 "compare your def line with the one in the exercise")


def refuse(check: str, finding_or_call, what: str = "your answer") -> None:
    """Fail with the standard message for an answer that uses something its exercise bans."""
    from coursekit.checks.forbidden import BannedCall, Finding
    if isinstance(finding_or_call, Finding):
        b, used = finding_or_call.ban, finding_or_call.what
        where = f" ({finding_or_call.where})" if finding_or_call.where else ""
        case = f"{what} uses {used}{where}"
    elif isinstance(finding_or_call, BannedCall):
        b, used = finding_or_call.ban, finding_or_call.what
        case = f"while {what} ran, it reached {used}"
    else:  # pragma: no cover - a programming error in a check
        raise TypeError(finding_or_call)
    fail(check, case, f"an answer written without {b.label}", f"a use of {used}", b.reason)


def scan_answer(check: str, obj: Any, bans, what: str = "your answer") -> None:
    """Refuse ``obj`` (function, class or module) when its code reaches a banned name."""
    from coursekit.checks.forbidden import scan
    findings = scan(obj, bans)
    if findings:
        refuse(check, findings[0], what)


@contextlib.contextmanager
def guarded(check: str, bans, what: str = "your answer"):
    """Run a block of the learner's code with the bans enforced at run time.

    Use it around the lines of a check that run only learner code (a module's forward,
    a training step), and compute references outside it.
    """
    from coursekit.checks.forbidden import BannedCall, no_banned_calls
    bans = list(bans or ())
    if not bans:
        yield
        return
    try:
        with no_banned_calls(bans) as guard:
            yield
    except BannedCall as err:
        refuse(check, err, what)
    if guard.hits:                     # the answer caught the tripwire and went on
        refuse(check, guard.hits[0], what)


def call(check: str, fn: Callable, *args, what: str = "your function", bans=(),
         **kwargs) -> Any:
    """Call the learner's function; a crash inside it becomes a readable failure.

    Args:
        check: the check's name, for messages.
        fn: the learner's function (or class, to construct it).
        what: how to name the call in messages, e.g. ``"relu(z)"``.
        bans: :class:`coursekit.checks.forbidden.Ban` s the answer may not use: its code
            is read for them first, and they are tripwires while it runs.
    Returns:
        What ``fn`` returned, with any tensor subclass (also inside tuples, lists and
        dicts) turned into a plain ``torch.Tensor``, so the check compares real data.
    """
    bans = list(bans or ())
    if bans:
        scan_answer(check, fn, bans, what=getattr(fn, "__name__", what))
    try:
        with guarded(check, bans, what):
            result = fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailure(f"{check} failed: {what} is not written yet (it raises "
                           "NotImplementedError).\n  hint:     replace the "
                           "'raise NotImplementedError()' line with your answer") from None
    except CheckFailure:
        raise
    except Exception as err:  # the learner's code raised: report it, keep the cause
        raise CheckFailure(
            f"{check} failed: calling {what} raised {type(err).__name__}\n"
            f"  message:  {short_text(err)}\n"
            f"  hint:     run your function on a small example in a cell above to see "
            f"where it breaks") from err
    return plain(result)


def short_text(value: Any, limit: int = 160) -> str:
    """A learner's own text (an exception, a returned value) cut to a line or two."""
    text = str(value).strip().replace("\r", "")
    lines = text.splitlines() or [""]
    out = lines[0] if len(lines) == 1 else lines[0] + " ..."
    if len(out) > limit:
        out = out[:limit] + " ..."
    if out != text:
        out += f" [cut; {len(text)} characters in all]"
    return out


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with every tensor subclass in it (to a few levels of tuples, lists and
    dicts) replaced by a plain tensor: see :func:`plain_tensor`."""
    if isinstance(value, torch.Tensor):
        return plain_tensor(value)
    if depth < 3 and type(value) in (tuple, list):
        return type(value)(plain(v, depth + 1) for v in value)
    if depth < 3 and type(value) is dict:
        return {k: plain(v, depth + 1) for k, v in value.items()}
    return value


def as_number(check: str, value: Any, what: str) -> float:
    """A Python number or a one-element tensor -> float; anything else fails clearly."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = plain_tensor(value)
        return float(value.detach().reshape(()).item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    fail(check, f"{what} should be one number", "a float (or a 0-d tensor)",
         f"{type(value).__name__}: {_short(value, 120)}",
         "reduce to a single number, e.g. with .mean() and then .item()")


_GRADING_SECRET: str | None = None   # set by coursekit grade's check process only


def seeded(seed: int) -> torch.Generator:
    """A generator of its own for a check's cases: the learner's global random state is left alone."""
    return torch.Generator().manual_seed(seed)


def hidden_seed(label: str) -> int:
    """A seed for an instructor-only case that a learner cannot predict.

    Under ``coursekit grade`` it is derived from the grading secret (``--secret``, the
    environment's ``COURSEKIT_GRADING_SECRET``, or one the grader draws and keeps in the
    output folder), so the same secret regrades to the same marks. Only the process that
    runs the instructor's checks is handed the secret, never the learner's notebook. Outside
    grading (a learner running the solutions, the course's own tests) it is a fixed
    value, so those runs stay deterministic.
    """
    secret = _GRADING_SECRET if _GRADING_SECRET is not None \
        else os.environ.get("COURSEKIT_GRADING_SECRET", "")
    digest = hashlib.sha256(f"{secret}\0{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2 ** 31 - 1)


def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """The same data as a plain torch.Tensor, whatever subclass ``value`` is.

    A tensor subclass can override ``__torch_function__`` and so answer every torch
    call (``shape``, ``allclose``, ...) as it likes; a check must only ever compare plain
    tensors. Parameters are plain tensors with a flag and are kept as they are.
    """
    if type(value) is torch.Tensor or isinstance(value, torch.nn.Parameter):
        return value
    with torch._C.DisableTorchFunctionSubclass():
        return torch.Tensor.as_subclass(value, torch.Tensor)


def as_tensor(check: str, value: Any, what: str, shape: tuple | None = None,
              dtype_float: bool = False) -> torch.Tensor:
    """Insist on a tensor (with a given shape, where -1 matches any size)."""
    if not isinstance(value, torch.Tensor):
        fail(check, f"{what} should be a torch.Tensor", "a torch.Tensor",
             f"{type(value).__name__}: {_short(value, 80)}",
             "build it with torch operations, or wrap it with torch.tensor(...)")
    value = plain_tensor(value)
    if shape is not None:
        ok = value.dim() == len(shape) and all(s == -1 or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = "(" + ", ".join("any" if s == -1 else str(s) for s in shape) + ")"
            fail(check, f"{what} has the wrong shape", f"shape {want}",
                 f"shape {tuple(value.shape)}",
                 "print(x.shape) after each line to see where the shape changes")
    if dtype_float and not value.is_floating_point():
        fail(check, f"{what} should hold floats", "a floating-point tensor",
             f"dtype {value.dtype}", "use .float() or build it from float values")
    return value


def expect_close(check: str, case: str, got: Any, expected: torch.Tensor, atol: float = 1e-5,
                 rtol: float = 1e-4, hint: str = "", what: str = "the result") -> None:
    """Compare a learner's tensor with the reference: type, shape, NaNs, then values."""
    expected = torch.as_tensor(expected)
    if isinstance(got, (int, float)) and not isinstance(got, bool) and expected.dim() == 0:
        got = torch.tensor(float(got))
    got = as_tensor(check, got, what, shape=tuple(expected.shape))
    got = got.detach().to("cpu", torch.float64)
    ref = expected.detach().to("cpu", torch.float64)
    if torch.isnan(got).any() and not torch.isnan(ref).any():
        fail(check, case, ref, got, "the result has NaN values: look for a log of 0 or 0/0")
    if not torch.allclose(got, ref, atol=atol, rtol=rtol, equal_nan=True):
        worst = (got - ref).abs().max().item()
        fail(check, case + f" (largest difference {worst:.3g}, tolerance {atol:g})", ref, got, hint)


# -- recognising typical mistakes --------------------------------------------------------------

def matches(a: Any, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """True when ``a`` (anything ``torch.as_tensor`` takes) equals ``b`` in shape and values."""
    try:
        a = torch.as_tensor(a).detach().double()
        return a.shape == b.shape and torch.allclose(a, b.double(), atol=atol, rtol=rtol)
    except (TypeError, RuntimeError, ValueError):
        return False


def diagnose(got: Any, wrong_answers: list[tuple[torch.Tensor, str]], default: str,
             right: torch.Tensor | None = None, atol: float = 1e-4) -> str:
    """The hint of the first known mistake that ``got`` reproduces, else ``default``.

    Args:
        got: what the learner's function returned on a case.
        wrong_answers: (what that mistake returns on the case, the hint that names it).
        default: the hint when no known mistake matches.
        right: the right answer; a mistake that gives it on this case is not named.
    """
    for value, hint in wrong_answers:
        if matches(got, value, atol=atol) and (right is None or not matches(value, right, atol=atol)):
            return hint
    return default


def describe(value: Any) -> str:
    """What a learner returned, in a few words: its type (and length for a sequence)."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__
