"""Checks for exercises/03_backprop_and_gradient_descent.ipynb, one per exercise.

The references are independent of the learner's code and of ``coursekit.optim``:
gradients come from ``torch.autograd`` in float64, optimiser steps from the update
equations written out here and from ``torch.optim``. Random cases are drawn from ``seed``
(the solutions' hidden tests pass ``ck.checks.hidden_seed(...)``). When an answer is
wrong, a check re-runs the usual mistakes on the same case and names the one the answer
reproduces. ``BANS`` lists what each answer may not use: the part of coursekit's engine or
optimisers it re-implements, autograd where the point is to differentiate by hand, and
the ``torch.optim`` class that would do the whole step.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from coursekit.autograd import Value
from coursekit.checks.assertions import (CheckFailure, as_tensor, call, expect_close, fail,
                                         guarded, passed, require_callable)
from coursekit.checks.forbidden import ban

_AUTOGRAD = ban(
    "torch.autograd.grad", "torch.Tensor.backward", "torch.autograd.backward",
    "torch.autograd._engine_run_backward", "torch.autograd.graph._engine_run_backward",
    "torch.func.grad", "torch.func.grad_and_value", "torch.func.vjp", "torch.func.jacrev",
    "torch.func.jacfwd", "torch.func.jvp", "torch.func.hessian",
    "torch.autograd.functional.jacobian", "torch.autograd.functional.vjp",
    "torch.autograd.functional.jvp", "torch.autograd.functional.hessian",
    reason="the exercise asks you to compute the derivatives yourself; autograd would "
           "do the whole job (it is what the check compares your answer with)")

BANS = {
    "check_div": [
        ban("coursekit.autograd.Value.__truediv__", "coursekit.autograd.Value.__rtruediv__",
            "coursekit.autograd.Value.__mul__", "coursekit.autograd.Value.__rmul__",
            "coursekit.autograd.Value.__pow__",
            reason="the exercise asks for division as one operation with its own backward "
                   "(the quotient rule); building it from Value's /, * or ** hands the "
                   "backward to coursekit's engine"),
    ],
    "check_softplus": [
        ban("coursekit.autograd.Value.exp", "coursekit.autograd.Value.log",
            "coursekit.autograd.Value.sigmoid",
            reason="the exercise asks for softplus as one operation with its own backward; "
                   "building it from Value's exp, log or sigmoid hands the backward to "
                   "coursekit's engine"),
        ban("torch.nn.functional.softplus", "torch.nn.Softplus", ops=["aten::softplus"],
            reason="compute the forward value with the math module on out.data; torch's "
                   "softplus would do it for you"),
    ],
    "check_backward": [
        ban("coursekit.autograd.Value.backward", "coursekit.autograd.Value.topological_order",
            reason="the exercise asks you to write the backward sweep; Value.backward and "
                   "Value.topological_order are the answer itself"),
        ban("graphlib.TopologicalSorter",
            reason="the exercise asks you to order the graph yourself (a depth-first search "
                   "or a count of each node's users); graphlib would do it for you"),
    ],
    "check_numerical_grad": [_AUTOGRAD],
    "check_mlp_grads": [_AUTOGRAD],
    "check_nesterov_step": [
        ban("torch.optim.SGD", "torch.optim.sgd.SGD", "torch.optim.sgd.sgd",
            "torch.optim._functional.sgd",
            reason="the exercise asks you to write the update; torch.optim.SGD(nesterov=True) "
                   "would do the whole step"),
        ban("coursekit.optim.SGD", "coursekit.optim.make", "coursekit.optim.OPTIMIZERS",
            reason="the exercise asks you to write the update; coursekit's optimisers would "
                   "do the step for you"),
    ],
    "check_adamw_step": [
        ban("torch.optim.AdamW", "torch.optim.Adam", "torch.optim.adamw.AdamW",
            "torch.optim.adam.Adam", "torch.optim.adam.adam", "torch.optim.adamw.adamw",
            "torch.optim._functional.adam", "torch.optim._functional.adamw",
            ops=["aten::_fused_adam_", "aten::_fused_adamw_"],
            reason="the exercise asks you to write the update; torch.optim.AdamW would do "
                   "the whole step"),
        ban("coursekit.optim.Adam", "coursekit.optim.make", "coursekit.optim.OPTIMIZERS",
            reason="the exercise asks you to write the update; coursekit's Adam would do "
                   "the step for you"),
    ],
}

# -- shared: running expressions on Values and on torch tensors -----------------------------

# An expression is a function expr(op, *leaves) where ``op`` is the operation under test
# (the learner's div or softplus on Values, torch's on tensors); everything else in it uses
# + * tanh, which Values and tensors both understand.
Expr = Callable[..., object]


def _is_value(x) -> bool:
    return all(hasattr(x, a) for a in ("data", "grad", "inputs", "_backward"))


def _torch_grads(expr: Expr, op, leaves: list[float]) -> tuple[float, list[float]]:
    """The oracle: the expression in float64 torch, differentiated by torch.autograd."""
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in leaves]
    out = expr(op, *xs)
    out.backward()
    return out.item(), [x.grad.item() if x.grad is not None else 0.0 for x in xs]


def _value_grads(name: str, expr: Expr, op, leaves: list[float], what: str):
    """Run the expression on fresh Values with ``op``; return (output, leaf grads)."""
    xs = [Value(v, label=f"x{i}") for i, v in enumerate(leaves)]
    out = call(name, expr, op, *xs, what=what)
    if not _is_value(out):
        fail(name, f"{what} should return a Value", "a Value (from coursekit.autograd)",
             f"{type(out).__name__}: {out!r}"[:120],
             "build the result with Value(data, inputs, op) and return it")
    call(name, out.backward, what="out.backward() (it runs your _backward functions)")
    return out.data, [x.grad for x in xs]


def _guarded_op(name: str, fn, fn_name: str):
    """The learner's op, with its bans enforced on its forward and on its ``_backward``."""
    bans = BANS[name]

    def op(*args):
        out = call(name, fn, *args, what=f"{fn_name}(...)", bans=bans)
        if _is_value(out):
            inner = out._backward

            def _backward():
                with guarded(name, bans, f"the _backward of your {fn_name}"):
                    inner()
            out._backward = _backward
        return out
    return op


