"""Answer table of chapter 03 (backpropagation and gradient descent): right answers
written independently of the checks' references, and the typical mistakes and dodges each
check must refuse."""
from __future__ import annotations

import graphlib
import math

import torch

import coursekit.optim
from answers import Case
from coursekit.autograd import Value

# -- div: the quotient rule -----------------------------------------------------------------


def div_right(a, b):
    q = a.data / b.data
    out = Value(q, (a, b), "/")

    def _backward():                  # written with the output q = a / b
        a.grad += out.grad / b.data
        b.grad += -q / b.data * out.grad
    out._backward = _backward
    return out


def _div_with(rule):
    def div(a, b):
        out = Value(a.data / b.data, (a, b), "/")
        out._backward = lambda: rule(a, b, out)
        return out
    return div


def _div_overwrite(a, b, out):
    a.grad = out.grad / b.data
    b.grad = -a.data / b.data ** 2 * out.grad


def _div_sign(a, b, out):
    a.grad += out.grad / b.data
    b.grad += a.data / b.data ** 2 * out.grad


def _div_not_squared(a, b, out):
    a.grad += out.grad / b.data
    b.grad += -a.data / b.data * out.grad


def _div_no_chain(a, b, out):
    a.grad += 1 / b.data
    b.grad += -a.data / b.data ** 2


def _div_a_only(a, b, out):
    a.grad += out.grad / b.data


def div_composed(a, b):               # hands the backward to the engine
    return a * b ** -1


def div_operator(a, b):
    return a / b


def div_getattr(a, b):
    return getattr(a, "__true" + "div__")(b)


def div_float(a, b):
    return a.data / b.data


def div_no_inputs(a, b):
    return Value(a.data / b.data)


# -- softplus ---------------------------------------------------------------------------------


def softplus_right(x):
    out = Value(math.log1p(math.exp(-abs(x.data))) + max(x.data, 0.0), (x,), "softplus")

    def _backward():                  # sigmoid(x) = 1 - exp(-softplus(x))
        x.grad += -math.expm1(-out.data) * out.grad
    out._backward = _backward
    return out


def _softplus_with(slope, forward=None):
    def softplus(x):
        f = forward(x.data) if forward else math.log1p(math.exp(-abs(x.data))) + max(x.data, 0.0)
        out = Value(f, (x,), "softplus")

        def _backward():
            x.grad += slope(x.data, out.data) * out.grad
        out._backward = _backward
        return out
    return softplus


