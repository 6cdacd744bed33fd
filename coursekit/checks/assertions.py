"""The building blocks every check uses: readable failures, type and shape guards.

A failure message has always the same four parts, so a learner knows where to look::

    check_relu failed: relu(x) for x = tensor([-1., 0., 2.])
      expected: tensor([0., 0., 2.])
      got:      tensor([-1., 0., 2.])
      hint:     negative inputs should become 0; try torch.clamp(x, min=0)
"""
from __future__ import annotations

import inspect
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


def call(check: str, fn: Callable, *args, what: str = "your function", **kwargs) -> Any:
    """Call the learner's function; a crash inside it becomes a readable failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailure(f"{check} failed: {what} is not written yet (it raises "
                           "NotImplementedError).\n  hint:     replace the "
                           "'raise NotImplementedError()' line with your answer") from None
    except CheckFailure:
        raise
    except Exception as err:  # the learner's code raised: report it, keep the cause
        raise CheckFailure(
            f"{check} failed: calling {what} raised {type(err).__name__}: {err}\n"
            f"  hint:     run your function on a small example in a cell above to see "
            f"where it breaks") from err


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
