"""coursekit.autograd.Value against torch.autograd (float64) on random expression graphs.

Every graph is built twice in lockstep, once from Values and once from float64 tensors,
with the same operations on the same operands; the output and the gradient of every leaf
must agree to 1e-6 (absolute and relative).
"""
from __future__ import annotations

import doctest
import math
import random

import pytest
import torch

import coursekit.autograd
from coursekit.autograd import Value

TOL = 1e-6
OPS = ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "tanh", "relu", "sigmoid",
       "const"]


def _positive(v, t):
    """Make a strictly positive node (the same way in both worlds) when one is needed."""
    if v.data > 0.1:
        return v, t
    return v * v + 0.5, t * t + 0.5


def _apply(op, rng, a, b):
    """Apply one op to operand pairs a = (value, tensor), b = (value, tensor)."""
    (va, ta), (vb, tb) = a, b
    if op == "add":
        return va + vb, ta + tb
    if op == "sub":
        return va - vb, ta - tb
    if op == "mul":
        return va * vb, ta * tb
    if op == "div":
        vb, tb = _positive(vb, tb) if abs(vb.data) < 0.1 else (vb, tb)
        return va / vb, ta / tb
    if op == "pow":
        k = rng.choice([2, 3, -1, 0.5, 1.5])
        if k in (-1, 0.5, 1.5):
            va, ta = _positive(va, ta)
        return va ** k, ta ** k
    if op == "neg":
        return -va, -ta
    if op == "exp":
        if va.data > 3:                      # keep numbers moderate
            va, ta = va.tanh(), ta.tanh()
        return va.exp(), ta.exp()
    if op == "log":
        va, ta = _positive(va, ta)
        return va.log(), ta.log()
    if op == "tanh":
        return va.tanh(), ta.tanh()
    if op == "relu":
        return va.relu(), ta.relu()
    if op == "sigmoid":
        return va.sigmoid(), ta.sigmoid()
    if op == "const":                        # numbers on either side of an operator
        c = round(rng.uniform(0.5, 2.0), 2)
        kind = rng.choice(["radd", "rmul", "rsub", "rdiv", "addc", "mulc"])
        if kind == "radd":
            return c + va, c + ta
        if kind == "rmul":
            return c * va, c * ta
        if kind == "rsub":
            return c - va, c - ta
        if kind == "rdiv":
            va, ta = _positive(va, ta)
            return c / va, c / ta
        if kind == "addc":
            return va + c, ta + c
        return va * c, ta * c
    raise ValueError(op)


def build_graph(seed: int, focus: str | None = None, n_leaves: int = 4, n_ops: int = 14):
    """A random graph; with ``focus`` set, about half of its operations are that op."""
    rng = random.Random(seed)
    leaves = [rng.uniform(-2, 2) for _ in range(n_leaves)]
    values = [Value(x) for x in leaves]
    tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in leaves]
    nodes = list(zip(values, tensors))
    for _ in range(n_ops):
        op = focus if focus and rng.random() < 0.5 else rng.choice(OPS)
        # prefer recent nodes, so the graph is deep as well as wide
        i = max(0, len(nodes) - 1 - int(rng.expovariate(0.4)))
        j = rng.randrange(len(nodes))        # any earlier node: values get reused
        v, t = _apply(op, rng, nodes[i], nodes[j])
        if abs(v.data) > 20:                 # keep the numbers in a sane range
            v, t = v.tanh(), t.tanh()
        nodes.append((v, t))
    # the output mixes the last few nodes, so most of the graph matters
    out_v = nodes[-1][0] + nodes[-2][0] * nodes[-3][0]
    out_t = nodes[-1][1] + nodes[-2][1] * nodes[-3][1]
    return values, tensors, out_v, out_t


def _assert_graph_matches(seed, focus=None):
    values, tensors, out_v, out_t = build_graph(seed, focus)
    out_v.backward()
    out_t.backward()
    assert out_v.data == pytest.approx(out_t.item(), rel=TOL, abs=TOL)
    for k, (v, t) in enumerate(zip(values, tensors)):
        ref = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(ref, rel=TOL, abs=TOL), f"leaf {k} (seed {seed}, {focus})"


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_torch(seed):
    _assert_graph_matches(seed)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", OPS)
def test_each_operation_in_random_graphs_matches_torch(op, seed):
    _assert_graph_matches(1000 + seed, focus=op)


