"""Checks for exercises/02_neurons_and_layers.ipynb, one ``check_<exercise>`` per exercise.

Every check calls the learner's function on fixed cases and on random ones drawn from
``seed`` (the solutions' hidden tests pass ``ck.checks.hidden_seed(...)``), and compares
the result with a reference computed here with torch's own building blocks
(``torch.sigmoid``, autograd, ``F.linear``), independently of the exercise. ``BANS``
lists what each answer may not use: the built-in it re-implements, autograd where the
point is to differentiate by hand, and coursekit's own layers.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch.nn import functional as F

from coursekit.checks.assertions import (as_tensor, call, diagnose, expect_close, fail, matches, passed,
                                        require_callable, scan_answer, seeded)
from coursekit.checks.forbidden import ban

_LINEAR = ban("torch.nn.functional.linear", "torch._C._nn.linear", "torch.nn.Linear",
              "torch.nn.LazyLinear", "torch.nn.Bilinear",
              reason="the exercise asks you to write the weighted sum yourself; "
                     "torch.nn.Linear (F.linear) computes the whole layer for you")
_OWN_LAYERS = ban("coursekit.models.mlp.Neuron", "coursekit.models.mlp.Dense",
                  "coursekit.models.mlp.MLP",
                  reason="the exercise asks you to write the computation; coursekit's "
                         "Neuron, Dense and MLP are the lesson's answer itself")
_AUTOGRAD = ban("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
                "torch.func.grad", "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd",
                "torch.autograd.functional.jacobian", "torch.autograd.functional.vjp",
                ops=["aten::sigmoid_backward"],
                reason="the exercise asks you to differentiate by hand; the check compares "
                       "your slope with autograd, so autograd cannot be the answer")

BANS = {
    "check_neuron_forward": [_LINEAR, _OWN_LAYERS],
    "check_relu": [
        ban("torch.relu", "torch.relu_", "torch.Tensor.relu", "torch.Tensor.relu_",
            "torch.nn.functional.relu", "torch.nn.functional.relu_", "torch.nn.ReLU",
            "torch.nn.functional.threshold", "torch.nn.functional.relu6",
            ops=["aten::relu", "aten::relu_", "aten::threshold", "aten::hardtanh"],
            reason="the exercise asks you to write ReLU yourself; torch.relu is the answer "
                   "itself"),
        ban("torch.clamp", "torch.clamp_min", "torch.clip", "torch.Tensor.clamp",
            "torch.Tensor.clamp_min", "torch.Tensor.clip",
            ops=["aten::clamp", "aten::clamp_min"],
            reason="the exercise asks you to write ReLU yourself; clamp(z, min=0) is ReLU "
                   "under another name (build it from a comparison instead)"),
    ],
    "check_sigmoid": [
        ban("torch.sigmoid", "torch.Tensor.sigmoid", "torch.nn.functional.sigmoid",
            "torch.special.expit", "torch.nn.Sigmoid", "torch.nn.functional.logsigmoid",
            ops=["aten::sigmoid", "aten::log_sigmoid_forward"],
            reason="the exercise asks you to write the sigmoid from torch.exp; "
                   "torch.sigmoid is the answer itself"),
    ],
    "check_sigmoid_grad": [_AUTOGRAD],
    "check_dense_layer": [_LINEAR, _OWN_LAYERS],
    "check_collapse_linear": [
        ban("torch.linalg.lstsq", "torch.linalg.pinv", "torch.pinverse", "torch.linalg.solve",
            "torch.linalg.inv", "torch.inverse",
            ops=["aten::linalg_lstsq", "aten::linalg_pinv", "aten::_linalg_solve_ex",
                 "aten::linalg_inv_ex"],
            reason="the exercise asks for the algebra of composing the layers; fitting or "
                   "solving for (W, b) from the stack's outputs skips it"),
    ],
    "check_count_parameters": [
        ban("coursekit.models.mlp.MLP", "coursekit.models.mlp.MLP.n_params",
            "coursekit.models.mlp.Dense", "torch.nn.Linear",
            reason="the exercise asks you to count from the sizes; building the network and "
                   "asking it for its parameters skips the counting"),
    ],
}


def _not_itself(check: str, fn, what: str) -> None:
    """Refuse an answer that is one of the banned objects itself (``relu = torch.relu``)."""
    scan_answer(check, lambda *args: fn(*args), BANS[check], what)


_gen = seeded


def _close(a, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return matches(a, b, atol=atol)


def _diagnose(got, wrong_answers: list[tuple[torch.Tensor, str]], default: str,
              right: torch.Tensor | None = None) -> str:
    return diagnose(got, wrong_answers, default, right, atol=1e-5)


# -- 1. one neuron ------------------------------------------------------------------------

def _neuron_cases(seed: int) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    cases = [("x = [[0, 0], [1, -1], [2, 3]], w = [1, 1], b = -1",
              torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 3.0]]), torch.tensor([1.0, 1.0]), -1.0),
             ("x = [[1, 2, 3]], w = [0.5, -1, 2], b = 0.1",
              torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0.5, -1.0, 2.0]), 0.1),
             ("x = [[1, 2], [3, 4]], w = [0, 0], b = 2 (only the bias is left)",
              torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0.0, 0.0]), 2.0)]
    g = _gen(seed)
    for n, d in ((6, 4), (10, 2), (1, 7)):
        x = torch.randn(n, d, generator=g)
        w = torch.randn(d, generator=g)
        b = round(2 * torch.randn((), generator=g).item(), 3)
        cases.append((f"random x of shape ({n}, {d}), w of shape ({d},), b = {b} (seed {seed})",
                      x, w, b))
    return cases


def check_neuron_forward(neuron_forward, seed: int = 0) -> None:
    """``neuron_forward(x, w, b)``: x (N, d), w (d,), b a number -> sigmoid(x @ w + b), (N,)."""
    name = "check_neuron_forward"
    require_callable(name, neuron_forward, "neuron_forward", n_args=3)
    _not_itself(name, neuron_forward, "neuron_forward")
    cases = _neuron_cases(seed)
    for case, x, w, b in cases:
        got = call(name, neuron_forward, x.clone(), w.clone(), b, what="neuron_forward(x, w, b)",
                   bans=BANS[name])
        z = x @ w + b
        expected = torch.sigmoid(z)
        hint = _diagnose(got, [
            (z, "you returned the weighted sum z; pass it through the sigmoid"),
            (torch.sigmoid(x @ w), "the bias is missing: add b to the weighted sum before "
                                   "the activation"),
            (torch.sigmoid(x @ w) + b, "add the bias before the activation, not after it"),
            (torch.relu(z), "this exercise's neuron uses the sigmoid, not ReLU"),
            (torch.sigmoid(x.sum(1) + b), "the weights are missing: each feature is "
                                          "multiplied by its own weight"),
        ], "each row's output is the sigmoid of (its features times the weights, summed) "
           "plus the bias", right=expected)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            fail(name, f"{case}: the output has the wrong shape", f"shape {tuple(expected.shape)}",
                 f"shape {tuple(got.shape)}",
                 "one output per row of x: sum over the feature axis only")
        expect_close(name, case, got, expected, atol=1e-5, hint=hint, what="the output")
    passed(name, f"{len(cases)} cases, outputs match sigmoid(x @ w + b)")


# -- 2. activations by hand ---------------------------------------------------------------

def _activation_inputs(seed: int) -> list[tuple[str, torch.Tensor]]:
    g = _gen(seed)
    return [("z = [-2, -0.5, 0, 0.5, 3]", torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])),
            (f"a random z of shape (4, 5) (seed {seed})", torch.randn(4, 5, generator=g) * 3),
            (f"a random z of shape (2, 3, 4) (seed {seed})", torch.randn(2, 3, 4, generator=g)),
            ("z = [-100, -30, 30, 100] (large values)", torch.tensor([-100.0, -30.0, 30.0, 100.0]))]


def _check_elementwise(name: str, fn, fn_name: str, reference, wrong, default_hint: str,
                       seed: int, nan_hint: str = "", atol: float = 1e-6) -> int:
    require_callable(name, fn, fn_name, n_args=1)
    _not_itself(name, fn, fn_name)
    cases = _activation_inputs(seed)
    for case, z in cases:
        z_in = z.clone()
        got = call(name, fn, z_in, what=f"{fn_name}(z)", bans=BANS[name])
        if not torch.equal(z_in, z):
            fail(name, f"{case}: your function changed its input z", z, z_in,
                 "build a new tensor (e.g. with torch.where), do not modify z in place "
                 "(no z[...] = ..., no methods ending in _)")
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
                     hint=_diagnose(got, wrong(z), default_hint, right=expected),
                     what=f"{fn_name}(z)")
    return len(cases)


def check_relu(relu, seed: int = 0) -> None:
    """``relu(z)`` -> max(0, z) element-wise, same shape as z."""
    name = "check_relu"
    n = _check_elementwise(
        name, relu, "relu", lambda z: torch.clamp(z, min=0.0),
        lambda z: [(z.abs(), "negative inputs should become 0, not change sign"),
                   (torch.clamp(z, max=0.0), "keep the positive part: max(0, z), not min(0, z)"),
                   ((z > 0).float(), "return z itself where z > 0, not 1")],
        "negative inputs become 0, positive inputs pass through unchanged", seed)
    passed(name, f"{n} cases")


def check_sigmoid(sigmoid, seed: int = 0) -> None:
    """``sigmoid(z)`` -> 1 / (1 + exp(-z)) element-wise, finite for large |z|."""
    name = "check_sigmoid"
    n = _check_elementwise(
        name, sigmoid, "sigmoid", torch.sigmoid,
        lambda z: [(1 / (1 + torch.exp(z)), "that is sigmoid(-z) = 1 - sigmoid(z): check the "
                                             "sign of the exponent"),
                   (torch.tanh(z), "that is tanh; the sigmoid squashes into (0, 1), not (-1, 1)"),
                   (torch.sigmoid(2 * z), "that is sigmoid(2z): the exponent is -z itself")],
        "the sigmoid is 1 over (1 + e to the power -z); sigmoid(0) = 0.5", seed,
        nan_hint="the result has NaN values: for large z, exp(z) overflows to inf and "
                 "inf/inf is NaN; use the form in the exercise's text, which has only exp(-z)")
    passed(name, f"{n} cases, including |z| = 100 without NaN")


def _sigmoid_grad_reference(z: torch.Tensor) -> torch.Tensor:
    """d sigmoid / dz by autograd (an oracle independent of the formula)."""
    z = z.detach().double().clone().requires_grad_(True)
    torch.sigmoid(z).sum().backward()
    return z.grad.float()


def check_sigmoid_grad(sigmoid_grad, seed: int = 0) -> None:
    """``sigmoid_grad(z)`` -> the derivative of the sigmoid at z, element-wise."""
    name = "check_sigmoid_grad"
    n = _check_elementwise(
        name, sigmoid_grad, "sigmoid_grad", _sigmoid_grad_reference,
        lambda z: [(torch.sigmoid(z) * (1 + torch.sigmoid(z)),
                    "the second factor is one minus the sigmoid, not one plus it"),
                   (torch.sigmoid(z) * (1 - z), "use sigmoid(z) in both factors, not z"),
                   (torch.sigmoid(z), "that is the sigmoid itself, not its slope"),
                   (1 - torch.sigmoid(z) ** 2, "1 - s^2 is the slope of tanh (in terms of "
                                               "tanh); the sigmoid's slope is s times (1 - s)")],
        "differentiate 1 / (1 + e^-z) with the chain rule and write the result in terms of "
        "the sigmoid itself; the slope peaks at 0.25 at z = 0", seed,
        nan_hint="the result has NaN values: for large |z| an exp overflows to inf and "
                 "inf/inf is NaN; write the slope in terms of sigmoid(z), which stays finite")
    passed(name, f"{n} cases, matches autograd")


# -- 3. a dense layer in torch.nn.Linear's layout -------------------------------------------

def _dense_cases(seed: int):
    g = _gen(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)

    return [
        ("x (5, 3), weight (4, 3), bias (4,)", rnd(5, 3), rnd(4, 3), rnd(4)),
        ("x (1, 2), weight (6, 2), bias (6,)", rnd(1, 2), rnd(6, 2), rnd(6)),
        ("x (7, 4), weight (4, 4) (square: x @ weight runs but is wrong), bias (4,)",
         rnd(7, 4), rnd(4, 4), rnd(4)),
        ("x (3, 6), weight (1, 6), bias (1,)", rnd(3, 6), rnd(1, 6), rnd(1)),
        ("a batch of sequences, x (2, 5, 3), weight (4, 3), bias (4,)", rnd(2, 5, 3), rnd(4, 3),
         rnd(4)),
        ("one example without a batch axis, x (3,), weight (2, 3), bias (2,)", rnd(3), rnd(2, 3),
         rnd(2)),
        ("no bias: x (4, 3), weight (5, 3), bias None", rnd(4, 3), rnd(5, 3), None),
        ("no bias, x (2, 2, 5), weight (5, 5), bias None", rnd(2, 2, 5), rnd(5, 5), None),
    ]


def check_dense_layer(dense_layer, seed: int = 0) -> None:
    """``dense_layer(x, weight, bias)``: x (..., d_in), weight (d_out, d_in) as in
    torch.nn.Linear, bias (d_out,) or None -> (..., d_out)."""
    name = "check_dense_layer"
    require_callable(name, dense_layer, "dense_layer", n_args=3)
    _not_itself(name, dense_layer, "dense_layer")
    cases = _dense_cases(seed)
    for case, x, weight, bias in cases:
        got = call(name, dense_layer, x.clone(), weight.clone(),
                   None if bias is None else bias.clone(), what="dense_layer(x, weight, bias)",
                   bans=BANS[name])
        expected = F.linear(x, weight, bias)
        shown = f"{case} (seed {seed})"
        d_out = weight.shape[0]
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hint = ("the output keeps every leading axis of x and replaces the last one, "
                    "d_in, by d_out")
            if got.dim() == 2 and x.dim() == 3 and got.shape == (x.shape[0] * x.shape[1], d_out):
                hint = ("you flattened the leading axes of x: the output should keep them, "
                        "shape (..., d_out)")
            fail(name, f"{shown}: the output has the wrong shape", f"shape {tuple(expected.shape)}",
                 f"shape {tuple(got.shape)}", hint)
        wrong = [(x @ weight.T, "the bias is missing: add it to every output")]
        if weight.shape[0] == weight.shape[1]:
            wrong.append((x @ weight + (0 if bias is None else bias),
                          "weight is stored as (d_out, d_in), as in torch.nn.Linear: row j "
                          "holds neuron j's weights, so multiply x by its transpose"))
        expect_close(name, shown, got, expected, atol=1e-5,
                     hint=_diagnose(got, wrong, "row j of weight holds neuron j's weights; each "
                                               "output j is the dot product of x's last axis "
                                               "with that row, plus bias[j] when there is a bias",
                                    right=expected),
                     what="the output")
    passed(name, f"{len(cases)} cases: torch.nn.Linear's layout, leading axes kept, with and "
                 "without bias")


# -- 4. collapsing a stack of linear (or residual) layers -------------------------------------

def _collapse_reference(layers, residual: bool = False):
    """Fold [(W1, b1), (W2, b2), ...] into one (W, b) with x @ W + b == the stack.

    With ``residual`` every layer computes x + x @ W_i + b_i, i.e. uses W_i + I.
    """
    d0 = layers[0][0].shape[0]
    W = torch.eye(d0, dtype=torch.float64)
    b = torch.zeros(d0, dtype=torch.float64)
    for W_i, b_i in layers:
        M = W_i.double() + (torch.eye(W_i.shape[0], dtype=torch.float64) if residual else 0)
        W, b = W @ M, b @ M + b_i.double()
    return W.float(), b.float()


def _run_stack(x, layers, residual: bool):
    for W, b in layers:
        x = (x if residual else 0) + x @ W + b
    return x


def _stack_cases(seed: int):
    g = _gen(seed)

    def make(sizes):
        return [(torch.randn(a, c, generator=g) / math.sqrt(a), torch.randn(c, generator=g))
                for a, c in zip(sizes[:-1], sizes[1:])]

    return [("one layer, sizes [3, 2]", make([3, 2]), False),
            ("four layers, sizes [3, 3, 3, 3, 3]", make([3, 3, 3, 3, 3]), False),
            ("two layers, sizes [2, 5, 3]", make([2, 5, 3]), False),
            ("three layers, sizes [4, 8, 6, 2]", make([4, 8, 6, 2]), False),
            ("one residual layer, sizes [3, 3]", make([3, 3]), True),
            ("two residual layers, sizes [2, 2, 2]", make([2, 2, 2]), True),
            ("four residual layers, sizes [4, 4, 4, 4, 4]", make([4, 4, 4, 4, 4]), True)]


def check_collapse_linear(collapse_linear, seed: int = 0) -> None:
    """``collapse_linear(layers, residual)`` -> (W, b) equal to the stack of linear layers,
    each computing x @ W_i + b_i, or x + x @ W_i + b_i when ``residual``."""
    name = "check_collapse_linear"
    require_callable(name, collapse_linear, "collapse_linear", n_args=2)
    _not_itself(name, collapse_linear, "collapse_linear")
    g = _gen(seed + 1)
    cases = _stack_cases(seed)
    for case, layers, residual in cases:
        case = f"{case}, residual={residual} (seed {seed})"
        copies = [(W.clone(), b.clone()) for W, b in layers]
        got = call(name, collapse_linear, copies, residual, what="collapse_linear(layers, residual)",
                   bans=BANS[name])
        if not all(torch.equal(W, W2) and torch.equal(b, b2)
                   for (W, b), (W2, b2) in zip(layers, copies)):
            fail(name, f"{case}: your function changed the layers it was given",
                 "the layers left as they were", "modified weights or biases",
                 "build new tensors (W = W + ..., not W += ...); the caller still needs its layers")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, f"{case}: collapse_linear should return two things", "a tuple (W, b)",
                 got, "return the matrix and the bias as a pair")
        W_ref, b_ref = _collapse_reference(layers, residual)
        d0, d_last = layers[0][0].shape[0], layers[-1][0].shape[1]
        W_got = as_tensor(name, got[0], "the returned W", shape=(d0, d_last))
        b_got = as_tensor(name, got[1], "the returned b", shape=(d_last,))
        square = all(W.shape[0] == W.shape[1] for W, _ in layers)
        other = _collapse_reference(layers, not residual) if square else (W_ref, b_ref)
        if _close(W_got, other[0]) and _close(b_got, other[1]) and not _close(W_ref, other[0]):
            fail(name, case, f"W = {W_ref.tolist()}" if W_ref.numel() < 10 else W_ref,
                 W_got, "residual is ignored: with residual=True every layer adds its own "
                        "input to its output" if residual else
                        "residual=False: the layers add nothing to their outputs")
        wrong_W = []
        if all(W.shape == W_ref.shape for W, _ in layers):
            wrong_W.append((sum(W for W, _ in layers), "the matrices are multiplied, not added"))
        if residual:
            plain_W = _collapse_reference(layers, False)[0]
            wrong_W.append((plain_W + torch.eye(d0), "the identity belongs to every layer, "
                            "not once at the end: each layer maps x to x times (I + W_i)"))
        expect_close(name, f"{case}: the matrix W", W_got, W_ref, atol=1e-5,
                     hint=_diagnose(W_got, wrong_W, "multiply the layers' matrices in the order "
                                                    "the input meets them" +
                                    (", each with the identity added" if residual else ""),
                                    right=W_ref), what="W")
        wrong_b = [(torch.zeros_like(b_ref), "the biases are missing")]
        if all(b.shape == b_ref.shape for _, b in layers):
            wrong_b.insert(0, (sum(b for _, b in layers),
                               "the biases cannot simply be added: each bias also passes "
                               "through every later layer"))
        wrong_b.append((layers[-1][1], "only the last bias is there: the earlier biases, "
                                       "pushed through the later layers, belong in b too"))
        if residual:
            wrong_b.append((_collapse_reference(layers, False)[1],
                            "an earlier bias reaches a residual layer's output twice: "
                            "through the skip connection and through W_i"))
        expect_close(name, f"{case}: the bias b", b_got, b_ref, atol=1e-5,
                     hint=_diagnose(b_got, wrong_b, "apply the next layer to x @ W + b and "
                                                    "multiply out the brackets: the part that "
                                                    "does not multiply x is the new bias",
                                    right=b_ref), what="b")
        x = torch.randn(10, d0, generator=g)
        expect_close(name, f"{case}: x @ W + b against the stack on 10 random inputs",
                     x @ W_got.detach() + b_got.detach(), _run_stack(x, layers, residual),
                     atol=1e-4, what="x @ W + b")
    passed(name, f"{len(cases)} stacks, plain and residual, one matrix and one bias reproduce each")


# -- 5. counting parameters ---------------------------------------------------------------

def _count_reference(sizes: list[int]) -> int:
    return sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))


def check_count_parameters(count_parameters, seed: int = 0) -> None:
    """``count_parameters(sizes)`` -> number of weights and biases of MLP(sizes)."""
    name = "check_count_parameters"
    require_callable(name, count_parameters, "count_parameters", n_args=1)
    _not_itself(name, count_parameters, "count_parameters")
    g = _gen(seed)
    cases = [[2, 1], [3, 4], [2, 16, 16, 1], [64, 32, 10], [784, 128, 10], [5, 5]]
    cases.append([int(v) for v in torch.randint(1, 50, (5,), generator=g)])
    cases.append([int(v) for v in torch.randint(1, 300, (3,), generator=g)])
    for sizes in cases:
        got = call(name, count_parameters, list(sizes), what="count_parameters(sizes)",
                   bans=BANS[name])
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
