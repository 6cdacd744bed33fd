"""Checks of chapter 00 (Welcome): four warm-ups with the tensor skills later chapters use.

Mirrors ``exercises/00_welcome.ipynb``: ``checkerboard``, ``standardise``, ``one_hot``,
``accuracy``. Each check compares the learner's function with a reference written
here, on fixed cases and on random ones drawn from ``seed`` (the solutions' hidden tests
pass ``ck.checks.hidden_seed(...)``), and says what to fix when they differ. ``BANS``
lists what each answer may not call: the built-in that would do the exercise's job.
"""
from __future__ import annotations

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, expect_close, fail,
                                         passed, require_callable)
from coursekit.checks.forbidden import ban

EPS = 1e-8  # the small number standardise adds to the standard deviation

BANS = {
    "check_checkerboard": [],
    "check_standardise": [
        ban("torch.nn.functional.batch_norm", "torch.batch_norm", "torch.nn.BatchNorm1d",
            "torch.nn.functional.instance_norm", "sklearn.preprocessing.scale",
            "sklearn.preprocessing.StandardScaler",
            ops=["aten::native_batch_norm", "aten::_native_batch_norm_legit",
                 "aten::_native_batch_norm_legit_no_training"],
            reason="the exercise asks you to compute each column's mean and standard "
                   "deviation yourself; batch normalisation (or a scaler) would do the whole job"),
    ],
    "check_one_hot": [
        ban("torch.nn.functional.one_hot", "torch._C._nn.one_hot", ops=["aten::one_hot"],
            reason="the exercise asks you to build the one-hot rows yourself (from zeros "
                   "and an index, or from a comparison); torch.nn.functional.one_hot would "
                   "do the whole job"),
    ],
    "check_accuracy": [],
    "check_fahrenheit": [],
}


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



# -- checks ------------------------------------------------------------------------------

def check_checkerboard(checkerboard, seed: int = 0) -> None:
    """``checkerboard(h, w)``: an (h, w) float tensor, 1 where row + column is even, else 0.

    Five fixed sizes and two drawn from ``seed``.
    """
    name = "check_checkerboard"
    require_callable(name, checkerboard, "checkerboard", n_args=2)
    g = torch.Generator().manual_seed(seed)
    sizes = [(2, 3), (4, 4), (1, 1), (5, 2), (3, 7)]
    sizes += [tuple(int(v) for v in torch.randint(1, 10, (2,), generator=g)) for _ in range(2)]
    for h, w in sizes:
        case = f"checkerboard({h}, {w})"
        got = call(name, checkerboard, h, w, what=case, bans=BANS[name])
        got = as_tensor(name, got, case, shape=(h, w))
        if not got.is_floating_point():
            fail(name, f"{case} should hold floats", "dtype float32",
                 f"dtype {got.dtype}", "a comparison gives booleans and index arithmetic "
                 "gives integers: convert the result to floats at the end")
        ref = _checkerboard(h, w)
        if h * w > 1 and torch.equal(got.detach().cpu().float(), 1 - ref):
            fail(name, case, _show(ref), _show(got),
                 "the colours are swapped: the top-left corner [0, 0] should be 1")
        _expect_equal(name, case, got, ref,
                      hint="entry [i, j] is 1 exactly when i + j is even; a column of row "
                           "indices plus a row of column indices broadcasts to the (h, w) "
                           "grid of i + j")
    passed(name, f"{len(sizes)} board sizes")


def check_standardise(standardise, seed: int = 0) -> None:
    """``standardise(x)``: (N, D) -> (N, D), each column with mean 0 and standard deviation 1."""
    name = "check_standardise"
    require_callable(name, standardise, "standardise", n_args=1)
    g = torch.Generator().manual_seed(seed)
    n_rows = int(torch.randint(5, 40, (1,), generator=g))
    cases = {
        "a 3 x 2 batch": torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]]),
        "a random 50 x 4 batch": 3.0 + 2.0 * torch.randn(50, 4, generator=g),
        "a batch whose second feature is constant": torch.tensor([[1.0, 3.0], [5.0, 3.0], [0.0, 3.0]]),
        "a random 6 x 6 batch": torch.randn(6, 6, generator=g) * torch.tensor([1.0, 5, 0.1, 2, 3, 9]),
        f"a random {n_rows} x 3 batch": (torch.randn(n_rows, 3, generator=g) * 4 - 7).double(),
    }
    for case, x in cases.items():
        ref = _standardise(x)
        given = x.clone()
        got = call(name, standardise, given, what="standardise(x)", bans=BANS[name])
        if not torch.equal(given, x):
            fail(name, f"{case}: standardise changed its input x in place", "x left unchanged",
                 "x modified", "build a new tensor from x instead of updating x with -= or /=")
        got = as_tensor(name, got, "standardise(x)", shape=tuple(x.shape), dtype_float=True)
        if torch.isnan(got).any():
            fail(name, case, ref, got, "NaN appears when a feature is constant (its standard "
                 f"deviation is 0, and 0 / 0 is NaN): add {EPS:g} to the standard deviation "
                 "before dividing")
        rows = x.shape[0] != x.shape[1]
        by_row = (x - x.mean(1, keepdim=True)) / (x.std(1, correction=0, keepdim=True) + EPS)
        if rows and torch.allclose(got.double(), by_row.double(), atol=1e-4):
            fail(name, case, ref, got, "you standardised each row (dim=1); standardise each "
                 "feature, i.e. each column, over the N examples (dim=0)")
        unbiased = (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True) + EPS)
        if not torch.allclose(ref, unbiased, atol=1e-4) and torch.allclose(got.double(), unbiased.double(), atol=1e-4):
            fail(name, case, ref, got, "x.std() divides by N - 1 by default; this exercise uses "
                 "the population standard deviation, which divides by N (correction=0)")
        expect_close(name, case, got, ref, atol=1e-4,
                     hint="subtract each column's mean, then divide by that column's "
                          f"population standard deviation plus {EPS:g}")
    passed(name, f"{len(cases)} batches")


