"""Checks for exercises/02_neurons_and_layers.ipynb, one ``check_<exercise>`` per exercise.

Every check calls the learner's function on fixed and random cases and compares the
result with a reference computed here. The references are written with torch's own
building blocks (``torch.sigmoid``, autograd, ``@``), independently of the exercise.
"""
from __future__ import annotations

import math
import numbers

import torch

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, passed,
                                         require_callable)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    """True when ``a`` (any shape-compatible tensor) matches ``b``; used to diagnose mistakes."""
    try:
        a = torch.as_tensor(a).detach().double()
        return a.shape == b.shape and torch.allclose(a, b.double(), atol=atol, rtol=1e-4)
    except (TypeError, RuntimeError):
        return False


def _diagnose(got, wrong_answers: list[tuple[torch.Tensor, str]], default: str) -> str:
    """The hint for the first known mistake that ``got`` reproduces, else ``default``."""
    for value, hint in wrong_answers:
        if _close(got, value):
            return hint
    return default


# -- 1. one neuron ------------------------------------------------------------------------

def _neuron_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    cases = [("x = [[0, 0], [1, -1], [2, 3]], w = [1, 1], b = -1",
              torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 3.0]]), torch.tensor([1.0, 1.0]), -1.0),
             ("x = [[1, 2, 3]], w = [0.5, -1, 2], b = 0.1",
              torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0.5, -1.0, 2.0]), 0.1)]
    g = _gen(2)
    for n, d in ((6, 4), (10, 2)):
        x = torch.randn(n, d, generator=g)
        w = torch.randn(d, generator=g)
        b = round(torch.randn((), generator=g).item(), 3)
        cases.append((f"random x of shape ({n}, {d}), w of shape ({d},), b = {b}", x, w, b))
    return cases


def check_neuron_forward(neuron_forward) -> None:
    """``neuron_forward(x, w, b)``: x (N, d), w (d,), b a number -> sigmoid(x @ w + b), (N,)."""
    name = "check_neuron_forward"
    require_callable(name, neuron_forward, "neuron_forward", n_args=3)
    cases = _neuron_cases()
    for case, x, w, b in cases:
        got = call(name, neuron_forward, x.clone(), w.clone(), b, what="neuron_forward(x, w, b)")
        z = x @ w + b
        expected = torch.sigmoid(z)
        hint = _diagnose(got, [
            (z, "you returned the weighted sum z; pass it through the sigmoid"),
            (torch.sigmoid(x @ w), "the bias is missing: add b to the weighted sum before "
                                   "the activation"),
            (torch.sigmoid(x @ w) + b, "add the bias before the activation, not after it"),
            (torch.relu(z), "this exercise's neuron uses the sigmoid, not ReLU"),
        ], "compute z = x @ w + b (one number per row of x), then torch.sigmoid(z)")
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            fail(name, f"{case}: the output has the wrong shape", f"shape {tuple(expected.shape)}",
                 f"shape {tuple(got.shape)}",
                 "one output per row of x: sum over the feature axis only (x @ w does that)")
        expect_close(name, case, got, expected, atol=1e-5, hint=hint, what="the output")
    passed(name, f"{len(cases)} cases, outputs match sigmoid(x @ w + b)")


# -- 2. activations by hand ---------------------------------------------------------------

def _activation_inputs() -> list[tuple[str, torch.Tensor]]:
    g = _gen(3)
    return [("z = [-2, -0.5, 0, 0.5, 3]", torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])),
            ("a random z of shape (4, 5)", torch.randn(4, 5, generator=g) * 3),
            ("z = [-100, -30, 30, 100] (large values)", torch.tensor([-100.0, -30.0, 30.0, 100.0]))]


def _check_elementwise(name: str, fn, fn_name: str, reference, wrong, default_hint: str,
                       nan_hint: str = "", atol: float = 1e-6) -> int:
    require_callable(name, fn, fn_name, n_args=1)
    cases = _activation_inputs()
    for case, z in cases:
        z_in = z.clone()
        got = call(name, fn, z_in, what=f"{fn_name}(z)")
        if not torch.equal(z_in, z):
            fail(name, f"{case}: your function changed its input z", z, z_in,
                 "build a new tensor (e.g. torch.where or torch.clamp), do not modify z "
                 "in place (no z[...] = ..., no methods ending in _)")
        got = as_tensor(name, got, f"{fn_name}(z)", shape=tuple(z.shape))
        if not got.is_floating_point():
            fail(name, f"{case}: the result should hold floats", "a floating-point tensor",
                 f"dtype {got.dtype}", "comparisons give booleans: multiply or use torch.where "
                                       "to turn them back into numbers")
        expected = reference(z)
        if torch.isnan(got).any():
            fail(name, case, expected, got, nan_hint or "the result has NaN values: "
                 "look for a 0/0 or inf/inf")
        expect_close(name, case, got, expected, atol=atol,
                     hint=_diagnose(got, wrong(z), default_hint), what=f"{fn_name}(z)")
    return len(cases)