UNARY = [
    ("exp", math.exp, lambda x: math.exp(x)),
    ("log", math.log, lambda x: 1 / x),
    ("tanh", math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    ("relu", lambda x: max(x, 0.0), lambda x: float(x > 0)),
    ("sigmoid", lambda x: 1 / (1 + math.exp(-x)), lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
]


@pytest.mark.parametrize("name, f, df", UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("x", [0.3, 1.7, -0.9])
def test_unary_value_and_derivative(name, f, df, x):
    x = abs(x) if name == "log" else x   # log needs a positive input
    v = Value(x)
    out = getattr(v, name)()
    out.backward()
    assert out.data == pytest.approx(f(x), rel=1e-12)
    assert v.grad == pytest.approx(df(x), rel=1e-9, abs=1e-12)
    assert out.op == name and out.inputs == (v,)


@pytest.mark.parametrize("expr, grad", [
    (lambda a: a * a, lambda x: 2 * x),
    (lambda a: a + a, lambda x: 2.0),
    (lambda a: a * a * a - a, lambda x: 3 * x * x - 1),
    (lambda a: (a * 2).tanh() + a.tanh() * a, lambda x: 2 * (1 - math.tanh(2 * x) ** 2)
     + (1 - math.tanh(x) ** 2) * x + math.tanh(x)),
], ids=["a*a", "a+a", "a^3-a", "mixed"])
def test_gradients_add_up_when_a_value_is_reused(expr, grad):
    a = Value(0.8)
    expr(a).backward()
    assert a.grad == pytest.approx(grad(0.8), rel=1e-12)


@pytest.mark.parametrize("expr, grad", [
    (lambda x: 2 + x, 1.0), (lambda x: 2 * x, 2.0), (lambda x: 2 - x, -1.0),
    (lambda x: 2 / x, -2 / 1.5 ** 2), (lambda x: x - 2, 1.0), (lambda x: x / 2, 0.5),
    (lambda x: -x, -1.0), (lambda x: x ** 2, 3.0), (lambda x: x ** -0.5, -0.5 * 1.5 ** -1.5),
], ids=["2+x", "2*x", "2-x", "2/x", "x-2", "x/2", "-x", "x**2", "x**-0.5"])
def test_numbers_on_either_side_of_an_operator(expr, grad):
    x = Value(1.5)
    expr(x).backward()
    assert x.grad == pytest.approx(grad, rel=1e-12)


def test_backward_twice_accumulates_leaf_gradients():
    a = Value(3.0)
    out = a * a
    out.backward()
    assert a.grad == 6.0
    a.grad = 0.0                             # zeroing restores a clean second pass
    (a * a).backward()
    assert a.grad == 6.0
    (a * a).backward()                       # without zeroing, gradients add up
    assert a.grad == 12.0


def test_deep_graphs_need_no_recursion():
    xs = [Value(float(i % 7)) for i in range(5000)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x                    # a chain 5000 nodes deep
    total.backward()
    assert total.data == sum(i % 7 for i in range(5000))
    assert all(x.grad == 1.0 for x in xs)


@pytest.mark.parametrize("seed", range(5))
def test_topological_order_lists_each_node_once_after_its_inputs(seed):
    _, _, out, _ = build_graph(seed)
    order = out.topological_order()
    position = {id(n): k for k, n in enumerate(order)}
    assert len(position) == len(order)       # no duplicates
    assert order[-1] is out
    for node in order:
        for child in node.inputs:
            assert position[id(child)] < position[id(node)]


def test_sigmoid_and_exp_at_extremes():
    lo, hi = Value(-1000.0), Value(1000.0)
    s_lo, s_hi = lo.sigmoid(), hi.sigmoid()
    (s_lo + s_hi).backward()
    assert s_lo.data == 0.0 and s_hi.data == 1.0
    assert lo.grad == 0.0 and hi.grad == 0.0


def test_relu_passes_no_gradient_for_negative_inputs():
    a, b = Value(-0.5), Value(0.5)
    (a.relu() + b.relu()).backward()
    assert (a.grad, b.grad) == (0.0, 1.0)


@pytest.mark.parametrize("bad, error", [
    (lambda: Value(2.0) ** Value(2.0), TypeError),
    (lambda: Value(-2.0) ** 0.5, ValueError),
    (lambda: Value(0.0).log(), ValueError),
    (lambda: Value(1.0) + "1", TypeError),
    (lambda: Value(1.0) * True, TypeError),
])
def test_clear_errors_for_unsupported_operations(bad, error):
    with pytest.raises(error):
        bad()


def test_repr_shows_label_data_and_grad():
    v = Value(1.25, label="w")
    assert repr(v) == "Value(w: data=1.25, grad=0)"


def test_module_docstring_example_runs():
    result = doctest.testmod(coursekit.autograd)
    assert result.attempted >= 3 and result.failed == 0