def _random_program(seed: int, n_leaves: int = 3, n_ops: int = 7):
    """A random expression graph that uses the op under test often and reuses nodes."""
    rng = random.Random(seed)
    leaves = [round(rng.uniform(-1.5, 1.5), 3) for _ in range(n_leaves)]
    program = []
    for k in range(n_ops):
        kind = rng.choice(["test", "test", "add", "mul", "tanh"])
        n = n_leaves + k
        program.append((kind, rng.randrange(n), rng.randrange(n)))
    return leaves, program


def _program_expr(program, binary: bool) -> Expr:
    def expr(op, *leaves):
        nodes = list(leaves)
        for kind, i, j in program:
            a, b = nodes[i], nodes[j]
            if kind == "test":            # a divisor b * b + 0.5 keeps away from 0
                nodes.append(op(a, b * b + 0.5) if binary else op(a))
            elif kind == "add":
                nodes.append(a + b)
            elif kind == "mul":
                nodes.append(a * b)
            else:
                nodes.append(a.tanh())
        return nodes[-1] + nodes[-2] + nodes[-3]
    return expr


def _check_value_op(name: str, fn, fn_name: str, binary: bool, cases, torch_op, wrong,
                    default_hint: str, forward) -> int:
    """Shared body of check_div and check_softplus; returns the number of cases run."""
    require_callable(name, fn, fn_name, n_args=2 if binary else 1)
    op = _guarded_op(name, fn, fn_name)
    # 1. the forward value and the graph links, on the simplest case
    a, b = Value(2.0), Value(-3.0)
    out = op(*((a, b) if binary else (a,)))
    if not _is_value(out):
        fail(name, f"{fn_name} should return a Value", "a Value (from coursekit.autograd)",
             f"{type(out).__name__}: {out!r}"[:120],
             "return Value(result, inputs, op): a plain number cannot carry gradients")
    want = forward(a.data, b.data) if binary else forward(a.data)
    if not math.isclose(out.data, want, rel_tol=1e-9, abs_tol=1e-12):
        fail(name, f"the forward value of {fn_name}" + ("(2, -3)" if binary else "(2)"), want,
             out.data, "out.data should hold the result of the operation itself")
    linked = (a, b) if binary else (a,)
    if not all(any(x is y for y in out.inputs) for x in linked):
        fail(name, f"{fn_name}: out.inputs should hold the input Value(s)",
             "inputs containing " + ("a and b" if binary else "x"), f"inputs = {out.inputs!r}",
             "create the output with the inputs it was computed from: backward() follows "
             ".inputs to find the nodes it must reach")
    # 2. gradients on fixed and random expressions, against torch.autograd
    n = 0
    for case, expr, leaves in cases:
        data, grads = _value_grads(name, expr, op, leaves, what=f"building {case}")
        ref_data, ref_grads = _torch_grads(expr, torch_op, leaves)
        if not math.isclose(data, ref_data, rel_tol=1e-6, abs_tol=1e-9):
            fail(name, f"{case}: the output value", ref_data, data,
                 "the forward value is off: check what you store in out.data")
        if not all(math.isclose(g, r, rel_tol=1e-6, abs_tol=1e-9) for g, r in zip(grads, ref_grads)):
            hint = default_hint
            for wrong_fn, wrong_hint in wrong:
                try:
                    _, wrong_grads = _value_grads(name, expr, wrong_fn, leaves, what="")
                except (CheckFailure, ArithmeticError):
                    continue
                if all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9) for g, w in zip(grads, wrong_grads)):
                    hint = wrong_hint
                    break
            names = ", ".join(f"x{i}" for i in range(len(leaves)))
            fail(name, f"{case} with {names} = {leaves}: gradients of the leaves after backward()",
                 f"{[round(r, 6) for r in ref_grads]} (torch.autograd)",
                 f"{[round(g, 6) for g in grads]}", hint)
        n += 1
    return n


_NO_BACKWARD = ("no gradient arrived: define _backward inside {fn} and attach it to out, so "
                "that backward() can call it")
_OVERWRITE = ("gradients must add up (+=, not =): a Value used in several places receives "
              "a gradient from each")


# -- 1. backward of division (the quotient rule) ---------------------------------------------

def _div_variant(kind: str):
    """A mistaken div, to recognise which mistake an answer makes."""
    def div(a, b):
        out = Value(a.data / b.data, (a, b), "/")

        def _backward():
            da, db = 1 / b.data, -a.data / b.data ** 2
            if kind == "overwrite":
                a.grad = da * out.grad
                b.grad = db * out.grad
            elif kind == "no_chain":
                a.grad += da
                b.grad += db
            elif kind == "sign":
                a.grad += da * out.grad
                b.grad -= db * out.grad
            elif kind == "not_squared":
                a.grad += da * out.grad
                b.grad += -a.data / b.data * out.grad
            elif kind == "swapped":
                a.grad += db * out.grad
                b.grad += da * out.grad
            elif kind == "a_only":
                a.grad += da * out.grad
            elif kind == "mul_rule":
                a.grad += b.data * out.grad
                b.grad += a.data * out.grad
        if kind != "none":
            out._backward = _backward
        return out
    return div


def _div_cases(seed: int):
    cases = [
        ("div(x0, x1)", lambda d, a, b: d(a, b), [3.0, -2.0]),
        ("div(x0, x1) * 2.5 (the gradient arriving at out is 2.5, not 1)",
         lambda d, a, b: d(a, b) * 2.5, [1.5, 0.4]),
        ("div(x0, x0) (x0 is used twice; the result is always 1)", lambda d, a: d(a, a), [-1.25]),
        ("div(x0, x1) + x1 (x1 also feeds an addition)", lambda d, a, b: d(a, b) + b, [0.7, -2.0]),
        ("div(1.5, x0) (a constant numerator)", lambda d, a: d(a * 0 + 1.5, a), [0.8]),
        ("div(div(x0, x1), x2).tanh()",
         lambda d, a, b, c: d(d(a, b), c).tanh(), [0.3, -1.1, 0.8]),
    ]
    for s in range(seed, seed + 4):
        leaves, program = _random_program(s)
        cases.append((f"a random graph (seed {s})", _program_expr(program, binary=True), leaves))
    return cases