def _sig(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def softplus_composed(x):
    return (x.exp() + 1).log()


def softplus_getattr(x):
    return getattr(x, "ex" + "p")().__radd__(1).log()


def softplus_torch_forward(x):
    f = torch.nn.functional.softplus(torch.tensor(x.data, dtype=torch.float64)).item()
    out = Value(f, (x,), "softplus")

    def _backward():
        x.grad += _sig(x.data) * out.grad
    out._backward = _backward
    return out


def softplus_no_backward(x):
    return Value(math.log1p(math.exp(-abs(x.data))) + max(x.data, 0.0), (x,), "softplus")


# -- backward: the sweep ------------------------------------------------------------------------


def backward_kahn(root):
    """Kahn's algorithm: count each node's users, release a node when all have passed."""
    users, stack, seen = {}, [root], {id(root)}
    nodes = []
    while stack:
        node = stack.pop()
        nodes.append(node)
        for child in node.inputs:
            users[id(child)] = users.get(id(child), 0) + 1
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    for node in nodes:
        node.grad = 0.0
    root.grad = 1.0
    ready = [root]
    while ready:
        node = ready.pop()
        node._backward()
        for child in node.inputs:
            users[id(child)] -= 1
            if users[id(child)] == 0:
                ready.append(child)


def _all_nodes(root):
    out, stack, seen = [], [root], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(n.inputs)
    return out


def _order(root):                     # a correct, iterative topological order
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        n, done = stack.pop()
        if done:
            order.append(n)
        elif id(n) not in seen:
            seen.add(id(n))
            stack.append((n, True))
            stack.extend((c, False) for c in n.inputs)
    return order


def backward_no_visited(root):        # recursion without a visited set: nodes run twice
    for n in _all_nodes(root):
        n.grad = 0.0
    root.grad = 1.0

    def visit(n):
        n._backward()
        for c in n.inputs:
            visit(c)
    visit(root)


def backward_bfs(root):               # breadth-first from the output: not a topological order
    for n in _all_nodes(root):
        n.grad = 0.0
    root.grad = 1.0
    queue, seen = [root], {id(root)}
    while queue:
        n = queue.pop(0)
        n._backward()
        for c in n.inputs:
            if id(c) not in seen:
                seen.add(id(c))
                queue.append(c)


def backward_forward_order(root):     # forgot to reverse
    order = _order(root)
    for n in order:
        n.grad = 0.0
    root.grad = 1.0
    for n in order:
        n._backward()


def backward_no_seed(root):
    order = _order(root)
    for n in order:
        n.grad = 0.0
    for n in reversed(order):
        n._backward()


def backward_no_reset(root):          # adds to stale grads, as Value.backward does
    order = _order(root)
    root.grad = 1.0
    for n in reversed(order):
        n._backward()


def backward_recursive(root):         # micrograd's recursive sort: fails on deep graphs
    order, seen = [], set()

    def build(n):
        if id(n) not in seen:
            seen.add(id(n))
            for c in n.inputs:
                build(c)
            order.append(n)
    build(root)
    for n in order:
        n.grad = 0.0
    root.grad = 1.0
    for n in reversed(order):
        n._backward()


def backward_engine(root):
    for n in _all_nodes(root):
        n.grad = 0.0
    root.backward()


def backward_engine_order(root):
    order = root.topological_order()
    for n in order:
        n.grad = 0.0
    root.grad = 1.0
    for n in reversed(order):
        n._backward()


def backward_getattr(root):
    for n in _all_nodes(root):
        n.grad = 0.0
    getattr(Value, "back" + "ward")(root)


def backward_graphlib(root):
    graph = {}
    for n in _all_nodes(root):
        graph[n] = set(n.inputs)
        n.grad = 0.0
    root.grad = 1.0
    for n in reversed(list(graphlib.TopologicalSorter(graph).static_order())):
        n._backward()


# -- numerical_grad: the five-point stencil -----------------------------------------------------


def numgrad_right(f, x, h):           # new tensors x + k h e_i instead of in-place changes
    grad = torch.empty_like(x)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in x.shape]).reshape(-1, x.dim()):
        e = torch.zeros_like(x)
        e[tuple(idx.tolist())] = h
        f2, f1, fm1, fm2 = (float(f(x + k * e)) for k in (2, 1, -1, -2))
        grad[tuple(idx.tolist())] = (8 * (f1 - fm1) - (f2 - fm2)) / (12 * h)
    return grad


def _numgrad_with(weights, divisor=1.0):
    def numerical_grad(f, x, h):
        grad = torch.zeros_like(x)
        for i in range(x.numel()):
            e = torch.zeros(x.numel(), dtype=x.dtype)
            e[i] = h
            e = e.view(x.shape)
            total = sum(w * float(f(x + k * e)) for k, w in weights)
            grad.view(-1)[i] = total / (divisor * h)
        return grad
    return numerical_grad


numgrad_central = _numgrad_with([(1, 0.5), (-1, -0.5)])
numgrad_forward = _numgrad_with([(1, 1.0), (0, -1.0)])
numgrad_over_6h = _numgrad_with([(2, -1), (1, 8), (-1, -8), (-2, 1)], divisor=6.0)


def numgrad_fixed_h(f, x, h):         # ignores h
    return numgrad_right(f, x, 1e-3)


