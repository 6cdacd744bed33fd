"""Answer table of chapter 02 (neurons and layers): right answers written independently of
the checks' references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from answers import Case
from coursekit.models import mlp
from coursekit.models.mlp import MLP, Dense, Neuron

# -- neuron_forward ----------------------------------------------------------------------------


def neuron_einsum(x, w, b):                          # independent: einsum and exp
    return 1 / (1 + torch.exp(-(torch.einsum("nd,d->n", x, w) + b)))


def neuron_mv(x, w, b):
    return torch.sigmoid(torch.mv(x, w) + b)


def neuron_package(x, w, b):
    with torch.no_grad():
        return Neuron(w, b, "sigmoid")(x)


def neuron_linear(x, w, b):
    return torch.sigmoid(F.linear(x, w[None], torch.tensor([float(b)]))).squeeze(1)


def neuron_c_linear(x, w, b):
    return torch.sigmoid(torch._C._nn.linear(x, w[None])).squeeze(1) + 0 * b


# -- relu, sigmoid, sigmoid_grad ---------------------------------------------------------------


def relu_mask(z):                                    # independent: multiply by a comparison
    return z * (z > 0)


def relu_where(z):
    return torch.where(z > 0, z, torch.zeros_like(z))


def relu_maximum(z):
    return torch.maximum(z, torch.zeros((), dtype=z.dtype))


def _in_place_relu(z):
    z[z < 0] = 0
    return z


def relu_getattr(z):
    return getattr(torch, "re" + "lu")(z)


def relu_aten(z):
    return torch.ops.aten.relu(z)


_clamp = torch.clamp


def relu_clamp_alias(z):
    return _clamp(z, min=0)


def relu_clamp_method(z):
    return z.clamp(min=0)


def sigmoid_stable(z):                               # independent: split by sign
    e = torch.exp(-z.abs())
    return torch.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_exp(z):
    return 1 / (1 + torch.exp(-z))


def sigmoid_getattr(z):
    return getattr(torch, "sig" + "moid")(z)


def sigmoid_expit(z):
    return torch.special.expit(z)


def sigmoid_logsigmoid(z):
    return torch.exp(F.logsigmoid(z))


def sigmoid_grad_stable(z):                          # independent: e^-|z| / (1 + e^-|z|)^2
    e = torch.exp(-z.abs())
    return e / (1 + e) ** 2


def sigmoid_grad_formula(z):
    s = torch.sigmoid(z)
    return s * (1 - s)


def sigmoid_grad_autograd(z):
    z = z.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.sigmoid(z).sum(), z)
    return g


def sigmoid_grad_backward(z):
    z = z.detach().clone().requires_grad_(True)
    (1 / (1 + torch.exp(-z))).sum().backward()
    return z.grad


def sigmoid_grad_func(z):
    return torch.vmap(torch.func.grad(lambda t: 1 / (1 + torch.exp(-t))))(z.reshape(-1)).reshape(z.shape)


def sigmoid_grad_aten(z):
    s = 1 / (1 + torch.exp(-z))
    return torch.ops.aten.sigmoid_backward(torch.ones_like(z), s)


# -- dense_layer (torch.nn.Linear's layout) ----------------------------------------------------


def dense_einsum(x, weight, bias):                   # independent: einsum over the last axis
    out = torch.einsum("...i,oi->...o", x, weight)
    return out if bias is None else out + bias


def dense_matmul(x, weight, bias):
    out = x @ weight.T
    if bias is not None:
        out = out + bias
    return out


def dense_untransposed(x, weight, bias):
    out = x @ weight
    return out if bias is None else out + bias


def dense_no_bias(x, weight, bias):
    return x @ weight.T


def dense_bias_required(x, weight, bias):
    return x @ weight.T + bias


def dense_flattened(x, weight, bias):
    out = x.reshape(-1, x.shape[-1]) @ weight.T
    return out if bias is None else out + bias


def dense_F_linear(x, weight, bias):
    return F.linear(x, weight, bias)


def dense_nn_linear(x, weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
        return layer(x)


def dense_package(x, weight, bias):
    layer = Dense(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight.T)
        layer.bias.copy_(torch.zeros(weight.shape[0]) if bias is None else bias)
        return layer(x)


# -- collapse_linear ---------------------------------------------------------------------------


def collapse_probe(layers, residual):                # independent: evaluate at 0 and e_i
    d_in = layers[0][0].shape[0]
    points = torch.cat([torch.eye(d_in), torch.zeros(1, d_in)])        # (d_in + 1, d_in)
    out = points
    for W, b in layers:
        out = (out if residual else 0) + out @ W + b
    b = out[-1]                                                        # f(0) = b
    return out[:-1] - b, b                                             # f(e_i) - f(0) = row i of W


def collapse_loop(layers, residual):
    W, b = layers[0]
    if residual:
        W = W + torch.eye(W.shape[0])
    for W_next, b_next in layers[1:]:
        M = W_next + torch.eye(W_next.shape[0]) if residual else W_next
        W, b = W @ M, b @ M + b_next
    return W, b


def _plain(layers):
    W, b = layers[0]
    for W_next, b_next in layers[1:]:
        W, b = W @ W_next, b @ W_next + b_next
    return W, b


def collapse_ignores_residual(layers, residual):
    return _plain(layers)


def collapse_identity_once(layers, residual):
    W, b = _plain(layers)
    return (W + torch.eye(W.shape[0]) if residual else W), b


def collapse_residual_bias_once(layers, residual):  # bias not carried along the skip path
    W, b = layers[0]
    W = W + torch.eye(W.shape[0]) if residual else W
    for W_next, b_next in layers[1:]:
        M = W_next + torch.eye(W_next.shape[0]) if residual else W_next
        W, b = W @ M, b @ W_next + b_next
    return W, b


def collapse_in_place(layers, residual):
    if residual:
        for W, _ in layers:
            W += torch.eye(W.shape[0])
    return _plain(layers)


def _collapse_reversed(layers, residual):
    W, b = layers[-1]
    for W_prev, b_prev in reversed(layers[:-1]):
        W = W @ W_prev
        b = b + b_prev
    return W, b


def _collapse_without_biases(layers, residual):
    W = collapse_loop(layers, residual)[0]
    return W, torch.zeros(W.shape[1])


def _collapse_summed_biases(layers, residual):
    return collapse_loop(layers, residual)[0], sum(b for _, b in layers)


def _collapse_last_bias(layers, residual):
    return collapse_loop(layers, residual)[0], layers[-1][1]


def collapse_lstsq(layers, residual):
    x = torch.randn(64, layers[0][0].shape[0])
    y = x
    for W, b in layers:
        y = (y if residual else 0) + y @ W + b
    design = torch.cat([x, torch.ones(64, 1)], 1)
    coef = torch.linalg.lstsq(design, y).solution
    return coef[:-1], coef[-1]


# -- count_parameters --------------------------------------------------------------------------


def count_loop(sizes):                               # independent: count layer by layer
    total = 0
    for i in range(1, len(sizes)):
        total += sizes[i - 1] * sizes[i]             # weights
        total += sizes[i]                            # biases
    return total


def count_package(sizes):
    return MLP(list(sizes)).n_params()


def count_nn(sizes):
    net = nn.Sequential(*[nn.Linear(a, c) for a, c in zip(sizes[:-1], sizes[1:])])
    return sum(p.numel() for p in net.parameters())


def count_alias(sizes, _mlp=mlp.MLP):
    return sum(p.numel() for p in _mlp(list(sizes)).parameters())


RIGHT = [
    Case("check_neuron_forward", neuron_einsum),
    Case("check_neuron_forward", neuron_mv, why="mv", kwargs={"seed": 4}),
    Case("check_relu", relu_mask),
    Case("check_relu", relu_where, why="where", kwargs={"seed": 5}),
    Case("check_relu", relu_maximum, why="maximum"),
    Case("check_sigmoid", sigmoid_stable),
    Case("check_sigmoid", sigmoid_exp, why="exp", kwargs={"seed": 6}),
    Case("check_sigmoid_grad", sigmoid_grad_stable),
    Case("check_sigmoid_grad", sigmoid_grad_formula, why="formula", kwargs={"seed": 7}),
    Case("check_dense_layer", dense_einsum),
    Case("check_dense_layer", dense_matmul, why="matmul", kwargs={"seed": 8}),
    Case("check_collapse_linear", collapse_probe),
    Case("check_collapse_linear", collapse_loop, why="loop", kwargs={"seed": 9}),
    Case("check_count_parameters", count_loop),
    Case("check_count_parameters", lambda s: torch.tensor(count_loop(s)), why="tensor",
         kwargs={"seed": 10}),
]

WRONG = [
    Case("check_neuron_forward", lambda x, w, b: x @ w + b, "through the sigmoid", "no sigmoid"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w), "bias is missing", "no bias"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w) + b, "before the activation",
         "bias after"),
    Case("check_neuron_forward", lambda x, w, b: torch.relu(x @ w + b), "not ReLU", "relu"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid(x.sum(1) + b), "weights are missing",
         "no weights"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid((x * w).sum() + b), "wrong shape",
         "summed over all"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid(w @ x + b), "raised RuntimeError",
         "w @ x"),
    Case("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w + b).tolist(), "torch.Tensor",
         "a list"),
    Case("check_neuron_forward", neuron_package, "coursekit.models.mlp.Neuron", "package"),
    Case("check_neuron_forward", neuron_linear, "torch.nn.functional.linear", "F.linear"),
    Case("check_neuron_forward", neuron_c_linear, "torch._C._nn.linear", "C linear"),
    Case("check_relu", torch.abs, "not change sign", "abs"),
    Case("check_relu", lambda z: torch.where(z < 0, z, 0.0), "not min(0, z)", "min"),
    Case("check_relu", lambda z: (z > 0).float(), "not 1", "step"),
    Case("check_relu", lambda z: z > 0, "floating-point", "bool"),
    Case("check_relu", _in_place_relu, "in place", "in place"),
    Case("check_relu", lambda z: max(z, 0), "raised RuntimeError", "builtin max"),
    Case("check_relu", lambda z: relu_mask(z).mean(), "wrong shape", "mean"),
    Case("check_relu", torch.relu, "torch.relu", "torch.relu itself"),
    Case("check_relu", lambda z: F.relu(z), "uses F.relu", "F.relu"),
    Case("check_relu", relu_getattr, "reached torch.relu", "getattr relu"),
    Case("check_relu", relu_aten, "aten.relu", "aten relu"),
    Case("check_relu", relu_clamp_alias, "torch.clamp", "clamp alias"),
    Case("check_relu", relu_clamp_method, "torch.Tensor.clamp", "clamp method"),
    Case("check_sigmoid", lambda z: torch.exp(z) / (1 + torch.exp(z)), "NaN", "overflow"),
    Case("check_sigmoid", lambda z: 1 / (1 + torch.exp(z)), "sign of the exponent", "sign"),
    Case("check_sigmoid", torch.tanh, "that is tanh", "tanh"),
    Case("check_sigmoid", lambda z: 1 / (1 + torch.exp(-2 * z)), "sigmoid(2z)", "2z"),
    Case("check_sigmoid", lambda z: 1 / (1 + torch.exp(-z)) + 0.1, "sigmoid(0) = 0.5", "shifted"),
    Case("check_sigmoid", torch.sigmoid, "torch.sigmoid", "torch.sigmoid itself"),
    Case("check_sigmoid", sigmoid_getattr, "reached torch.sigmoid", "getattr sigmoid"),
    Case("check_sigmoid", sigmoid_expit, "torch.special.expit", "expit"),
    Case("check_sigmoid", sigmoid_logsigmoid, "uses F.logsigmoid", "logsigmoid"),
    Case("check_sigmoid", lambda z: torch.ops.aten.sigmoid(z), "aten.sigmoid", "aten sigmoid"),
    Case("check_sigmoid_grad", lambda z: torch.sigmoid(z) * (1 + torch.sigmoid(z)), "one minus",
         "plus"),
    Case("check_sigmoid_grad", lambda z: torch.sigmoid(z) * (1 - z), "both factors", "z"),
    Case("check_sigmoid_grad", torch.sigmoid, "not its slope", "sigmoid"),
    Case("check_sigmoid_grad", lambda z: 1 - torch.sigmoid(z) ** 2, "slope of tanh", "tanh rule"),
    Case("check_sigmoid_grad", lambda z: torch.exp(-z) / (1 + torch.exp(-z)) ** 2, "NaN", "overflow"),
    Case("check_sigmoid_grad", lambda z: torch.full_like(z, 0.25), "peaks at 0.25", "constant"),
    Case("check_sigmoid_grad", sigmoid_grad_autograd, "torch.autograd.grad", "autograd.grad"),
    Case("check_sigmoid_grad", sigmoid_grad_backward, "torch.Tensor.backward", "backward"),
    Case("check_sigmoid_grad", sigmoid_grad_func, "torch.func.grad", "func.grad"),
    Case("check_sigmoid_grad", sigmoid_grad_aten, "aten.sigmoid_backward", "aten backward"),
    Case("check_dense_layer", dense_no_bias, "bias is missing", "no bias"),
    Case("check_dense_layer", dense_untransposed, "raised RuntimeError", "not transposed"),
    Case("check_dense_layer",
         lambda x, w, b: dense_untransposed(x, w, b) if w.shape[0] == w.shape[1]
         else dense_matmul(x, w, b), "multiply x by its transpose", "square untransposed"),
    Case("check_dense_layer", dense_bias_required, "raised TypeError", "bias None"),
    Case("check_dense_layer", dense_flattened, "flattened the leading axes", "flattened"),
    Case("check_dense_layer", lambda x, w, b: dense_matmul(x, w, b).T, "wrong shape", "transposed"),
    Case("check_dense_layer", dense_F_linear, "torch.nn.functional.linear", "F.linear"),
    Case("check_dense_layer", dense_nn_linear, "torch.nn.Linear", "nn.Linear"),
    Case("check_dense_layer", dense_package, "coursekit.models.mlp.Dense", "package"),
    Case("check_collapse_linear", _collapse_without_biases, "biases are missing", "no biases"),
    Case("check_collapse_linear", _collapse_summed_biases, "cannot simply be added", "summed biases"),
    Case("check_collapse_linear", _collapse_last_bias, "only the last bias", "last bias"),
    Case("check_collapse_linear", _collapse_reversed, "in the order", "reversed"),
    Case("check_collapse_linear", lambda layers, r: layers[0][0], "two things", "W only"),
    Case("check_collapse_linear", lambda layers, r: (layers[0][0], layers[0][1]), "the matrix W",
         "first layer"),
    Case("check_collapse_linear", collapse_ignores_residual, "residual is ignored",
         "residual ignored"),
    Case("check_collapse_linear", collapse_identity_once, "not once at the end", "identity once"),
    Case("check_collapse_linear", collapse_residual_bias_once, "skip connection",
         "residual bias once"),
    Case("check_collapse_linear", collapse_in_place, "changed the layers", "in place"),
    Case("check_collapse_linear", collapse_lstsq, "torch.linalg.lstsq", "lstsq"),
    Case("check_count_parameters", lambda s: sum(a * c for a, c in zip(s[:-1], s[1:])),
         "biases are missing", "no biases"),
    Case("check_count_parameters", lambda s: sum(a * c for a, c in zip(s[:-1], s[1:])) + sum(s),
         "input features have no bias", "all biases"),
    Case("check_count_parameters", lambda s: sum(a * c + a for a, c in zip(s[:-1], s[1:])),
         "not d_in", "d_in biases"),
    Case("check_count_parameters", lambda s: sum(s), "d_in * d_out weights", "sum of sizes"),
    Case("check_count_parameters", lambda s: str(count_loop(s)), "Python int", "a string"),
    Case("check_count_parameters", count_package, "coursekit.models.mlp.MLP", "package"),
    Case("check_count_parameters", count_nn, "uses nn.Linear", "nn.Linear"),
    Case("check_count_parameters", count_alias, "MLP", "alias"),
]