def check_div(div, seed: int = 0) -> None:
    """``div(a, b)``: a Value a / b whose ``_backward`` applies the quotient rule,
    d(a/b)/da = 1/b and d(a/b)/db = -a/b**2, each times out.grad."""
    name = "check_div"
    wrong = [
        (_div_variant("overwrite"), _OVERWRITE),
        (_div_variant("no_chain"), "multiply each local derivative by out.grad (the chain rule)"),
        (_div_variant("sign"), "the derivative with respect to b is negative: -a / b**2 "
                               "(a larger divisor makes the quotient smaller)"),
        (_div_variant("not_squared"), "the derivative of a / b with respect to b is -a / b**2: "
                                      "b is squared"),
        (_div_variant("swapped"), "the two local derivatives are swapped: 1/b belongs to a, "
                                  "-a/b**2 to b"),
        (_div_variant("a_only"), "b receives a gradient too: -a / b**2 times out.grad"),
        (_div_variant("mul_rule"), "that is the rule for a * b; for a / b the local "
                                   "derivatives are 1/b (for a) and -a/b**2 (for b)"),
        (_div_variant("none"), _NO_BACKWARD.format(fn="div")),
    ]
    n = _check_value_op(name, div, "div", True, _div_cases(seed), torch.div, wrong,
                        "for out = a / b, add (1/b) * out.grad to a's grad and "
                        "(-a/b**2) * out.grad to b's grad", forward=lambda x, y: x / y)
    passed(name, f"{n} expressions, gradients match torch.autograd")


# -- 2. softplus, forward and backward ---------------------------------------------------------

def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _softplus_variant(kind: str):
    def softplus(x):
        out = Value(_softplus(x.data), (x,), "softplus")

        def _backward():
            s = _sigmoid(x.data)
            if kind == "itself":
                x.grad += out.data * out.grad
            elif kind == "sigmoid_slope":
                x.grad += s * (1 - s) * out.grad
            elif kind == "flipped":
                x.grad += _sigmoid(-x.data) * out.grad
            elif kind == "no_chain":
                x.grad += s
            elif kind == "overwrite":
                x.grad = s * out.grad
            elif kind == "exp":
                x.grad += math.exp(min(x.data, 700.0)) * out.grad
            elif kind == "tanh":
                x.grad += (1 - math.tanh(x.data) ** 2) * out.grad
        if kind != "none":
            out._backward = _backward
        return out
    return softplus


def _softplus_torch(x):
    return torch.nn.functional.softplus(x)


def _softplus_cases(seed: int):
    cases = [
        ("softplus(x0)", lambda f, x: f(x), [0.5]),
        ("softplus(x0) for a negative x0", lambda f, x: f(x), [-1.3]),
        ("softplus(x0) * 3 (the gradient arriving at out is 3, not 1)", lambda f, x: f(x) * 3.0, [-0.8]),
        ("softplus(x0) * x0 (x0 is used twice)", lambda f, x: f(x) * x, [1.3]),
        ("softplus(softplus(x0))", lambda f, x: f(f(x)), [-0.6]),
        ("softplus(x0 * x1 + x2)", lambda f, a, b, c: f(a * b + c), [1.2, -0.7, 0.2]),
        ("softplus(x0) for x0 = 30 (the slope is almost 1 there)", lambda f, x: f(x), [30.0]),
        ("softplus(x0) for x0 = -30 (the slope is almost 0 there)", lambda f, x: f(x), [-30.0]),
    ]
    for s in range(seed, seed + 4):
        leaves, program = _random_program(s)
        cases.append((f"a random graph (seed {s})", _program_expr(program, binary=False), leaves))
    return cases


