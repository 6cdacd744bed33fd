"""Checks of chapter 00 (Welcome): four warm-ups with the tensor skills later chapters use.

Mirrors ``exercises/00_welcome.ipynb``: ``checkerboard``, ``standardise``, ``one_hot``,
``accuracy``. Each check compares the learner's function with a reference written
here, on fixed and random cases, and says what to fix when they differ.
"""
from __future__ import annotations

import torch

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, passed,
                                         require_callable)

EPS = 1e-8  # the small number standardise adds to the standard deviation


# -- references --------------------------------------------------------------------------

def _checkerboard(h: int, w: int) -> torch.Tensor:
    i = torch.arange(h)[:, None]                      # (h, 1)
    j = torch.arange(w)[None, :]                      # (1, w)
    return ((i + j) % 2 == 0).float()                 # (h, w)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=0, keepdim=True)                # (1, D)
    std = x.std(dim=0, correction=0, keepdim=True)    # (1, D)
    return (x - mean) / (std + EPS)


def _one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    out = torch.zeros(len(labels), n_classes)
    out[torch.arange(len(labels)), labels] = 1.0
    return out


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


def _show(t: torch.Tensor):
    """A small tensor as nested lists (easier to read than a summary); a big one as is."""
    return str(t.detach().cpu().tolist()) if t.numel() <= 40 else t


def _expect_equal(check: str, case: str, got: torch.Tensor, ref: torch.Tensor, hint: str) -> None:
    if not torch.equal(got.detach().cpu().float(), ref.float()):
        fail(check, case, _show(ref), _show(got), hint)