def numgrad_not_restored(f, x, h):
    grad = torch.zeros_like(x)
    flat = x.view(-1)
    for i in range(x.numel()):
        old = flat[i].item()
        vals = []
        for k in (2, 1, -1, -2):
            flat[i] = old + k * h     # never put back
            vals.append(float(f(x)))
        grad.view(-1)[i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return grad


def numgrad_flat(f, x, h):
    return numgrad_right(f, x, h).reshape(-1)


def numgrad_autograd(f, x, h):
    xr = x.detach().clone().requires_grad_(True)
    return torch.autograd.grad(f(xr), xr)[0]


def numgrad_backward(f, x, h):
    xr = x.detach().clone().requires_grad_(True)
    f(xr).backward()
    return xr.grad


def numgrad_func(f, x, h):
    return torch.func.grad(f)(x)


def numgrad_getattr(f, x, h):
    xr = x.detach().clone().requires_grad_(True)
    return getattr(torch.autograd, "gr" + "ad")(f(xr), xr)[0]


# -- mlp_grads: backprop in matrix form ----------------------------------------------------------


def mlp_grads_right(X, y, W1, b1, W2, b2):     # with einsum, row by row sums written out
    n = X.shape[0]
    h = torch.tanh(torch.einsum("nd,dh->nh", X, W1) + b1)
    err = (torch.einsum("nh,hk->nk", h, W2) + b2 - y) / n
    dW2 = torch.einsum("nh,nk->hk", h, err)
    back = torch.einsum("nk,hk->nh", err, W2) * (1 - h * h)
    return torch.einsum("nd,nh->dh", X, back), back.sum(0), dW2, err.sum(0)


def _mlp(X, y, W1, b1, W2, b2, *, mean=True, half=True, through_tanh=True, pre=False,
         bias_mean=False):
    n = X.shape[0]
    z = X @ W1 + b1
    h = torch.tanh(z)
    d2 = (h @ W2 + b2 - y) * (1 if half else 2) / (n if mean else 1)
    d1 = d2 @ W2.T
    if through_tanh:
        d1 = d1 * (1 - (z if pre else h) ** 2)
    reduce = (lambda t: t.mean(0)) if bias_mean else (lambda t: t.sum(0))
    return X.T @ d1, reduce(d1), h.T @ d2, reduce(d2)


def mlp_grads_sum(*a):
    return _mlp(*a, mean=False)


def mlp_grads_no_half(*a):
    return _mlp(*a, half=False)


def mlp_grads_no_tanh(*a):
    return _mlp(*a, through_tanh=False)


def mlp_grads_pre(*a):
    return _mlp(*a, pre=True)


def mlp_grads_bias_mean(*a):
    return _mlp(*a, bias_mean=True)


def mlp_grads_w2_not_transposed(X, y, W1, b1, W2, b2):
    n = X.shape[0]
    h = torch.tanh(X @ W1 + b1)
    d2 = (h @ W2 + b2 - y) / n
    d1 = (d2 @ W2) * (1 - h ** 2)           # only works when W2 is square
    return X.T @ d1, d1.sum(0), h.T @ d2, d2.sum(0)


def mlp_grads_list(*a):
    return list(_mlp(*a))[:3]


def mlp_grads_autograd(X, y, W1, b1, W2, b2):
    ps = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    loss = 0.5 * ((torch.tanh(X @ ps[0] + ps[1]) @ ps[2] + ps[3] - y) ** 2).sum(1).mean()
    return torch.autograd.grad(loss, ps)


def mlp_grads_backward(X, y, W1, b1, W2, b2):
    ps = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    loss = 0.5 * ((torch.tanh(X @ ps[0] + ps[1]) @ ps[2] + ps[3] - y) ** 2).sum(1).mean()
    loss.backward()
    return tuple(p.grad for p in ps)


def mlp_grads_wrapped(X, y, W1, b1, W2, b2):  # reaches past the tripwire to the original
    ps = [p.clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    loss = 0.5 * ((torch.tanh(X @ ps[0] + ps[1]) @ ps[2] + ps[3] - y) ** 2).sum(1).mean()
    grad = getattr(torch.autograd.grad, "__wrapped__", torch.autograd.grad)
    return grad(loss, ps)


# -- nesterov_step ------------------------------------------------------------------------------


def nesterov_right(params, velocities, lr, momentum):
    with torch.no_grad():
        for i, p in enumerate(params):
            velocities[i] = momentum * velocities[i] + p.grad
            p.sub_(lr * p.grad + lr * momentum * velocities[i])


def nesterov_heavy_ball(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(momentum).add_(p.grad)
            p -= lr * v


def nesterov_old_velocity(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            p -= lr * (p.grad + momentum * v)
            v.mul_(momentum).add_(p.grad)


def nesterov_plain(params, velocities, lr, momentum):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def nesterov_rebinds(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v = momentum * v + p.grad
            p -= lr * (p.grad + momentum * v)


def nesterov_dampened(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(momentum).add_((1 - momentum) * p.grad)
            p -= lr * (p.grad + momentum * v)


def nesterov_no_grad_mode(params, velocities, lr, momentum):
    for p, v in zip(params, velocities):
        v.mul_(momentum).add_(p.grad)
        p -= lr * (p.grad + momentum * v)      # RuntimeError: a leaf that requires grad


def nesterov_fixed_mu(params, velocities, lr, momentum):
    nesterov_right(params, velocities, lr, 0.9)


def nesterov_torch(params, velocities, lr, momentum):
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
    for p, v in zip(params, velocities):
        opt.state[p]["momentum_buffer"] = v
    opt.step()


def nesterov_torch_getattr(params, velocities, lr, momentum):
    opt = getattr(torch.optim, "S" + "GD")(params, lr=lr, momentum=momentum, nesterov=True)
    opt.step()


def nesterov_coursekit(params, velocities, lr, momentum):
    opt = coursekit.optim.SGD(params, lr=lr, momentum=momentum)
    opt.velocity = list(velocities)
    opt.step()


# -- adamw_step -----------------------------------------------------------------------------------


def adamw_right(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    with torch.no_grad():
        for i, p in enumerate(params):
            p.mul_(1 - lr * weight_decay)                    # decoupled decay, first
            m[i] = torch.lerp(p.grad, m[i], beta1)           # beta1 m + (1 - beta1) g
            v[i] = torch.lerp(p.grad ** 2, v[i], beta2)
            size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            p.sub_(size * m[i] / (v[i].sqrt() + eps * math.sqrt(1 - beta2 ** t)))


def _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, *, mode="decoupled",
           correct=True, eps_inside=False):
    with torch.no_grad():
        for i, p in enumerate(params):
            g = p.grad + weight_decay * p if mode == "l2" else p.grad
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat = m[i] / (1 - beta1 ** t) if correct else m[i]
            v_hat = v[i] / (1 - beta2 ** t) if correct else v[i]
            step = m_hat / ((v_hat + eps).sqrt() if eps_inside else v_hat.sqrt() + eps)
            if mode == "decoupled":
                p.mul_(1 - lr * weight_decay)
            elif mode == "no_lr":
                p.mul_(1 - weight_decay)
            p -= lr * step
            if mode == "after":
                p.mul_(1 - lr * weight_decay)


def adamw_l2(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, mode="l2")


def adamw_no_lr(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, mode="no_lr")


def adamw_after(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, mode="after")


def adamw_no_decay(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, mode="none")


def adamw_no_bias_correction(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                             weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, correct=False)


def adamw_eps_inside(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, eps, weight_decay, eps_inside=True)


def adamw_t_minus_one(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t - 1, lr, beta1, beta2, eps, weight_decay)


def adamw_fixed_eps(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    _adamw(params, m, v, t, lr, beta1, beta2, 1e-8, weight_decay)


def adamw_rebinds(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    with torch.no_grad():
        for p, m_i, v_i in zip(params, m, v):
            m_i = beta1 * m_i + (1 - beta1) * p.grad
            v_i = beta2 * v_i + (1 - beta2) * p.grad ** 2
            p.mul_(1 - lr * weight_decay)
            p -= lr * (m_i / (1 - beta1 ** t)) / ((v_i / (1 - beta2 ** t)).sqrt() + eps)


def adamw_torch(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    opt = torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    opt.step()


def adamw_fused_op(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    with torch.no_grad():
        steps = [torch.tensor(float(t - 1)) for _ in params]
        grads = [p.grad for p in params]
        ps = [p for p in params]
        vmax = [torch.zeros_like(p) for p in params]
        getattr(torch, "_fused_" + "adamw_")(ps, grads, m, v, vmax, steps, lr=lr, beta1=beta1,
                                             beta2=beta2, weight_decay=weight_decay, eps=eps,
                                             amsgrad=False, maximize=False)


def adamw_coursekit(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    with torch.no_grad():
        for p in params:
            p.mul_(1 - lr * weight_decay)
    opt = coursekit.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)
    opt.t, opt.m, opt.v = t - 1, m, v
    opt.step()


C = Case
RIGHT = [
    C("check_div", div_right, why="written with the quotient"),
    C("check_div", div_right, why="seed 9", kwargs={"seed": 9}),
    C("check_softplus", softplus_right, why="slope from the output"),
    C("check_softplus", softplus_right, why="seed 4", kwargs={"seed": 4}),
    C("check_backward", backward_kahn, why="Kahn's algorithm"),
    C("check_backward", backward_kahn, why="Kahn's algorithm, seed 7", kwargs={"seed": 7}),
    C("check_numerical_grad", numgrad_right, why="new tensors"),
    C("check_numerical_grad", numgrad_right, why="new tensors, seed 5", kwargs={"seed": 5}),
    C("check_mlp_grads", mlp_grads_right, why="einsum"),
    C("check_mlp_grads", mlp_grads_right, why="einsum, seed 3", kwargs={"seed": 3}),
    C("check_nesterov_step", nesterov_right, why="assigns into the list"),
    C("check_nesterov_step", nesterov_right, why="seed 11", kwargs={"seed": 11}),
    C("check_adamw_step", adamw_right, why="lerp and the paper's efficient form"),
    C("check_adamw_step", adamw_right, why="seed 6", kwargs={"seed": 6}),
]

WRONG = [
    C("check_div", div_float, "should return a Value", "returns a float"),
    C("check_div", div_no_inputs, "out.inputs", "no inputs"),
    C("check_div", _div_with(_div_overwrite), "+=", "overwrites grad"),
    C("check_div", _div_with(_div_sign), "negative", "sign of b's gradient"),
    C("check_div", _div_with(_div_not_squared), "b is squared", "b not squared"),
    C("check_div", _div_with(_div_no_chain), "chain rule", "forgets out.grad"),
    C("check_div", _div_with(_div_a_only), "b receives a gradient", "b forgotten"),
    C("check_div", lambda a, b: Value(a.data / b.data, (a, b), "/"), "no gradient arrived",
      "no _backward"),
    C("check_div", div_composed, "hands the backward to coursekit", "built from * and **"),
    C("check_div", div_operator, "coursekit.autograd.Value.__truediv__", "Value's /"),
    C("check_div", div_getattr, "coursekit.autograd.Value.__truediv__", "/ by getattr"),

    C("check_softplus", lambda x: math.log1p(math.exp(x.data)), "should return a Value",
      "returns a float"),
    C("check_softplus", _softplus_with(lambda x, f: f), "not softplus itself", "slope = output"),
    C("check_softplus", _softplus_with(lambda x, f: _sig(x) * (1 - _sig(x))), "slope of the sigmoid",
      "sigmoid's slope"),
    C("check_softplus", _softplus_with(lambda x, f: _sig(-x)), "sign is flipped", "sigmoid(-x)"),
    C("check_softplus", _softplus_with(lambda x, f: _sig(x), forward=lambda x: math.log(1 + math.exp(x))),
      "overflows", "naive forward"),
    C("check_softplus", _softplus_with(lambda x, f: 1 / (1 + math.exp(-x))), "overflows",
      "naive sigmoid"),
    C("check_softplus", softplus_no_backward, "no gradient arrived", "no _backward"),
    C("check_softplus", softplus_composed, "coursekit.autograd.Value.exp", "built from exp and log"),
    C("check_softplus", softplus_getattr, "coursekit.autograd.Value.exp", "exp by getattr"),
    C("check_softplus", softplus_torch_forward, "torch.nn.functional.softplus", "torch forward"),

    C("check_backward", backward_no_visited, "visited", "no visited set"),
    C("check_backward", backward_bfs, "order", "breadth-first"),
    C("check_backward", backward_forward_order, "reverse", "not reversed"),
    C("check_backward", backward_no_seed, "seed the sweep", "no seed"),
    C("check_backward", backward_no_reset, "set each node's grad to 0", "stale grads"),
    C("check_backward", backward_recursive, "RecursionError", "recursive sort"),
    C("check_backward", backward_engine, "coursekit.autograd.Value.backward", "engine's backward"),
    C("check_backward", backward_engine_order, "coursekit.autograd.Value.topological_order",
      "engine's order"),
    C("check_backward", backward_getattr, "coursekit.autograd.Value.backward", "backward by getattr"),
    C("check_backward", backward_graphlib, "graphlib.TopologicalSorter", "graphlib"),
    C("check_backward", 2.0, "should be a function", "a number"),

    C("check_numerical_grad", numgrad_central, "three-point central difference", "3-point"),
    C("check_numerical_grad", numgrad_forward, "one-sided", "one-sided"),
    C("check_numerical_grad", numgrad_over_6h, "divide by 12 h", "divides by 6h"),
    C("check_numerical_grad", numgrad_fixed_h, "use the argument h", "h ignored"),
    C("check_numerical_grad", numgrad_not_restored, "unchanged", "x not restored"),
    C("check_numerical_grad", numgrad_flat, "wrong shape", "flat result"),
    C("check_numerical_grad", lambda f, x, h: numgrad_right(f, x, h).tolist(), "torch.Tensor",
      "returns a list"),
    C("check_numerical_grad", numgrad_autograd, "torch.autograd.grad", "autograd.grad"),
    C("check_numerical_grad", numgrad_backward, "torch.Tensor.backward", ".backward()"),
    C("check_numerical_grad", numgrad_func, "torch.func.grad", "torch.func.grad"),
    C("check_numerical_grad", numgrad_getattr, "torch.autograd.grad", "autograd.grad by getattr"),

    C("check_mlp_grads", mlp_grads_sum, "1/N", "sum, not mean"),
    C("check_mlp_grads", mlp_grads_no_half, "factor 1/2", "no 1/2"),
    C("check_mlp_grads", mlp_grads_no_tanh, "through tanh", "tanh slope forgotten"),
    C("check_mlp_grads", mlp_grads_pre, "not with the pre-activation", "slope from z"),
    C("check_mlp_grads", mlp_grads_bias_mean, "SUM of delta", "bias grads averaged"),
    C("check_mlp_grads", mlp_grads_w2_not_transposed, "W2 transposed", "W2 not transposed"),
    C("check_mlp_grads", mlp_grads_list, "a tuple (dW1, db1, dW2, db2)", "three gradients"),
    C("check_mlp_grads", mlp_grads_autograd, "torch.autograd.grad", "autograd.grad"),
    C("check_mlp_grads", mlp_grads_backward, "torch.Tensor.backward", ".backward()"),
    C("check_mlp_grads", mlp_grads_wrapped, "torch.autograd", "the original behind the tripwire"),

    C("check_nesterov_step", nesterov_heavy_ball, "heavy-ball", "heavy ball"),
    C("check_nesterov_step", nesterov_old_velocity, "NEW v", "old velocity"),
    C("check_nesterov_step", nesterov_plain, "velocity is ignored", "no momentum"),
    C("check_nesterov_step", nesterov_rebinds, "rebinds a local name", "rebinds v"),
    C("check_nesterov_step", nesterov_dampened, "(1 - mu)", "dampened"),
    C("check_nesterov_step", nesterov_no_grad_mode, "torch.no_grad()", "outside no_grad"),
    C("check_nesterov_step", nesterov_fixed_mu, "momentum = 0.5", "momentum ignored"),
    C("check_nesterov_step", nesterov_torch, "torch.optim.SGD", "torch.optim.SGD"),
    C("check_nesterov_step", nesterov_torch_getattr, "torch.optim.SGD", "SGD by getattr"),
    C("check_nesterov_step", nesterov_coursekit, "coursekit.optim.SGD", "coursekit SGD"),

    C("check_adamw_step", adamw_l2, "L2", "coupled L2"),
    C("check_adamw_step", adamw_no_lr, "scaled by the learning rate", "decay without lr"),
    C("check_adamw_step", adamw_after, "before this step", "decay after the step"),
    C("check_adamw_step", adamw_no_decay, "no effect", "no decay"),
    C("check_adamw_step", adamw_no_bias_correction, "correct the bias", "no bias correction"),
    C("check_adamw_step", adamw_eps_inside, "outside the square root", "eps inside"),
    C("check_adamw_step", adamw_t_minus_one, "t starts at 1", "t - 1"),
    C("check_adamw_step", adamw_fixed_eps, "eps = 0.001", "eps ignored"),
    C("check_adamw_step", adamw_rebinds, "rebinds a local name", "rebinds m"),
    C("check_adamw_step", adamw_torch, "torch.optim.AdamW", "torch.optim.AdamW"),
    C("check_adamw_step", adamw_fused_op, "aten._fused_adamw_", "fused op by getattr"),
    C("check_adamw_step", adamw_coursekit, "coursekit.optim.Adam", "coursekit Adam"),
]