def check_softplus(softplus, seed: int = 0) -> None:
    """``softplus(x)``: a Value log(1 + exp(x)) whose ``_backward`` sends
    sigmoid(x) * out.grad to x; finite for |x| up to 1000."""
    name = "check_softplus"
    wrong = [
        (_softplus_variant("itself"), "the slope of softplus is not softplus itself: "
                                      "d/dx log(1 + e**x) = e**x / (1 + e**x), the sigmoid of x"),
        (_softplus_variant("sigmoid_slope"), "s * (1 - s) is the slope of the sigmoid; the slope "
                                             "of softplus is the sigmoid s itself"),
        (_softplus_variant("flipped"), "the sign is flipped: the slope is e**x / (1 + e**x) = "
                                       "1 / (1 + e**-x), close to 1 for large x"),
        (_softplus_variant("no_chain"), "multiply the local derivative by out.grad (the chain rule)"),
        (_softplus_variant("overwrite"), _OVERWRITE),
        (_softplus_variant("exp"), "d/dx log(1 + e**x) = e**x / (1 + e**x): divide by 1 + e**x"),
        (_softplus_variant("tanh"), "1 - t**2 is tanh's slope; the slope of softplus is the "
                                    "sigmoid of x"),
        (_softplus_variant("none"), _NO_BACKWARD.format(fn="softplus")),
    ]
    n = _check_value_op(name, softplus, "softplus", False, _softplus_cases(seed), _softplus_torch,
                        wrong, "add sigmoid(x) * out.grad to x's grad: d/dx log(1 + e**x) = "
                               "1 / (1 + e**-x)", forward=_softplus)
    # 3. large inputs: exp(1000) overflows a float, softplus(1000) does not
    op = _guarded_op(name, softplus, "softplus")
    stable = ("exp(1000) overflows a float: write softplus(x) = max(x, 0) + log(1 + e**-|x|), "
              "whose exponent is never positive, and the sigmoid in the form that fits the "
              "sign of x")
    for x0, want, slope in ((1000.0, 1000.0, 1.0), (-1000.0, 0.0, 0.0), (50.0, 50.0, 1.0)):
        x = Value(x0)
        try:
            out = op(x)
            call(name, out.backward, what="out.backward() (it runs your _backward)")
        except CheckFailure as err:
            if isinstance(err.__cause__, (OverflowError, ZeroDivisionError)):
                fail(name, f"softplus(x) for x = {x0:g}", f"out.data = {want:g}, x.grad = {slope:g}",
                     f"{type(err.__cause__).__name__}: {err.__cause__}", stable)
            raise
        if not (math.isclose(out.data, want, rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(x.grad, slope, rel_tol=1e-9, abs_tol=1e-12)):
            fail(name, f"softplus(x) for x = {x0:g}", f"out.data = {want:g}, x.grad = {slope:g}",
                 f"out.data = {out.data!r}, x.grad = {x.grad!r}", stable)
    passed(name, f"{n} expressions, gradients match torch.autograd; finite at x = +-1000")


# -- 3. the backward sweep ---------------------------------------------------------------------

def _lockstep_graph(seed: int, n_leaves: int = 4, n_ops: int = 14):
    """A random graph built twice, from coursekit Values and from float64 tensors.

    Returns (pairs, out_v, out_t): every leaf and operation output as a (Value, tensor)
    pair, in the order built, and the two outputs. Nodes are reused often.
    """
    rng = random.Random(seed)
    leaves = [round(rng.uniform(-1.5, 1.5), 3) for _ in range(n_leaves)]
    pairs = [(Value(x, label=f"x{i}"), torch.tensor(x, dtype=torch.float64, requires_grad=True))
             for i, x in enumerate(leaves)]
    for _ in range(n_ops):
        op = rng.choice(["add", "mul", "mul", "tanh", "exp", "square", "sigmoid", "sub", "relu"])
        i = max(0, len(pairs) - 1 - int(rng.expovariate(0.5)))   # recent nodes: a deep graph
        j = rng.randrange(len(pairs))                             # any node: reuse
        (va, ta), (vb, tb) = pairs[i], pairs[j]
        if op == "add":
            v, t = va + vb, ta + tb
        elif op == "mul":
            v, t = va * vb, ta * tb
        elif op == "sub":
            v, t = va - vb, ta - tb
        elif op == "tanh":
            v, t = va.tanh(), ta.tanh()
        elif op == "exp":
            v, t = va.tanh().exp(), ta.tanh().exp()
        elif op == "square":
            v, t = va ** 2, ta ** 2
        elif op == "sigmoid":
            v, t = va.sigmoid(), ta.sigmoid()
        else:
            v, t = (va + 0.25).relu(), (ta + 0.25).relu()
        if abs(v.data) > 10:
            v, t = v.tanh(), t.tanh()
        t.retain_grad()
        pairs.append((v, t))
    out_v = pairs[-1][0] + pairs[-2][0] * pairs[-3][0]
    out_t = pairs[-1][1] + pairs[-2][1] * pairs[-3][1]
    return pairs, out_v, out_t


def _record_calls(root: Value) -> tuple[list[Value], list[Value]]:
    """Wrap every node's ``_backward`` so that calls are recorded; returns (nodes, calls)."""
    nodes, calls = root.topological_order(), []
    for node in nodes:
        inner = node._backward

        def _backward(node=node, inner=inner):
            calls.append(node)
            inner()
        node._backward = _backward
    return nodes, calls


def _sweep(name: str, backward, root: Value, what: str) -> None:
    """Run the learner's sweep on ``root``, explaining a recursion error."""
    try:
        call(name, backward, root, what=what, bans=BANS[name])
    except CheckFailure as err:
        if isinstance(err.__cause__, RecursionError):
            fail(name, f"{what} on a chain of thousands of nodes", "no error",
                 "RecursionError: maximum recursion depth exceeded",
                 "Python stops after about 1000 nested calls; walk the graph with a loop "
                 "and a list used as a stack (or count each node's users and start from "
                 "the output, Kahn's algorithm)")
        raise


def _check_sweep_order(name: str, case: str, root: Value, nodes, calls) -> None:
    """Each operation node's _backward runs once, after every node that uses it."""
    if root.grad != 1.0:
        fail(name, f"{case}: the output's own grad after the sweep", 1.0, root.grad,
             "seed the sweep: the derivative of the output with respect to itself is 1")
    ops = [n for n in nodes if n.inputs]
    count = {id(n): 0 for n in ops}
    for n in calls:
        if id(n) in count:
            count[id(n)] += 1
    missing = [n for n in ops if count[id(n)] == 0]
    if missing:
        fail(name, f"{case}: how many operation nodes passed their gradient on",
             f"all {len(ops)} of them", f"{len(ops) - len(missing)} (e.g. one made by "
             f"{missing[0].op!r} was never visited)",
             "call _backward on every node the output depends on: follow .inputs from the "
             "output until you reach the leaves")
    twice = [n for n in ops if count[id(n)] > 1]
    if twice:
        fail(name, f"{case}: how often each node's _backward ran", "once per node",
             f"{count[id(twice[0])]} times for a node made by {twice[0].op!r}",
             "a node reached along two paths must be visited once: remember which nodes "
             "you have already listed (a set of ids)")
    users: dict[int, list[Value]] = {}
    for n in ops:
        for child in n.inputs:
            users.setdefault(id(child), []).append(n)
    done: set[int] = set()
    for n in calls:
        if id(n) in count:
            early = [u for u in users.get(id(n), []) if id(u) not in done]
            if early:
                fail(name, f"{case}: the order of the sweep",
                     "every node after all the nodes that use it",
                     f"a node made by {n.op!r} passed its gradient on before a node made by "
                     f"{early[0].op!r} that uses it had sent it its share",
                     "a node's grad is complete only when every node that uses it has been "
                     "processed: order the graph topologically (each node after its inputs) "
                     "and walk that order in reverse")
            done.add(id(n))


def check_backward(backward, seed: int = 0) -> None:
    """``backward(root)``: zero every grad in root's graph, seed root.grad = 1, then call
    each node's ``_backward`` once, in reverse topological order."""
    name = "check_backward"
    require_callable(name, backward, "backward", n_args=1)
    what = "backward(out)"
    n_graphs = 0
    for s in range(seed, seed + 12):
        pairs, out_v, out_t = _lockstep_graph(s)
        out_t.backward()
        nodes, calls = _record_calls(out_v)
        for k, node in enumerate(nodes):        # stale numbers from an earlier sweep
            node.grad = 0.5 + k % 3
        case = f"a random graph of {len(nodes)} Values (seed {s})"
        _sweep(name, backward, out_v, what)
        _check_sweep_order(name, case, out_v, nodes, calls)
        got = [v.grad for v, _ in pairs]
        ref = [t.grad.item() if t.grad is not None else 0.0 for _, t in pairs]
        if not all(math.isclose(g, r, rel_tol=1e-6, abs_tol=1e-9) for g, r in zip(got, ref)):
            fail(name, f"{case}: the grads of its leaves and operation outputs",
                 f"{[round(r, 6) for r in ref]} (torch.autograd)", f"{[round(g, 6) for g in got]}",
                 "every grad in the graph held a number from an earlier sweep: set each "
                 "node's grad to 0 before you seed the output")
        before = [v.grad for v, _ in pairs]
        calls.clear()
        _sweep(name, backward, out_v, what)
        again = [v.grad for v, _ in pairs]
        if again != before:
            fail(name, f"{case}: the grads after calling backward(out) a second time",
                 "the same grads as after the first call", f"{[round(g, 6) for g in again]}",
                 "start every sweep from zero: set each node's grad to 0, then seed the output")
        n_graphs += 1
    # a chain thousands of nodes deep, and a sum of many terms (a wide graph)
    x = Value(0.3, label="x")
    y = x
    for _ in range(3000):
        y = y * 0.999 + 0.001
    _sweep(name, backward, y, what)
    expect_close(name, "a chain 6000 operations deep: y = (...((x * 0.999 + 0.001) * 0.999 ...",
                 torch.tensor(x.grad), torch.tensor(0.999 ** 3000), atol=1e-9, rtol=1e-9,
                 hint="every node on the chain passes its gradient on once, from the output "
                      "back to x", what="x.grad")
    leaves = [Value(0.01 * i) for i in range(300)]
    total = leaves[0] * leaves[0]
    for v in leaves[1:]:
        total = total + v * v
    _sweep(name, backward, total, what)
    expect_close(name, "a sum of 300 squares: the grads of its leaves (2 x_i)",
                 torch.tensor([v.grad for v in leaves]),
                 torch.tensor([2 * v.data for v in leaves]), atol=1e-9,
                 hint="visit every node once, each after all the nodes that use it")
    passed(name, f"{n_graphs} random graphs (every grad matches torch.autograd, twice), a "
                 "chain 6000 deep and a sum of 300 terms")


# -- 4. numerical gradient with the five-point stencil ------------------------------------------

def _numgrad_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return [
        ("f(x) = sum(x**5), x of shape (3,)", lambda x: (x ** 5).sum(),
         torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), 0.1),
        ("f(x) = sum(exp(x) * sin(3 x)), x of shape (4,)", lambda x: (x.exp() * (3 * x).sin()).sum(),
         torch.randn(4, generator=g, dtype=torch.float64), 0.05),
        ("f(x) = x @ A @ x + sum(tanh(x)), x of shape (3,)", lambda x: x @ a @ x + x.tanh().sum(),
         torch.randn(3, generator=g, dtype=torch.float64), 0.02),
        ("f(x) = sum(log(1 + x**2)) * x[0, 0], x of shape (2, 3)",
         lambda x: (1 + x ** 2).log().sum() * x[0, 0], torch.randn(2, 3, generator=g, dtype=torch.float64),
         0.01),
    ]


