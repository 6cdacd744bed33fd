"""Checks for exercises/03_backprop_and_gradient_descent.ipynb, one per exercise.

The references are independent of the learner's code and of ``coursekit.optim``:
gradients come from ``torch.autograd`` in float64, optimiser steps from the update
equations written out here and from ``torch.optim``. When an answer is wrong, the check
re-runs the usual mistakes on the same case and names the one the answer reproduces.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from coursekit.autograd import Value
from coursekit.checks.assertions import (CheckFailure, as_tensor, call, expect_close, fail,
                                         passed, require_callable)

# -- shared: running expressions on Values and on torch tensors -----------------------------

# An expression is a function expr(op, *leaves) where ``op`` is the operation under test
# (the learner's mul or tanh on Values, torch's on tensors); everything else in it uses
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
            if kind == "test":
                nodes.append(op(a, b) if binary else op(a))
            elif kind == "add":
                nodes.append(a + b)
            elif kind == "mul":
                nodes.append(a * b)
            else:
                nodes.append(a.tanh())
        return nodes[-1] + nodes[-2] + nodes[-3]
    return expr


def _check_value_op(name: str, fn, fn_name: str, binary: bool, cases, torch_op, wrong,
                    default_hint: str) -> int:
    """Shared body of check_mul and check_tanh; returns the number of cases run."""
    require_callable(name, fn, fn_name, n_args=2 if binary else 1)
    # 1. the forward value and the graph links, on the simplest case
    a, b = Value(2.0), Value(-3.0)
    out = call(name, fn, *((a, b) if binary else (a,)), what=f"{fn_name}(...)")
    if not _is_value(out):
        fail(name, f"{fn_name} should return a Value", "a Value (from coursekit.autograd)",
             f"{type(out).__name__}: {out!r}"[:120],
             "return Value(result, inputs, op): a plain number cannot carry gradients")
    want = a.data * b.data if binary else math.tanh(a.data)
    if not math.isclose(out.data, want, rel_tol=1e-9, abs_tol=1e-12):
        fail(name, f"the forward value of {fn_name}" + ("(2, -3)" if binary else "(2)"), want,
             out.data, "out.data should hold the result of the operation itself")
    linked = (a, b) if binary else (a,)
    if not all(any(x is y for y in out.inputs) for x in linked):
        fail(name, f"{fn_name}: out.inputs should hold the input Value(s)",
             "inputs containing " + ("a and b" if binary else "x"), f"inputs = {out.inputs!r}",
             "create the output as Value(data, (a, b), '*') (or (x,) for tanh): backward() "
             "follows .inputs to find the nodes it must reach")
    # 2. gradients on fixed and random expressions, against torch.autograd
    n = 0
    for case, expr, leaves in cases:
        data, grads = _value_grads(name, expr, fn, leaves, what=f"building {case}")
        ref_data, ref_grads = _torch_grads(expr, torch_op, leaves)
        if not math.isclose(data, ref_data, rel_tol=1e-6, abs_tol=1e-9):
            fail(name, f"{case}: the output value", ref_data, data,
                 "the forward value is off: check what you store in out.data")
        if not all(math.isclose(g, r, rel_tol=1e-6, abs_tol=1e-9) for g, r in zip(grads, ref_grads)):
            hint = default_hint
            for wrong_fn, wrong_hint in wrong:
                try:
                    _, wrong_grads = _value_grads(name, expr, wrong_fn, leaves, what="")
                except CheckFailure:
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


# -- 1. backward of multiplication --------------------------------------------------------

def _mul_variant(kind: str):
    """A mistaken mul, to recognise which mistake an answer makes."""
    def mul(a, b):
        out = Value(a.data * b.data, (a, b), "*")

        def _backward():
            if kind == "overwrite":
                a.grad = b.data * out.grad
                b.grad = a.data * out.grad
            elif kind == "no_chain":
                a.grad += b.data
                b.grad += a.data
            elif kind == "swapped":
                a.grad += a.data * out.grad
                b.grad += b.data * out.grad
            elif kind == "ones":
                a.grad += out.grad
                b.grad += out.grad
        out._backward = _backward
        return out
    return mul


def _mul_cases(seed: int):
    cases = [
        ("mul(x0, x1)", lambda m, a, b: m(a, b), [2.0, -3.0]),
        ("mul(x0, x1) * 2.5 (the gradient arriving at out is 2.5, not 1)",
         lambda m, a, b: m(a, b) * 2.5, [1.5, 0.4]),
        ("mul(x0, x0) (x0 is used twice)", lambda m, a: m(a, a), [-1.25]),
        ("mul(x0, x1) + x0 (x0 also feeds an addition)", lambda m, a, b: m(a, b) + a, [0.7, -2.0]),
        ("(mul(mul(x0, x1), x2) + x0).tanh()",
         lambda m, a, b, c: (m(m(a, b), c) + a).tanh(), [0.3, -1.1, 0.8]),
    ]
    for s in range(seed, seed + 4):
        leaves, program = _random_program(s)
        cases.append((f"a random graph (seed {s})", _program_expr(program, binary=True), leaves))
    return cases


def check_mul(mul, seed: int = 0) -> None:
    """``mul(a, b)``: a Value a * b whose ``_backward`` sends b * out.grad to a and a * out.grad to b."""
    name = "check_mul"
    wrong = [
        (_mul_variant("overwrite"), "gradients must add up: use a.grad += ... (not =), because a "
                                    "Value used in several places receives a gradient from each"),
        (_mul_variant("no_chain"), "multiply the local derivative by out.grad (the chain rule): "
                                   "a.grad += b.data * out.grad"),
        (_mul_variant("swapped"), "the derivative of a * b with respect to a is b (not a): "
                                  "a.grad += b.data * out.grad"),
        (_mul_variant("ones"), "that is the backward of addition; for a * b the local "
                               "derivatives are b (for a) and a (for b)"),
        (lambda a, b: Value(a.data * b.data, (a, b), "*"),
         "no gradient arrived: define _backward inside mul and attach it with out._backward = _backward"),
    ]
    n = _check_value_op(name, mul, "mul", True, _mul_cases(seed), torch.mul, wrong,
                        "a.grad += b.data * out.grad and b.grad += a.data * out.grad")
    passed(name, f"{n} expressions, gradients match torch.autograd")


# -- 2. backward of tanh -------------------------------------------------------------------

def _tanh_variant(kind: str):
    def tanh(x):
        t = math.tanh(x.data)
        out = Value(t, (x,), "tanh")

        def _backward():
            if kind == "uses_x":
                x.grad += (1 - x.data ** 2) * out.grad
            elif kind == "no_chain":
                x.grad += 1 - t ** 2
            elif kind == "overwrite":
                x.grad = (1 - t ** 2) * out.grad
            elif kind == "no_square":
                x.grad += (1 - t) * out.grad
            elif kind == "sigmoid_like":
                x.grad += t * (1 - t) * out.grad
        out._backward = _backward
        return out
    return tanh


def _tanh_cases(seed: int):
    cases = [
        ("tanh(x0)", lambda f, x: f(x), [0.5]),
        ("tanh(x0) * 3 (the gradient arriving at out is 3, not 1)", lambda f, x: f(x) * 3.0, [-0.8]),
        ("tanh(x0) * x0 (x0 is used twice)", lambda f, x: f(x) * x, [1.3]),
        ("tanh(tanh(x0))", lambda f, x: f(f(x)), [-0.6]),
        ("tanh(x0 * x1 + x2)", lambda f, a, b, c: f(a * b + c), [1.2, -0.7, 0.2]),
        ("tanh(x0) for a large x0 (the curve is almost flat there)", lambda f, x: f(x), [3.0]),
    ]
    for s in range(seed, seed + 4):
        leaves, program = _random_program(s)
        cases.append((f"a random graph (seed {s})", _program_expr(program, binary=False), leaves))
    return cases


def check_tanh(tanh, seed: int = 0) -> None:
    """``tanh(x)``: a Value tanh(x) whose ``_backward`` sends (1 - tanh(x)**2) * out.grad to x."""
    name = "check_tanh"
    wrong = [
        (_tanh_variant("uses_x"), "the derivative is 1 - tanh(x)**2, with the output t = tanh(x), "
                                  "not 1 - x**2"),
        (_tanh_variant("no_chain"), "multiply the local derivative by out.grad (the chain rule)"),
        (_tanh_variant("overwrite"), "gradients must add up: use x.grad += ... (not =)"),
        (_tanh_variant("no_square"), "square the output: the derivative is 1 - t**2"),
        (_tanh_variant("sigmoid_like"), "t * (1 - t) is the derivative of the sigmoid; tanh's is 1 - t**2"),
        (lambda x: Value(math.tanh(x.data), (x,), "tanh"),
         "no gradient arrived: define _backward inside tanh and attach it with out._backward = _backward"),
    ]
    n = _check_value_op(name, tanh, "tanh", False, _tanh_cases(seed), torch.tanh, wrong,
                        "x.grad += (1 - t**2) * out.grad, where t = out.data = tanh(x.data)")
    passed(name, f"{n} expressions, gradients match torch.autograd")


# -- 3. numerical gradient by central differences ------------------------------------------

def _numgrad_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return [
        ("f(x) = sum(x**3), x of shape (3,)", lambda x: (x ** 3).sum(),
         torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)),
        ("f(x) = sum(exp(x) * sin(3 x)), x of shape (4,)", lambda x: (x.exp() * (3 * x).sin()).sum(),
         torch.randn(4, generator=g, dtype=torch.float64)),
        ("f(x) = x @ A @ x + sum(tanh(x)), x of shape (3,)", lambda x: x @ a @ x + x.tanh().sum(),
         torch.randn(3, generator=g, dtype=torch.float64)),
        ("f(x) = sum(log(1 + x**2)) * x[0, 0], x of shape (2, 3)",
         lambda x: (1 + x ** 2).log().sum() * x[0, 0], torch.randn(2, 3, generator=g, dtype=torch.float64)),
    ]


def _central(f, x, h):
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = float(f(x))
        flat[i] = old - h
        down = float(f(x))
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def _forward_diff(f, x, h):
    grad = torch.zeros_like(x)
    base = float(f(x))
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        gflat[i] = (float(f(x)) - base) / h
        flat[i] = old
    return grad


def check_numerical_grad(numerical_grad, seed: int = 0) -> None:
    """``numerical_grad(f, x, h)``: the gradient of scalar f at tensor x by central differences."""
    name = "check_numerical_grad"
    require_callable(name, numerical_grad, "numerical_grad", n_args=3)
    h = 1e-4
    cases = _numgrad_cases(seed)
    for case, f, x in cases:
        x_in = x.clone()
        got = call(name, numerical_grad, f, x_in, h, what=f"numerical_grad(f, x, h={h:g})")
        if x_in.shape != x.shape or not torch.allclose(x_in, x, rtol=0, atol=1e-12):
            fail(name, f"{case}: x must be unchanged after the call", x, x_in,
                 "put each entry back (x[i] = old) after evaluating f at old + h and old - h")
        got = as_tensor(name, got, "the returned gradient", shape=tuple(x.shape))
        xr = x.clone().requires_grad_(True)
        f(xr).backward()
        expected = xr.grad
        hint = "(f(x + h e_i) - f(x - h e_i)) / (2 h) for every entry i of x"
        got64 = got.detach().double()
        if torch.allclose(got64, 2 * expected, rtol=1e-4, atol=1e-6):
            hint = "divide by 2 * h: the two points x + h and x - h are 2 h apart"
        elif torch.allclose(got64, _forward_diff(f, x.clone(), h), rtol=1e-6, atol=1e-9):
            hint = ("this is the one-sided difference (f(x + h) - f(x)) / h, whose error shrinks "
                    "only like h; use the central difference (f(x + h) - f(x - h)) / (2 h), "
                    "whose error shrinks like h**2")
        expect_close(name, f"{case}, h = {h:g}, compared with torch.autograd", got, expected,
                     atol=1e-6, rtol=1e-6, hint=hint, what="the returned gradient")
    passed(name, f"{len(cases)} functions, agrees with torch.autograd to 1e-6")


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
        return call(name, fn, *args, what=what, **kwargs)
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


# -- 4. one step of SGD with momentum ------------------------------------------------------

def _momentum_reference(params, velocities, lr, momentum, variant=""):
    new_p, new_v = [], []
    for p, v in zip(params, velocities):
        g = p.grad
        if variant == "plain":
            v2, step = v, g
        elif variant == "dampened":
            v2 = momentum * v + (1 - momentum) * g
            step = v2
        elif variant == "lr_inside":
            v2 = momentum * v + lr * g
            step = v2 / lr
        elif variant == "old_velocity":
            v2, step = momentum * v + g, v
        elif variant == "ascent":
            v2 = momentum * v + g
            step = -v2
        else:
            v2 = momentum * v + g                     # v <- mu v + g
            step = v2                                 # p <- p - lr v
        new_v.append(v2.detach().clone())
        new_p.append((p - lr * step).detach().clone())
    return new_p, new_v


def check_momentum_step(momentum_step, seed: int = 0) -> None:
    """``momentum_step(params, velocities, lr, momentum)``: v <- momentum * v + g, p <- p - lr * v, in place."""
    name = "check_momentum_step"
    require_callable(name, momentum_step, "momentum_step", n_args=4)
    wrong = {
        "plain": "the velocity is ignored: update v first (v = momentum * v + grad), then step "
                 "with it (p -= lr * v)",
        "dampened": "this exercise uses PyTorch's form v = momentum * v + grad, without the "
                    "factor (1 - momentum) in front of grad",
        "lr_inside": "keep lr out of the velocity (PyTorch's form): v = momentum * v + grad, "
                     "then p -= lr * v",
        "old_velocity": "update the velocity before using it: the step uses the new v",
        "ascent": "the step goes uphill: subtract, p -= lr * v",
    }
    n_cases = 0
    for lr, mu, n_steps in ((0.1, 0.9, 3), (0.05, 0.5, 2), (0.01, 0.99, 4)):
        params = _params(seed + n_cases)
        g = torch.Generator().manual_seed(seed + 100 + n_cases)
        velocities = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        case0 = f"lr = {lr}, momentum = {mu}"
        for step in range(n_steps):
            _set_grads(params, seed + 1000 * n_cases + step)
            case = f"{case0}, step {step + 1} (starting from non-zero velocities)"
            ref_p, ref_v = _momentum_reference(params, velocities, lr, mu)
            guesses = {k: _momentum_reference(params, velocities, lr, mu, k) for k in wrong}
            p_before, v_before = list(params), [v.clone() for v in velocities]
            _call_step(name, momentum_step, "momentum_step(params, velocities, lr, momentum)",
                       params, velocities, lr, mu)
            _require_same_objects(name, p_before, params, "params",
                                  "update each parameter in place: with torch.no_grad(): p -= lr * v")
            hint = ""
            for kind, (gp, _) in guesses.items():
                if all(torch.allclose(p.detach(), r, atol=1e-8) for p, r in zip(params, gp)):
                    hint = wrong[kind]
                    break
            if all(torch.equal(v, vb) for v, vb in zip(velocities, v_before)):
                fail(name, f"{case}: velocities after the call", "updated velocities",
                     "unchanged velocities",
                     hint or "v = momentum * v + p.grad only rebinds a local name; change the "
                     "stored tensor: v.mul_(momentum).add_(p.grad), or velocities[i] = ...")
            hint = hint or "v = momentum * v + p.grad, then p -= lr * v (inside torch.no_grad())"
            _compare_lists(name, case, velocities, ref_v, "velocities", hint)
            _compare_lists(name, case, [p.detach() for p in params], ref_p, "params", hint)
        n_cases += 1
    # the same update, from zero velocities, follows torch.optim.SGD step for step
    params = _params(seed + 7)
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    velocities = [torch.zeros_like(p) for p in params]
    opt = torch.optim.SGD(twins, lr=0.1, momentum=0.9)
    for step in range(5):
        _set_grads(params, seed + 500 + step)
        for t, p in zip(twins, params):
            t.grad = p.grad.clone()
        _call_step(name, momentum_step, "momentum_step(params, velocities, lr, momentum)",
                   params, velocities, 0.1, 0.9)
        opt.step()
    _compare_lists(name, "5 steps from zero velocities, compared with torch.optim.SGD(lr=0.1, "
                   "momentum=0.9)", [p.detach() for p in params], [t.detach() for t in twins],
                   "params", "v = momentum * v + p.grad, then p -= lr * v")
    passed(name, f"{n_cases} settings and 5 steps that follow torch.optim.SGD")


# -- 5. one Adam step with bias correction --------------------------------------------------

def _adam_reference(params, m, v, t, lr, beta1, beta2, eps, variant=""):
    new_p, new_m, new_v = [], [], []
    for p, m_i, v_i in zip(params, m, v):
        g = p.grad
        m2 = beta1 * m_i + (1 - beta1) * g                           # m_t
        v2 = beta2 * v_i + (1 - beta2) * g * g                       # v_t
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
        new_m.append(m2.detach().clone())
        new_v.append(v2.detach().clone())
        new_p.append((p - lr * step).detach().clone())
    return new_p, new_m, new_v


def check_adam_step(adam_step, seed: int = 0, n_steps: int = 4) -> None:
    """``adam_step(params, m, v, t, lr, beta1, beta2, eps)``: one Adam update (Kingma & Ba, 2014), in place."""
    name = "check_adam_step"
    require_callable(name, adam_step, "adam_step", n_args=4)
    wrong = {
        "no_bias_correction": "correct the bias: m_hat = m / (1 - beta1**t) and "
                              "v_hat = v / (1 - beta2**t), then step with m_hat / (sqrt(v_hat) + eps)",
        "power_wrong": "the bias correction raises beta to the power t: 1 - beta1**t, not (1 - beta1)**t",
        "eps_inside": "eps goes outside the square root: sqrt(v_hat) + eps",
    }
    what = "adam_step(params, m, v, t, lr=..., beta1=..., beta2=..., eps=...)"
    settings = [(1e-2, 0.9, 0.999, 1e-8), (0.1, 0.8, 0.99, 1e-3)]
    for k, (lr, beta1, beta2, eps) in enumerate(settings):
        params = _params(seed + 10 + k)
        m = [torch.zeros_like(p).detach() for p in params]
        v = [torch.zeros_like(p).detach() for p in params]
        for t in range(1, n_steps + 1):
            _set_grads(params, seed + 2000 + 100 * k + t)
            case = f"lr = {lr}, betas = ({beta1}, {beta2}), eps = {eps}, step t = {t}"
            ref_p, ref_m, ref_v = _adam_reference(params, m, v, t, lr, beta1, beta2, eps)
            guesses = {kind: _adam_reference(params, m, v, t, lr, beta1, beta2, eps, kind)
                       for kind in wrong}
            p_before, m_before, v_before = list(params), [x.clone() for x in m], [x.clone() for x in v]
            _call_step(name, adam_step, what, params, m, v, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
            _require_same_objects(name, p_before, params, "params",
                                  "update each parameter in place: with torch.no_grad(): p -= ...")
            for label, now, before in (("m", m, m_before), ("v", v, v_before)):
                if all(torch.equal(a, b) for a, b in zip(now, before)):
                    fail(name, f"{case}: {label} after the call", f"updated {label}",
                         f"unchanged {label}",
                         f"{label} = ... only rebinds a local name; change the stored tensor, e.g. "
                         f"{label}[i].mul_(beta).add_(...) or {label}[i] = ...")
            got_p = [p.detach() for p in params]
            if any(not torch.isfinite(p).all() for p in got_p):
                fail(name, f"{case}: params after the step", "finite numbers", "NaN or inf",
                     "v averages the squared gradient, v = beta2 * v + (1 - beta2) * g**2, so it "
                     "is never negative" if any((x < 0).any() for x in v) else
                     "t starts at 1, so 1 - beta**t is never 0; do not use t - 1 or start at 0")
            hint = ("m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g**2; "
                    "m_hat = m / (1 - beta1**t); v_hat = v / (1 - beta2**t); "
                    "p -= lr * m_hat / (sqrt(v_hat) + eps)")
            for kind, (gp, _, _) in guesses.items():
                if all(torch.allclose(p, r, atol=1e-9, rtol=1e-7) for p, r in zip(got_p, gp)):
                    hint = wrong[kind]
                    break
            _compare_lists(name, case, m, ref_m, "m", hint)
            _compare_lists(name, case, v, ref_v, "v", hint)
            _compare_lists(name, case, got_p, ref_p, "params", hint)
    # the same update follows torch.optim.Adam step for step
    params = _params(seed + 20)
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    m = [torch.zeros_like(p).detach() for p in params]
    v = [torch.zeros_like(p).detach() for p in params]
    opt = torch.optim.Adam(twins, lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    for t in range(1, 6):
        _set_grads(params, seed + 3000 + t)
        for tw, p in zip(twins, params):
            tw.grad = p.grad.clone()
        _call_step(name, adam_step, what, params, m, v, t, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8)
        opt.step()
    _compare_lists(name, "5 steps compared with torch.optim.Adam(lr=0.05)",
                   [p.detach() for p in params], [tw.detach() for tw in twins], "params",
                   "follow the six lines of Algorithm 1 in Kingma & Ba (2014)", atol=1e-7)
    passed(name, f"{len(settings) * n_steps} steps in {len(settings)} settings, and 5 steps "
                 "that follow torch.optim.Adam")
