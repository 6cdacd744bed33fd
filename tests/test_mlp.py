"""coursekit.models.mlp against independent oracles: torch.nn layers, formulas, algebra."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from coursekit.models.mlp import ACTIVATIONS, MLP, Dense, Neuron, get_activation

ATOL = 1e-6

# the activations written from their textbook formulas
FORMULAS = {
    "relu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "tanh": lambda z: (torch.exp(z) - torch.exp(-z)) / (torch.exp(z) + torch.exp(-z)),
    "sigmoid": lambda z: 1 / (1 + torch.exp(-z)),
    "gelu": lambda z: z * 0.5 * (1 + torch.erf(z / math.sqrt(2))),
    "identity": lambda z: z,
}
TORCH_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
                 "identity": nn.Identity}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_matches_formula(name):
    z = torch.linspace(-6, 6, 121, dtype=torch.float64)
    assert torch.allclose(ACTIVATIONS[name](z), FORMULAS[name](z), atol=1e-12)
    assert ACTIVATIONS[name](torch.zeros(3, 4)).shape == (3, 4)


def test_activation_names_are_the_documented_ones():
    assert set(ACTIVATIONS) == {"relu", "tanh", "sigmoid", "gelu", "identity"}


@pytest.mark.parametrize("bad", ["swish", "ReLU", "", None, 3])
def test_unknown_activation_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="unknown activation.*relu"):
        get_activation(bad)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([2, 3, 1], activation=bad)
    with pytest.raises(ValueError, match="unknown activation"):
        Neuron([1.0, 2.0], 0.0, activation=bad)


@pytest.mark.parametrize("sizes", [[2], [], [2, 0, 1], [2, 3.0, 1], [2, -1], [True, 2]])
def test_bad_sizes_are_rejected(sizes):
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes)


def _torch_oracle(net: MLP) -> nn.Sequential:
    """The same network built from torch.nn.Linear (which stores the transposed weight)."""
    modules = []
    for i, layer in enumerate(net.layers):
        lin = nn.Linear(layer.d_in, layer.d_out)
        with torch.no_grad():
            lin.weight.copy_(layer.weight.T)
            lin.bias.copy_(layer.bias)
        modules.append(lin)
        if i < len(net.layers) - 1:
            modules.append(TORCH_MODULES[net.activation]())
    return nn.Sequential(*modules)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("sizes", [[2, 1], [2, 16, 1], [3, 8, 8, 4], [5, 7, 6, 5, 2]])
def test_mlp_matches_torch_nn(sizes, activation):
    torch.manual_seed(0)
    net = MLP(sizes, activation)
    x = torch.randn(11, sizes[0])
    out = net(x)
    assert out.shape == (11, sizes[-1])
    assert torch.allclose(out, _torch_oracle(net)(x), atol=ATOL)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_no_activation_after_the_last_layer(activation):
    torch.manual_seed(0)
    net = MLP([4, 8, 3], activation)
    x = torch.randn(200, 4) * 5
    out = net(x)
    # an activation after the last layer would keep relu outputs >= 0, sigmoid in (0, 1)
    assert (out < 0).any()
    expected = net.layers[1](ACTIVATIONS[activation](net.layers[0](x)))
    assert torch.equal(out, expected)


def test_leading_dimensions_are_kept_and_wrong_widths_rejected():
    net = MLP([3, 5, 2])
    assert net(torch.randn(4, 6, 3)).shape == (4, 6, 2)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        net(torch.randn(4, 2))


def test_dense_is_x_at_w_plus_b_with_the_documented_init():
    torch.manual_seed(3)
    layer = Dense(9, 4)
    assert layer.weight.shape == (9, 4) and layer.bias.shape == (4,)
    bound = 1 / math.sqrt(9)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert layer.weight.std() > bound / 4       # really spread over the range
    x = torch.randn(6, 9)
    expected = torch.stack([x[n] @ layer.weight[:, j] + layer.bias[j]
                            for n in range(6) for j in range(4)]).reshape(6, 4)
    assert torch.allclose(layer(x), expected, atol=ATOL)
    with pytest.raises(ValueError, match="9 input features"):
        layer(torch.randn(6, 8))


def test_init_is_reproducible_and_drawn_weight_then_bias():
    torch.manual_seed(7)
    a = MLP([2, 3, 1])
    torch.manual_seed(7)
    w0 = (torch.rand(2, 3) * 2 - 1) * (1 / math.sqrt(2))
    b0 = (torch.rand(3) * 2 - 1) * (1 / math.sqrt(2))
    w1 = (torch.rand(3, 1) * 2 - 1) * (1 / math.sqrt(3))
    b1 = (torch.rand(1) * 2 - 1) * (1 / math.sqrt(3))
    for got, want in zip(a.parameters(), [w0, b0, w1, b1]):
        assert torch.equal(got.detach(), want)


@pytest.mark.parametrize("sizes", [[2, 1], [2, 16, 16, 1], [784, 128, 10]])
def test_n_params_formula(sizes):
    expected = sum(a * c + c for a, c in zip(sizes[:-1], sizes[1:]))
    assert MLP(sizes).n_params() == expected


def test_identity_mlp_collapses_to_one_linear_map():
    torch.manual_seed(1)
    net = MLP([3, 32, 32, 32, 2], activation="identity").double()
    W, b = net.layers[0].weight, net.layers[0].bias
    for layer in net.layers[1:]:
        W, b = W @ layer.weight, b @ layer.weight + layer.bias
    x = torch.randn(500, 3, dtype=torch.float64)
    assert torch.allclose(net(x), x @ W + b, atol=1e-10)
    relu = MLP([3, 32, 32, 32, 2], activation="relu").double()
    design = torch.cat([x, torch.ones(500, 1, dtype=torch.float64)], 1)
    y = relu(x).detach()
    fit = design @ torch.linalg.lstsq(design, y).solution
    assert (fit - y).pow(2).mean() > 1e-3 * y.var()   # no linear map reproduces a ReLU net


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_neuron_by_hand(activation):
    unit = Neuron([0.5, -1.0, 2.0], bias=0.1, activation=activation)
    x = torch.tensor([1.0, 2.0, 3.0])
    z = 0.5 * 1 - 1.0 * 2 + 2.0 * 3 + 0.1
    assert unit.pre_activation(x).item() == pytest.approx(z, abs=1e-6)
    assert unit(x).item() == pytest.approx(FORMULAS[activation](torch.tensor(z)).item(), abs=1e-6)
    batch = torch.randn(8, 3)
    assert unit(batch).shape == (8,)
    manual = FORMULAS[activation](batch @ torch.tensor([0.5, -1.0, 2.0]) + 0.1)
    assert torch.allclose(unit(batch), manual, atol=ATOL)


def test_neuron_validation_random_and_gradients():
    with pytest.raises(ValueError, match="1-D"):
        Neuron([[1.0, 2.0]], 0.0)
    unit = Neuron([1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="2 weights"):
        unit(torch.randn(4, 3))
    torch.manual_seed(0)
    r = Neuron.random(4, "tanh")
    torch.manual_seed(0)
    col = Dense(4, 1)
    assert torch.equal(r.weights.detach(), col.weight.detach()[:, 0])
    assert r.bias.shape == () and r.activation == "tanh"
    unit(torch.randn(5, 2)).sum().backward()
    assert unit.weights.grad is not None and unit.bias.grad is not None


def test_a_relu_mlp_learns_the_moons():
    from coursekit.data import make_moons

    x, y = make_moons(300, noise=0.1, seed=0)
    torch.manual_seed(0)
    net = MLP([2, 16, 16, 1], "relu")
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(200):
        loss = nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = ((net(x).squeeze(1) > 0).long() == y).float().mean().item()
    assert accuracy > 0.97, accuracy