def check_relu(relu) -> None:
    """``relu(z)`` -> max(0, z) element-wise, same shape as z."""
    name = "check_relu"
    n = _check_elementwise(
        name, relu, "relu", lambda z: torch.clamp(z, min=0.0),
        lambda z: [(z.abs(), "negative inputs should become 0, not change sign"),
                   (torch.clamp(z, max=0.0), "keep the positive part: max(0, z), not min(0, z)"),
                   ((z > 0).float(), "return z itself where z > 0, not 1")],
        "negative inputs become 0, positive inputs pass through unchanged")
    passed(name, f"{n} cases")


def check_sigmoid(sigmoid) -> None:
    """``sigmoid(z)`` -> 1 / (1 + exp(-z)) element-wise, finite for large |z|."""
    name = "check_sigmoid"
    n = _check_elementwise(
        name, sigmoid, "sigmoid", torch.sigmoid,
        lambda z: [(1 / (1 + torch.exp(z)), "that is sigmoid(-z) = 1 - sigmoid(z): check the "
                                             "sign, it is exp(-z) in the denominator"),
                   (torch.tanh(z), "that is tanh; the sigmoid is 1 / (1 + exp(-z))")],
        "sigmoid(z) = 1 / (1 + exp(-z)); sigmoid(0) = 0.5",
        nan_hint="the result has NaN values: for large z, exp(z) overflows to inf and "
                 "inf/inf is NaN; use 1 / (1 + exp(-z)), as in the exercise's text")
    passed(name, f"{n} cases, including |z| = 100 without NaN")


def _sigmoid_grad_reference(z: torch.Tensor) -> torch.Tensor:
    """d sigmoid / dz by autograd (an oracle independent of the formula)."""
    z = z.detach().double().clone().requires_grad_(True)
    torch.sigmoid(z).sum().backward()
    return z.grad.float()


def check_sigmoid_grad(sigmoid_grad) -> None:
    """``sigmoid_grad(z)`` -> the derivative of the sigmoid at z, element-wise."""
    name = "check_sigmoid_grad"
    n = _check_elementwise(
        name, sigmoid_grad, "sigmoid_grad", _sigmoid_grad_reference,
        lambda z: [(torch.sigmoid(z) * (1 + torch.sigmoid(z)),
                    "it is sigmoid(z) * (1 - sigmoid(z))"),
                   (torch.sigmoid(z) * (1 - z), "use sigmoid(z) in both factors: "
                                                "sigmoid(z) * (1 - sigmoid(z))"),
                   (torch.sigmoid(z), "that is the sigmoid itself, not its slope")],
        "the slope of the sigmoid is sigmoid(z) * (1 - sigmoid(z)); it peaks at 0.25 at z = 0",
        nan_hint="the result has NaN values: for large |z| an exp overflows to inf and "
                 "inf/inf is NaN; compute s = sigmoid(z) first and return s * (1 - s)")
    passed(name, f"{n} cases, matches autograd")


# -- 3. a dense layer ---------------------------------------------------------------------

def check_dense_layer(dense_layer) -> None:
    """``dense_layer(x, W, b)``: x (N, d_in), W (d_in, d_out), b (d_out,) -> x @ W + b."""
    name = "check_dense_layer"
    require_callable(name, dense_layer, "dense_layer", n_args=3)
    g = _gen(4)
    shapes = [(5, 3, 4), (1, 2, 6), (7, 4, 4), (3, 6, 1)]
    for n, d_in, d_out in shapes:
        x = torch.randn(n, d_in, generator=g)
        W = torch.randn(d_in, d_out, generator=g)
        b = torch.randn(d_out, generator=g)
        case = f"x of shape ({n}, {d_in}), W of shape ({d_in}, {d_out}), b of shape ({d_out},)"
        got = call(name, dense_layer, x.clone(), W.clone(), b.clone(),
                   what="dense_layer(x, W, b)")
        expected = x @ W + b
        wrong = [(x @ W, "the bias b is missing: add it to every row (broadcasting does that)")]
        if d_in == d_out:
            wrong.append((x @ W.T + b, "use W as given, (d_in, d_out): x @ W, not x @ W.T"))
        got = as_tensor(name, got, "the output", shape=(n, d_out))
        expect_close(name, case, got, expected, atol=1e-5,
                     hint=_diagnose(got, wrong, "each output is x @ W + b: (N, d_in) @ (d_in, "
                                                "d_out) gives (N, d_out), then b is added to "
                                                "every row"),
                     what="the output")
    passed(name, f"{len(shapes)} shapes, output (N, d_out) = x @ W + b")


# -- 4. collapsing a stack of linear layers -------------------------------------------------