def _as_float(check: str, value, what: str) -> float:
    """A Python number or a 0-d tensor -> float; anything else fails clearly."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    fail(check, f"{what} should be one number", "a float (or a 0-d tensor)",
         f"{type(value).__name__}: {value!r}"[:200],
         "reduce to a single number, e.g. with .mean() and then .item()")


# -- checks ------------------------------------------------------------------------------

def check_checkerboard(checkerboard) -> None:
    """``checkerboard(h, w)``: an (h, w) float tensor, 1 where row + column is even, else 0."""
    name = "check_checkerboard"
    require_callable(name, checkerboard, "checkerboard", n_args=2)
    for h, w in [(2, 3), (4, 4), (1, 1), (5, 2), (3, 7)]:
        got = call(name, checkerboard, h, w, what=f"checkerboard({h}, {w})")
        as_tensor(name, got, f"checkerboard({h}, {w})", shape=(h, w))
        if not got.is_floating_point():
            fail(name, f"checkerboard({h}, {w}) should hold floats", "dtype float32",
                 f"dtype {got.dtype}", "finish with .float(), or build it from 0.0 and 1.0")
        ref = _checkerboard(h, w)
        if torch.equal(got.float(), 1 - ref):
            fail(name, f"checkerboard({h}, {w})", _show(ref), _show(got),
                 "the colours are swapped: the top-left corner [0, 0] should be 1")
        _expect_equal(name, f"checkerboard({h}, {w})", got, ref,
                      hint="entry [i, j] is 1 when (i + j) is even; try (i + j) % 2 with "
                           "i = torch.arange(h)[:, None] and j = torch.arange(w)[None, :]")
    passed(name, "5 board sizes")


def check_standardise(standardise) -> None:
    """``standardise(x)``: (N, D) -> (N, D), each column with mean 0 and standard deviation 1."""
    name = "check_standardise"
    require_callable(name, standardise, "standardise", n_args=1)
    g = torch.Generator().manual_seed(0)
    cases = {
        "a 3 x 2 batch": torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]]),
        "a random 50 x 4 batch": 3.0 + 2.0 * torch.randn(50, 4, generator=g),
        "a batch whose second feature is constant": torch.tensor([[1.0, 3.0], [5.0, 3.0], [0.0, 3.0]]),
        "a random 6 x 6 batch": torch.randn(6, 6, generator=g) * torch.tensor([1.0, 5, 0.1, 2, 3, 9]),
    }
    for case, x in cases.items():
        ref = _standardise(x)
        given = x.clone()
        got = call(name, standardise, given, what="standardise(x)")
        if not torch.equal(given, x):
            fail(name, f"{case}: standardise changed its input x in place", "x left unchanged",
                 "x modified", "build a new tensor (x - mean) / ... instead of using -= or /=")
        got = as_tensor(name, got, "standardise(x)", shape=tuple(x.shape), dtype_float=True)
        if torch.isnan(got).any():
            fail(name, case, ref, got, "NaN appears when a feature is constant (its standard "
                 f"deviation is 0): divide by (std + {EPS:g})")
        rows = x.shape[0] != x.shape[1]
        if rows and torch.allclose(got, (x - x.mean(1, keepdim=True)) / (x.std(1, correction=0, keepdim=True) + EPS), atol=1e-4):
            fail(name, case, ref, got, "you standardised each row (dim=1); standardise each "
                 "feature, i.e. each column: use dim=0")
        unbiased = (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + EPS)
        if not torch.allclose(ref, unbiased, atol=1e-4) and torch.allclose(got, unbiased, atol=1e-4):
            fail(name, case, ref, got, "x.std() divides by N - 1 by default; this exercise uses "
                 "the population standard deviation: x.std(dim=0, correction=0)")
        expect_close(name, case, got, ref, atol=1e-4,
                     hint="subtract the column means x.mean(dim=0) and divide by "
                          f"x.std(dim=0, correction=0) + {EPS:g}")
    passed(name, f"{len(cases)} batches")


def check_one_hot(one_hot) -> None:
    """``one_hot(labels, n_classes)``: (N,) int64 -> (N, n_classes) float, one 1 per row."""
    name = "check_one_hot"
    require_callable(name, one_hot, "one_hot", n_args=2)
    g = torch.Generator().manual_seed(1)
    cases = [
        (torch.tensor([0, 2, 1]), 3),
        (torch.tensor([1, 0, 1, 1, 0]), 4),    # class 3 never appears, the width is still 4
        (torch.tensor([5]), 10),
        (torch.randint(0, 10, (32,), generator=g), 10),
    ]
    for labels, n_classes in cases:
        case = f"one_hot(labels={labels.tolist() if len(labels) <= 8 else 'random (32,)'}, n_classes={n_classes})"
        ref = _one_hot(labels, n_classes)
        got = call(name, one_hot, labels.clone(), n_classes, what="one_hot(labels, n_classes)")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (n_classes, len(labels)) and n_classes != len(labels):
            fail(name, case, f"shape {tuple(ref.shape)}", f"shape {tuple(got.shape)}",
                 "rows are examples and columns are classes: the result is transposed")
        if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape[0] == len(labels) \
                and got.shape[1] == int(labels.max()) + 1 and got.shape[1] != n_classes:
            fail(name, case, f"shape {tuple(ref.shape)}", f"shape {tuple(got.shape)}",
                 "use n_classes for the width, not labels.max() + 1: a batch may miss a class")
        as_tensor(name, got, case, shape=(len(labels), n_classes))
        if not got.is_floating_point():
            fail(name, case + " should hold floats", "dtype float32", f"dtype {got.dtype}",
                 "torch.nn.functional.one_hot returns int64: add .float()")
        if torch.equal(got.detach().cpu().float(), ref.T) and not torch.equal(ref, ref.T):
            fail(name, case, _show(ref), _show(got), "rows are examples and columns are "
                 "classes: the result is transposed")
        _expect_equal(name, case, got, ref,
                      hint="row n has a single 1, in column labels[n], and 0 elsewhere")
    passed(name, f"{len(cases)} label sets")


def check_accuracy(accuracy) -> None:
    """``accuracy(logits, labels)``: the fraction of rows whose largest logit is the label."""
    name = "check_accuracy"
    require_callable(name, accuracy, "accuracy", n_args=2)
    g = torch.Generator().manual_seed(2)
    cases = {
        "3 examples, 2 right": (torch.tensor([[2.0, 1.0], [0.1, 0.9], [3.0, -1.0]]),
                                torch.tensor([0, 1, 1])),
        "4 examples, all right": (torch.eye(4) * 5 - 1, torch.arange(4)),
        "2 examples, none right": (torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
                                   torch.tensor([0, 2])),
        "100 random examples": (torch.randn(100, 10, generator=g),
                                torch.randint(0, 10, (100,), generator=g)),
    }
    for case, (logits, labels) in cases.items():
        ref = _accuracy(logits, labels)
        got = _as_float(name, call(name, accuracy, logits.clone(), labels.clone(),
                                   what="accuracy(logits, labels)"), "accuracy(logits, labels)")
        n_right = ref * len(labels)
        if abs(got - ref) > 1e-6 and abs(got - n_right) < 1e-6 and n_right > 1:
            fail(name, case, ref, got, "that is the number of right answers: divide by the "
                 "number of examples to get a fraction")
        if abs(got - ref) > 1e-6 and abs(got - 100 * ref) < 1e-4:
            fail(name, case, ref, got, "return a fraction between 0 and 1, not a percentage")
        if abs(got - ref) > 1e-6:
            fail(name, case, ref, got, "predict with logits.argmax(dim=1) (one class per row), "
                 "compare with labels, and take the mean of the matches as floats")
    passed(name, f"{len(cases)} batches")


def check_fahrenheit(to_fahrenheit) -> None:
    """The lesson's demonstration check (not graded): ``to_fahrenheit(celsius) = celsius * 9/5 + 32``.

    Works for a number and for a tensor of temperatures.
    """
    name = "check_fahrenheit"
    require_callable(name, to_fahrenheit, "to_fahrenheit", n_args=1)
    cases = [0.0, 100.0, -40.0, 37.0, torch.tensor([-10.0, 0.0, 21.5])]
    for c in cases:
        is_tensor = isinstance(c, torch.Tensor)
        case = f"to_fahrenheit({c.tolist() if is_tensor else c})"
        ref = torch.as_tensor(c, dtype=torch.float64) * 9 / 5 + 32
        got = call(name, to_fahrenheit, c.clone() if is_tensor else c, what=case)
        if not isinstance(got, (int, float, torch.Tensor)) or isinstance(got, bool):
            fail(name, case, "a number", f"{type(got).__name__}: {got!r}"[:120],
                 "return the temperature (did you forget the return statement?)")
        got_t = torch.as_tensor(got, dtype=torch.float64)
        shown_ref = ref.tolist() if is_tensor else f"{ref.item():g}"
        shown_got = got_t.tolist() if got_t.dim() else f"{got_t.item():g}"
        if got_t.shape != ref.shape:
            fail(name, case, f"shape {tuple(ref.shape)}", f"shape {tuple(got_t.shape)}",
                 "compute on the input as it is, element by element")
        if torch.allclose(got_t, ref, atol=1e-4):
            continue
        if torch.allclose(got_t, ref - 32, atol=1e-4):
            hint = "close: the scale is right but the offset is missing; add 32 after multiplying by 9/5"
        elif torch.allclose(got_t, (torch.as_tensor(c, dtype=torch.float64) + 32) * 9 / 5, atol=1e-4):
            hint = "multiply by 9/5 first, then add 32 (mind the brackets)"
        else:
            hint = "Fahrenheit = Celsius * 9 / 5 + 32; water freezes at 32 F and boils at 212 F"
        fail(name, case, shown_ref, shown_got, hint)
    passed(name, f"{len(cases)} temperatures")