def check_one_hot(one_hot, seed: int = 0) -> None:
    """``one_hot(labels, n_classes)``: (N,) int64 -> (N, n_classes) float, one 1 per row."""
    name = "check_one_hot"
    require_callable(name, one_hot, "one_hot", n_args=2)
    g = torch.Generator().manual_seed(seed)
    n_random = int(torch.randint(3, 12, (1,), generator=g))
    cases = [
        (torch.tensor([0, 2, 1]), 3),
        (torch.tensor([1, 0, 1, 1, 0]), 4),    # class 3 never appears, the width is still 4
        (torch.tensor([5]), 10),
        (torch.tensor([2, 2]), 3),             # a repeated label, classes 0 and 1 missing
        (torch.randint(0, 10, (32,), generator=g), 10),
        (torch.randint(0, n_random, (17,), generator=g), n_random + 2),
    ]
    for labels, n_classes in cases:
        shown = labels.tolist() if len(labels) <= 8 else f"random ({len(labels)},)"
        case = f"one_hot(labels={shown}, n_classes={n_classes})"
        ref = _one_hot(labels, n_classes)
        got = call(name, one_hot, labels.clone(), n_classes, what="one_hot(labels, n_classes)",
                   bans=BANS[name])
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (n_classes, len(labels)) and n_classes != len(labels):
            fail(name, case, f"shape {tuple(ref.shape)}", f"shape {tuple(got.shape)}",
                 "rows are examples and columns are classes: the result is transposed")
        if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape[0] == len(labels) \
                and got.shape[1] == int(labels.max()) + 1 and got.shape[1] != n_classes:
            fail(name, case, f"shape {tuple(ref.shape)}", f"shape {tuple(got.shape)}",
                 "use n_classes for the width, not labels.max() + 1: a batch may miss a class")
        got = as_tensor(name, got, case, shape=(len(labels), n_classes))
        if not got.is_floating_point():
            fail(name, case + " should hold floats", "dtype float32", f"dtype {got.dtype}",
                 "integer or boolean rows will not mix with float scores later: build the "
                 "rows from float zeros, or convert them at the end")
        if torch.equal(got.detach().cpu().float(), ref.T) and not torch.equal(ref, ref.T):
            fail(name, case, _show(ref), _show(got), "rows are examples and columns are "
                 "classes: the result is transposed")
        _expect_equal(name, case, got, ref,
                      hint="row n has a single 1, in column labels[n], and 0 elsewhere")
    passed(name, f"{len(cases)} label sets")


def check_accuracy(accuracy, seed: int = 0) -> None:
    """``accuracy(logits, labels)``: the fraction of rows whose largest logit is the label."""
    name = "check_accuracy"
    require_callable(name, accuracy, "accuracy", n_args=2)
    g = torch.Generator().manual_seed(seed)
    n_classes = int(torch.randint(3, 8, (1,), generator=g))
    cases = {
        "3 examples, 2 right": (torch.tensor([[2.0, 1.0], [0.1, 0.9], [3.0, -1.0]]),
                                torch.tensor([0, 1, 1])),
        "4 examples, all right": (torch.eye(4) * 5 - 1, torch.arange(4)),
        "2 examples, none right": (torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
                                   torch.tensor([0, 2])),
        "5 examples, 1 right": (torch.tensor([[0.0, 3.0], [1.0, 0.0], [2.0, 5.0], [0.0, -1.0], [4.0, 1.0]]),
                                torch.tensor([1, 1, 0, 1, 1])),
        "100 random examples": (torch.randn(100, 10, generator=g),
                                torch.randint(0, 10, (100,), generator=g)),
        f"37 random examples over {n_classes} classes": (
            torch.randn(37, n_classes, generator=g), torch.randint(0, n_classes, (37,), generator=g)),
    }
    for case, (logits, labels) in cases.items():
        ref = _accuracy(logits, labels)
        got = as_number(name, call(name, accuracy, logits.clone(), labels.clone(),
                                   what="accuracy(logits, labels)", bans=BANS[name]),
                        "accuracy(logits, labels)")
        n_right = ref * len(labels)
        if abs(got - ref) > 1e-6 and abs(got - n_right) < 1e-6 and n_right > 1:
            fail(name, case, ref, got, "that is the number of right answers: divide by the "
                 "number of examples to get a fraction")
        if abs(got - ref) > 1e-6 and abs(got - 100 * ref) < 1e-4:
            fail(name, case, ref, got, "return a fraction between 0 and 1, not a percentage")
        if abs(got - ref) > 1e-6:
            fail(name, case, ref, got, "the predicted class of a row is the position of its "
                 "largest logit (over the classes, dim=1); the accuracy is the share of rows "
                 "where it equals the label")
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
        got = call(name, to_fahrenheit, c.clone() if is_tensor else c, what=case,
                   bans=BANS[name])
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