def _stencil(f, x, h, points):
    """sum_k w_k f(x + k h e_i) / h for every entry i, with ``points`` = [(k, w_k), ...]."""
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        total = 0.0
        for k, w in points:
            flat[i] = old + k * h
            total += w * float(f(x))
        flat[i] = old
        gflat[i] = total / h
    return grad


_FIVE = [(-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12)]
_THREE = [(-1, -0.5), (1, 0.5)]
_ONE_SIDED = [(0, -1.0), (1, 1.0)]


def check_numerical_grad(numerical_grad, seed: int = 0) -> None:
    """``numerical_grad(f, x, h)``: the gradient of scalar f at tensor x by the five-point
    stencil (-f(x + 2h) + 8 f(x + h) - 8 f(x - h) + f(x - 2h)) / (12 h), entry by entry."""
    name = "check_numerical_grad"
    require_callable(name, numerical_grad, "numerical_grad", n_args=3)
    cases = _numgrad_cases(seed)
    for case, f, x, h in cases:
        x_in = x.clone()
        got = call(name, numerical_grad, f, x_in, h, what=f"numerical_grad(f, x, h={h:g})",
                   bans=BANS[name])
        if x_in.shape != x.shape or not torch.allclose(x_in, x, rtol=0, atol=1e-12):
            fail(name, f"{case}: x must be unchanged after the call", x, x_in,
                 "put each entry back after evaluating f at the shifted points")
        got = as_tensor(name, got, "the returned gradient", shape=tuple(x.shape))
        got64 = got.detach().double()
        want = _stencil(f, x.clone(), h, _FIVE)
        xr = x.clone().requires_grad_(True)
        f(xr).backward()
        exact = xr.grad
        hint = ("the five-point stencil: (-f(x + 2h e_i) + 8 f(x + h e_i) - 8 f(x - h e_i) "
                "+ f(x - 2h e_i)) / (12 h) for every entry i of x")
        for other, text in [
            (_stencil(f, x.clone(), h, _THREE),
             "this is the three-point central difference (f(x + h) - f(x - h)) / (2h), whose "
             "error shrinks like h**2; the five-point stencil cancels that error too"),
            (_stencil(f, x.clone(), h, _ONE_SIDED),
             "this is the one-sided difference (f(x + h) - f(x)) / h; use the five-point stencil"),
            (2 * want, "divide by 12 h: the weights -1, 8, -8, 1 sum to a slope times 12 h"),
            (want / 2, "divide by 12 h, not 24 h"),
            (exact, "this is the exact gradient, not the stencil with the step you are "
                    "given: use the argument h"),
        ]:
            if torch.allclose(got64, other, rtol=1e-7, atol=1e-9):
                hint = text
                break
        expect_close(name, f"{case}, h = {h:g}, compared with the five-point stencil",
                     got64, want, atol=1e-9, rtol=1e-8, hint=hint, what="the returned gradient")
    passed(name, f"{len(cases)} functions and 4 step sizes, agrees with the five-point "
                 "stencil to 1e-9")


# -- 5. backpropagation in matrix form -------------------------------------------------------

def _mlp_case(seed: int, n: int, d: int, h: int, k: int):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(generator=g, dtype=torch.float64)
    return (torch.randn(n, d, **f64), torch.randn(n, k, **f64), torch.randn(d, h, **f64) / d ** 0.5,
            0.5 * torch.randn(h, **f64), torch.randn(h, k, **f64) / h ** 0.5, 0.5 * torch.randn(k, **f64))