def _collapse_reference(layers):
    """Fold [(W1, b1), (W2, b2), ...] into one (W, b) with x @ W + b == the stack."""
    W, b = layers[0]
    for W_next, b_next in layers[1:]:
        b = b @ W_next + b_next   # the bias so far goes through the next layer too
        W = W @ W_next
    return W, b


def _stack_cases():
    g = _gen(5)

    def make(sizes):
        return [(torch.randn(a, c, generator=g) / math.sqrt(a), torch.randn(c, generator=g))
                for a, c in zip(sizes[:-1], sizes[1:])]

    return [("one layer, sizes [3, 2]", make([3, 2])),
            ("four layers, sizes [3, 3, 3, 3, 3]", make([3, 3, 3, 3, 3])),
            ("two layers, sizes [2, 5, 3]", make([2, 5, 3])),
            ("three layers, sizes [4, 8, 6, 2]", make([4, 8, 6, 2]))]


def check_collapse_linear(collapse_linear) -> None:
    """``collapse_linear(layers)`` -> (W, b) equal to the stack of linear layers."""
    name = "check_collapse_linear"
    require_callable(name, collapse_linear, "collapse_linear", n_args=1)
    g = _gen(6)
    cases = _stack_cases()
    for case, layers in cases:
        copies = [(W.clone(), b.clone()) for W, b in layers]
        got = call(name, collapse_linear, copies, what="collapse_linear(layers)")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"{case}: collapse_linear should return two things", "a tuple (W, b)",
                 got, "end with: return W, b")
        W_ref, b_ref = _collapse_reference(layers)
        d0, d_last = layers[0][0].shape[0], layers[-1][0].shape[1]
        W_got = as_tensor(name, got[0], "the returned W", shape=(d0, d_last))
        b_got = as_tensor(name, got[1], "the returned b", shape=(d_last,))
        wrong_b = [(torch.zeros_like(b_ref), "the biases are missing")]
        if all(b.shape == b_ref.shape for _, b in layers):
            wrong_b.insert(0, (sum(b for _, b in layers),
                               "the biases cannot simply be added: each bias also passes "
                               "through every later layer's weights (b1 @ W2 + b2, ...)"))
        wrong_b.append((layers[-1][1], "only the last bias is there: the earlier biases, "
                                       "pushed through the later weights, belong in b too"))
        expect_close(name, f"{case}: the matrix W", W_got, W_ref, atol=1e-5,
                     hint=_diagnose(W_got, [], "multiply the matrices in the order the input "
                                               "meets them: W1 @ W2 @ W3 ..."), what="W")
        expect_close(name, f"{case}: the bias b", b_got, b_ref, atol=1e-5,
                     hint=_diagnose(b_got, wrong_b, "push the bias so far through each next "
                                                    "layer: b = b @ W_next + b_next"),
                     what="b")
        x = torch.randn(10, d0, generator=g)
        stack = x
        for W, b in layers:
            stack = stack @ W + b
        expect_close(name, f"{case}: x @ W + b against the stack on 10 random inputs",
                     x @ W_got.detach() + b_got.detach(), stack, atol=1e-4, what="x @ W + b")
    passed(name, f"{len(cases)} stacks, one matrix and one bias reproduce each")


# -- 5. counting parameters ---------------------------------------------------------------

def _count_reference(sizes: list[int]) -> int:
    return sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))


def check_count_parameters(count_parameters) -> None:
    """``count_parameters(sizes)`` -> number of weights and biases of MLP(sizes)."""
    name = "check_count_parameters"
    require_callable(name, count_parameters, "count_parameters", n_args=1)
    g = _gen(7)
    cases = [[2, 1], [3, 4], [2, 16, 16, 1], [64, 32, 10], [784, 128, 10]]
    cases.append([int(v) for v in torch.randint(1, 50, (5,), generator=g)])
    for sizes in cases:
        got = call(name, count_parameters, list(sizes), what="count_parameters(sizes)")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        expected = _count_reference(sizes)
        if isinstance(got, bool) or not isinstance(got, numbers.Number) or got != int(got):
            fail(name, f"sizes = {sizes}", f"a whole number ({expected})", got,
                 "return a Python int")
        weights_only = sum(a * c for a, c in zip(sizes[:-1], sizes[1:]))
        if int(got) != expected:
            hint = "each layer has d_in * d_out weights plus d_out biases"
            if int(got) == weights_only:
                hint = "the biases are missing: each layer also has d_out biases"
            elif int(got) == weights_only + sum(sizes):
                hint = "the input features have no bias: count d_out biases per layer"
            elif int(got) == weights_only + sum(sizes[:-1]):
                hint = "biases belong to a layer's outputs: count d_out biases, not d_in"
            fail(name, f"sizes = {sizes}", str(expected), str(got), hint)
    passed(name, f"{len(cases)} networks")