def _mlp_autograd(X, y, W1, b1, W2, b2):
    """The oracle: L = mean over rows of 0.5 * ||tanh(X W1 + b1) W2 + b2 - y||^2."""
    params = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    out = torch.tanh(X @ params[0] + params[1]) @ params[2] + params[3]
    loss = 0.5 * ((out - y) ** 2).sum(1).mean()
    return torch.autograd.grad(loss, params)


def _mlp_mistakes(X, y, W1, b1, W2, b2):
    """What the usual mistakes return, each with its hint."""
    n = X.shape[0]
    z = X @ W1 + b1
    hid = torch.tanh(z)
    delta2 = (hid @ W2 + b2 - y) / n
    dW2, db2 = hid.T @ delta2, delta2.sum(0)
    delta1 = (delta2 @ W2.T) * (1 - hid ** 2)
    no_tanh = delta2 @ W2.T
    pre = (delta2 @ W2.T) * (1 - z ** 2)
    return [
        ([X.T @ (n * delta1), n * delta1.sum(0), hid.T @ (n * delta2), n * delta2.sum(0)],
         "the loss is a mean over the N rows: each row's error carries a factor 1/N"),
        ([2 * X.T @ delta1, 2 * delta1.sum(0), 2 * dW2, 2 * db2],
         "the loss has a factor 1/2 in front of the squared error, so its derivative with "
         "respect to the output is (output - y) / N, without a 2"),
        ([X.T @ no_tanh, no_tanh.sum(0), dW2, db2],
         "the error must pass back through tanh too: multiply elementwise by its slope, "
         "1 - h**2 with h = tanh(X W1 + b1)"),
        ([X.T @ pre, pre.sum(0), dW2, db2],
         "tanh's slope is 1 - tanh(z)**2, written with the hidden output h = tanh(z), not "
         "with the pre-activation z"),
        ([X.T @ delta1, delta1.mean(0), dW2, delta2.mean(0)],
         "a bias is added to every row, so its gradient is the SUM of delta over the rows"),
        ([X.T @ ((delta2 @ W2) * (1 - hid ** 2)) if W2.shape[0] == W2.shape[1] else X.T @ delta1,
          ((delta2 @ W2) * (1 - hid ** 2)).sum(0) if W2.shape[0] == W2.shape[1] else delta1.sum(0),
          dW2, db2],
         "the error reaches the hidden layer through W2 transposed: delta1 = (delta2 W2^T) * "
         "(1 - h**2)"),
        ([X.T @ delta1, delta1.sum(0), delta2.T @ hid if hid.shape[1] == delta2.shape[1] else dW2, db2],
         "dL/dW2 = h^T delta2, of shape (H, K): the input of the layer, transposed, times the "
         "error at its output"),
    ]


def check_mlp_grads(mlp_grads, seed: int = 0) -> None:
    """``mlp_grads(X, y, W1, b1, W2, b2)`` -> (dW1, db1, dW2, db2) for
    L = mean_n 0.5 * ||tanh(X W1 + b1) W2 + b2 - y||^2, computed by hand (no autograd).
    Shapes: X (N, D), y (N, K), W1 (D, H), b1 (H,), W2 (H, K), b2 (K,)."""
    name = "check_mlp_grads"
    require_callable(name, mlp_grads, "mlp_grads", n_args=6)
    what = "mlp_grads(X, y, W1, b1, W2, b2)"
    shapes = [(7, 4, 4, 4), (5, 3, 4, 2), (8, 2, 6, 1), (1, 3, 5, 2), (16, 6, 3, 3)]
    names = ("dW1", "db1", "dW2", "db2")
    for k, (n, d, h, kk) in enumerate(shapes):
        args = _mlp_case(seed + k, n, d, h, kk)
        copies = [a.clone() for a in args]
        case = f"N = {n}, D = {d}, H = {h}, K = {kk} (seed {seed + k})"
        out = call(name, mlp_grads, *copies, what=what, bans=BANS[name])
        if not isinstance(out, (tuple, list)) or len(out) != 4:
            fail(name, f"{case}: the return value", "a tuple (dW1, db1, dW2, db2)",
                 f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
                 "return the four gradients as a tuple, in the order of the arguments")
        for a, b in zip(copies, args):
            if not torch.equal(a, b):
                fail(name, f"{case}: the arguments after the call", "unchanged tensors",
                     "a changed tensor", "compute new tensors; do not change X, y or the weights")
        want = _mlp_autograd(*args)
        got = [as_tensor(name, g, f"{case}: {nm}", shape=tuple(w.shape))
               for g, w, nm in zip(out, want, names)]
        for i, nm in enumerate(names):
            if torch.allclose(got[i].double(), want[i], atol=1e-6, rtol=1e-6):
                continue
            hint = {"dW1": "dL/dW1 = X^T delta1, with delta1 the error at the hidden layer's "
                           "pre-activation",
                    "db1": "dL/db1 sums delta1 over the rows",
                    "dW2": "dL/dW2 = h^T delta2, with delta2 = (output - y) / N",
                    "db2": "dL/db2 sums delta2 over the rows"}[nm]
            for mistake, text in _mlp_mistakes(*args):
                if torch.allclose(got[i].double(), mistake[i], atol=1e-6, rtol=1e-6):
                    hint = text
                    break
            expect_close(name, f"{case}: {nm} compared with torch.autograd", got[i], want[i],
                         atol=1e-6, rtol=1e-6, hint=hint, what=nm)
    passed(name, f"{len(shapes)} networks of different sizes, the four gradients match "
                 "torch.autograd to 1e-6")


# -- shared: optimiser steps on lists of tensors -------------------------------------------

def _params(seed: int, shapes=((3, 2), (4,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_(True) for s in shapes]


def _set_grads(params, seed: int):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)


def _call_step(name: str, fn, what: str, *args, **kwargs):
    """Call an update function; explain torch's in-place error on leaf tensors."""
    try:
        return call(name, fn, *args, what=what, bans=BANS[name], **kwargs)
    except CheckFailure as err:
        cause = err.__cause__
        if isinstance(cause, RuntimeError) and "in-place" in str(cause):
            raise CheckFailure(
                f"{name} failed: {what} raised RuntimeError: {cause}\n"
                "  hint:     change parameters inside `with torch.no_grad():` so autograd does "
                "not record the update") from cause
        raise


def _require_same_objects(name, before, after, what, hint):
    if len(after) != len(before) or not all(a is b for a, b in zip(before, after)):
        fail(name, f"{what}: the list now holds different tensor objects",
             "the same tensors, changed in place", "new tensors", hint)


def _compare_lists(name, case, got_list, ref_list, what, hint, atol=1e-8):
    for i, (got, ref) in enumerate(zip(got_list, ref_list)):
        expect_close(name, f"{case}: {what}[{i}]", got, ref, atol=atol, rtol=1e-6,
                     hint=hint, what=f"{what}[{i}]")


_REBINDS = ("{x} = ... inside the loop only rebinds a local name; change the stored tensor "
            "itself (an in-place method such as mul_ and add_, or an assignment into the list)")


# -- 6. one step of Nesterov momentum -----------------------------------------------------------

def _nesterov_reference(params, velocities, lr, momentum, variant=""):
    new_p, new_v = [], []
    for p, v in zip(params, velocities):
        g = p.grad
        v2 = momentum * v + g                         # v <- mu v + g
        if variant == "plain":
            v2, step = v, g
        elif variant == "heavy_ball":
            step = v2
        elif variant == "old_velocity":
            step = g + momentum * v
        elif variant == "dampened":
            v2 = momentum * v + (1 - momentum) * g
            step = g + momentum * v2
        elif variant == "lr_inside":
            v2 = momentum * v + lr * g
            step = (lr * g + momentum * v2) / lr
        elif variant == "ascent":
            step = -(g + momentum * v2)
        else:
            step = g + momentum * v2                  # p <- p - lr (g + mu v)
        new_v.append(v2.detach().clone())
        new_p.append((p - lr * step).detach().clone())
    return new_p, new_v


def check_nesterov_step(nesterov_step, seed: int = 0) -> None:
    """``nesterov_step(params, velocities, lr, momentum)``, in place:
    v <- momentum * v + g, then p <- p - lr * (g + momentum * v) (PyTorch's Nesterov form)."""
    name = "check_nesterov_step"
    require_callable(name, nesterov_step, "nesterov_step", n_args=4)
    wrong = {
        "plain": "the velocity is ignored: update v first (v = mu v + g), then step along "
                 "g + mu v",
        "heavy_ball": "this is heavy-ball momentum (step along v); Nesterov's step looks ahead "
                      "along the new velocity: p <- p - lr (g + mu v)",
        "old_velocity": "update the velocity before the step: the step uses g + mu v with "
                        "the NEW v",
        "dampened": "this exercise uses PyTorch's form v = mu v + g, without the factor "
                    "(1 - mu) in front of g",
        "lr_inside": "keep lr out of the velocity (PyTorch's form): v = mu v + g, then "
                     "p <- p - lr (g + mu v)",
        "ascent": "the step goes uphill: subtract lr (g + mu v)",
    }
    what = "nesterov_step(params, velocities, lr, momentum)"
    settings = ((0.1, 0.9, 3), (0.05, 0.5, 2), (0.01, 0.99, 4), (0.3, 0.0, 1))
    for k, (lr, mu, n_steps) in enumerate(settings):
        params = _params(seed + k)
        g = torch.Generator().manual_seed(seed + 100 + k)
        velocities = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        for step in range(n_steps):
            _set_grads(params, seed + 1000 * k + step)
            case = f"lr = {lr}, momentum = {mu}, step {step + 1} (from non-zero velocities)"
            ref_p, ref_v = _nesterov_reference(params, velocities, lr, mu)
            guesses = {kind: _nesterov_reference(params, velocities, lr, mu, kind) for kind in wrong}
            p_before, v_before = list(params), [v.clone() for v in velocities]
            _call_step(name, nesterov_step, what, params, velocities, lr, mu)
            _require_same_objects(name, p_before, params, "params",
                                  "update each parameter in place, inside torch.no_grad()")
            hint = ""
            for kind, (gp, _) in guesses.items():
                if all(torch.allclose(p.detach(), r, atol=1e-8) for p, r in zip(params, gp)) \
                        and not all(torch.allclose(r, w, atol=1e-8) for r, w in zip(ref_p, gp)):
                    hint = wrong[kind]
                    break
            if mu and all(torch.equal(v, vb) for v, vb in zip(velocities, v_before)):
                fail(name, f"{case}: velocities after the call", "updated velocities",
                     "unchanged velocities", hint or _REBINDS.format(x="v"))
            hint = hint or "v <- mu v + g, then p <- p - lr (g + mu v), inside torch.no_grad()"
            _compare_lists(name, case, velocities, ref_v, "velocities", hint)
            _compare_lists(name, case, [p.detach() for p in params], ref_p, "params", hint)
    # from zero velocities, the update follows torch.optim.SGD(nesterov=True) step for step
    params = _params(seed + 7)
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    velocities = [torch.zeros_like(p) for p in params]
    opt = torch.optim.SGD(twins, lr=0.1, momentum=0.8, nesterov=True)
    for step in range(5):
        _set_grads(params, seed + 500 + step)
        for t, p in zip(twins, params):
            t.grad = p.grad.clone()
        _call_step(name, nesterov_step, what, params, velocities, 0.1, 0.8)
        opt.step()
    _compare_lists(name, "5 steps from zero velocities, compared with torch.optim.SGD(lr=0.1, "
                   "momentum=0.8, nesterov=True)", [p.detach() for p in params],
                   [t.detach() for t in twins], "params", "v <- mu v + g, then p <- p - lr (g + mu v)")
    passed(name, f"{len(settings)} settings and 5 steps that follow "
                 "torch.optim.SGD(nesterov=True)")


# -- 7. one AdamW step: Adam with decoupled weight decay --------------------------------------

def _adamw_reference(params, m, v, t, lr, beta1, beta2, eps, wd, variant=""):
    new_p, new_m, new_v = [], [], []
    for p, m_i, v_i in zip(params, m, v):
        g = p.grad
        if variant == "l2":
            g = g + wd * p                                         # coupled: Adam's weight_decay
        m2 = beta1 * m_i + (1 - beta1) * g                         # m_t
        v2 = beta2 * v_i + (1 - beta2) * g * g                     # v_t
        if variant == "no_bias_correction":
            m_hat, v_hat = m2, v2
        elif variant == "power_wrong":
            m_hat, v_hat = m2 / (1 - beta1) ** t, v2 / (1 - beta2) ** t
        else:
            m_hat, v_hat = m2 / (1 - beta1 ** t), v2 / (1 - beta2 ** t)
        if variant == "eps_inside":
            step = m_hat / (v_hat + eps).sqrt()
        else:
            step = m_hat / (v_hat.sqrt() + eps)
        if variant in ("l2", "no_decay"):
            new = p - lr * step
        elif variant == "no_lr":
            new = p * (1 - wd) - lr * step
        elif variant == "after":
            new = (p - lr * step) * (1 - lr * wd)
        else:
            new = p * (1 - lr * wd) - lr * step                    # decoupled decay
        new_m.append(m2.detach().clone())
        new_v.append(v2.detach().clone())
        new_p.append(new.detach().clone())
    return new_p, new_m, new_v


def check_adamw_step(adamw_step, seed: int = 0, n_steps: int = 4) -> None:
    """``adamw_step(params, m, v, t, lr, beta1, beta2, eps, weight_decay)``: one AdamW
    update (Loshchilov & Hutter, 2019): p <- p (1 - lr wd), then Adam's step, in place."""
    name = "check_adamw_step"
    require_callable(name, adamw_step, "adamw_step", n_args=4)
    wrong = {
        "no_decay": "weight_decay has no effect here: shrink every parameter by the factor "
                    "(1 - lr wd) as well (adding weight_decay * p to the gradient, L2, is not "
                    "the same: at the first step Adam's division by sqrt(v_hat) cancels it)",
        "l2": "this adds weight_decay * p to the gradient (L2, Adam's own weight_decay), so "
              "the decay is rescaled by sqrt(v_hat); AdamW decays the weights directly: "
              "p <- p (1 - lr wd), outside the adaptive step",
        "no_lr": "the decay is scaled by the learning rate too: p <- p (1 - lr wd)",
        "after": "decay the weights as they were before this step: p (1 - lr wd) - lr "
                 "m_hat / (sqrt(v_hat) + eps), all with the old p",
        "no_bias_correction": "correct the bias: m_hat = m / (1 - beta1**t) and "
                              "v_hat = v / (1 - beta2**t)",
        "power_wrong": "the bias correction raises beta to the power t: 1 - beta1**t, not "
                       "(1 - beta1)**t",
        "eps_inside": "eps goes outside the square root: sqrt(v_hat) + eps",
    }
    what = "adamw_step(params, m, v, t, lr=..., beta1=..., beta2=..., eps=..., weight_decay=...)"
    settings = [(1e-2, 0.9, 0.999, 1e-8, 0.01), (0.1, 0.8, 0.99, 1e-3, 0.1),
                (0.05, 0.5, 0.9, 1e-6, 0.5)]
    full = ("m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g**2; bias-correct both "
            "with 1 - beta**t; p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)")
    for k, (lr, beta1, beta2, eps, wd) in enumerate(settings):
        params = _params(seed + 10 + k)
        m = [torch.zeros_like(p).detach() for p in params]
        v = [torch.zeros_like(p).detach() for p in params]
        for t in range(1, n_steps + 1):
            _set_grads(params, seed + 2000 + 100 * k + t)
            case = (f"lr = {lr}, betas = ({beta1}, {beta2}), eps = {eps}, weight_decay = {wd}, "
                    f"step t = {t}")
            args = (m, v, t, lr, beta1, beta2, eps, wd)
            ref_p, ref_m, ref_v = _adamw_reference(params, *args)
            guesses = {kind: _adamw_reference(params, *args, variant=kind) for kind in wrong}
            p_before, m_before, v_before = list(params), [x.clone() for x in m], [x.clone() for x in v]
            _call_step(name, adamw_step, what, params, m, v, t, lr=lr, beta1=beta1, beta2=beta2,
                       eps=eps, weight_decay=wd)
            _require_same_objects(name, p_before, params, "params",
                                  "update each parameter in place, inside torch.no_grad()")
            for label, now, before in (("m", m, m_before), ("v", v, v_before)):
                if all(torch.equal(a, b) for a, b in zip(now, before)):
                    fail(name, f"{case}: {label} after the call", f"updated {label}",
                         f"unchanged {label}", _REBINDS.format(x=label))
            got_p = [p.detach() for p in params]
            if any(not torch.isfinite(p).all() for p in got_p):
                fail(name, f"{case}: params after the step", "finite numbers", "NaN or inf",
                     "v averages the squared gradient, v = beta2 v + (1 - beta2) g**2, so it "
                     "is never negative" if any((x < 0).any() for x in v) else
                     "t starts at 1, so 1 - beta**t is never 0; do not use t - 1 or start at 0")
            hint = full
            for kind, (gp, _, _) in guesses.items():
                if all(torch.allclose(p, r, atol=1e-9, rtol=1e-7) for p, r in zip(got_p, gp)):
                    hint = wrong[kind]
                    break
            _compare_lists(name, case, m, ref_m, "m", hint)
            _compare_lists(name, case, v, ref_v, "v", hint)
            _compare_lists(name, case, got_p, ref_p, "params", hint)
    # the same update follows torch.optim.AdamW step for step
    params = _params(seed + 20)
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    m = [torch.zeros_like(p).detach() for p in params]
    v = [torch.zeros_like(p).detach() for p in params]
    opt = torch.optim.AdamW(twins, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    for t in range(1, 6):
        _set_grads(params, seed + 3000 + t)
        for tw, p in zip(twins, params):
            tw.grad = p.grad.clone()
        _call_step(name, adamw_step, what, params, m, v, t, lr=0.05, beta1=0.9, beta2=0.999,
                   eps=1e-8, weight_decay=0.1)
        opt.step()
    _compare_lists(name, "5 steps compared with torch.optim.AdamW(lr=0.05, weight_decay=0.1)",
                   [p.detach() for p in params], [tw.detach() for tw in twins], "params",
                   "follow Algorithm 2 of Loshchilov & Hutter (2019) with a constant schedule",
                   atol=1e-7)
    passed(name, f"{len(settings) * n_steps} steps in {len(settings)} settings, and 5 steps "
                 "that follow torch.optim.AdamW")
