"""Neurons, dense layers and multi-layer perceptrons (chapter 02).

The building blocks, in the order the lesson builds them:

1. A **neuron** takes a weighted sum of its inputs, adds a bias and passes the result
   through an activation function: ``a = f(x @ w + b)``.
2. A **dense layer** is many neurons side by side. Their weight vectors are the
   columns of one matrix, so the whole layer is one matrix product:
   ``(N, d_in) @ (d_in, d_out) + (d_out,) -> (N, d_out)``.
3. A **multi-layer perceptron** (MLP) stacks dense layers with an activation in
   between (none after the last one, so the output can be any real number, e.g. a
   logit).

Weights are stored as ``(d_in, d_out)`` so the code reads like the maths, ``x @ W + b``.
That is the transpose of ``torch.nn.Linear``, which stores ``(d_out, d_in)``.

Example::

    from coursekit.models.mlp import MLP
    net = MLP([2, 32, 32, 1], activation="relu")
    logits = net(torch.randn(5, 2))      # (5, 1)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F


def identity(x: torch.Tensor) -> torch.Tensor:
    """The 'no activation' activation: returns its input unchanged."""
    return x


# name -> element-wise function; every activation maps a tensor to one of the same shape
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,        # max(0, z)
    "tanh": torch.tanh,        # (e^z - e^-z) / (e^z + e^-z), in (-1, 1)
    "sigmoid": torch.sigmoid,  # 1 / (1 + e^-z), in (0, 1)
    "gelu": F.gelu,            # z * Phi(z), Phi the standard normal CDF (exact, erf form)
    "identity": identity,      # z: a purely linear "activation"
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called ``name`` (one of ``ACTIVATIONS``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if not isinstance(name, str) or name not in ACTIVATIONS:
        known = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose one of {known}")
    return ACTIVATIONS[name]


def uniform_init(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """Draw from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) using torch's global generator.

    The same range as ``torch.nn.Linear``'s default, so outputs start at a sensible
    scale whatever the number of inputs.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape) * 2 - 1) * bound


class Neuron(nn.Module):
    """One artificial neuron: ``a = f(x @ w + b)``.

    Args:
        weights: one weight per input, shape (d,).
        bias: a single number.
        activation: a name from ``ACTIVATIONS``.

    Example::

        n = Neuron([0.5, -1.0, 2.0], bias=0.1, activation="sigmoid")
        n(torch.tensor([1.0, 2.0, 3.0]))   # one input (d,)   -> a 0-d tensor
        n(torch.randn(4, 3))               # a batch (N, d)   -> (N,)
    """

    def __init__(self, weights: Sequence[float] | torch.Tensor, bias: float | torch.Tensor = 0.0,
                 activation: str = "sigmoid"):
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float32).detach().clone()
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D list or tensor (one per input), "
                             f"got shape {tuple(w.shape)}")
        b = torch.as_tensor(bias, dtype=torch.float32).detach().clone().reshape(())
        self.act = get_activation(activation)
        self.activation = activation
        self.weights = nn.Parameter(w)   # (d,)
        self.bias = nn.Parameter(b)      # ()

    @classmethod
    def random(cls, n_inputs: int, activation: str = "sigmoid") -> "Neuron":
        """A neuron with random weights and bias, drawn like one column of ``Dense``.

        Draws the weights (n_inputs,) first, then the bias, from
        U(-1/sqrt(n_inputs), 1/sqrt(n_inputs)) with torch's global generator.
        """
        w = uniform_init((n_inputs,), n_inputs)
        b = uniform_init((), n_inputs)
        return cls(w, b, activation)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """The weighted sum plus bias, ``z = x @ w + b``: (N, d) -> (N,), or (d,) -> ()."""
        if x.shape[-1] != self.weights.shape[0]:
            raise ValueError(f"this neuron has {self.weights.shape[0]} weights but the input "
                             f"has {x.shape[-1]} features (shape {tuple(x.shape)})")
        return x @ self.weights + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The neuron's output ``f(z)``: (N, d) -> (N,), or (d,) -> ()."""
        return self.act(self.pre_activation(x))

    def extra_repr(self) -> str:
        return f"n_inputs={self.weights.shape[0]}, activation={self.activation!r}"


class Dense(nn.Module):
    """A fully connected layer of ``d_out`` neurons without activation: ``x @ W + b``.

    Args:
        d_in: number of input features.
        d_out: number of neurons (output features).

    Attributes:
        weight: (d_in, d_out); column j holds the weights of neuron j.
        bias: (d_out,); one bias per neuron.

    Initialisation draws ``weight`` then ``bias`` from U(-1/sqrt(d_in), 1/sqrt(d_in))
    with torch's global generator (so ``torch.manual_seed`` makes it reproducible).
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.weight = nn.Parameter(uniform_init((d_in, d_out), d_in))  # (d_in, d_out)
        self.bias = nn.Parameter(uniform_init((d_out,), d_in))         # (d_out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) -> (N, d_out)."""
        if x.shape[-1] != self.d_in:
            raise ValueError(f"Dense layer expects {self.d_in} input features, got input of "
                             f"shape {tuple(x.shape)}")
        return x @ self.weight + self.bias   # (N, d_in) @ (d_in, d_out) + (d_out,) -> (N, d_out)

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_out={self.d_out}"


class MLP(nn.Module):
    """A multi-layer perceptron: dense layers with an activation between them.

    Args:
        sizes: feature sizes from input to output, e.g. ``[2, 16, 16, 1]`` is two
            hidden layers of 16 neurons; needs at least two entries.
        activation: a name from ``ACTIVATIONS``, applied after every layer except the
            last (the output stays linear: logits, or any real-valued prediction).

    Shapes:
        forward: (N, sizes[0]) -> (N, sizes[-1]).

    Layers are created first to last, each drawing weight then bias (see ``Dense``).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                     for s in sizes):
            raise ValueError(f"sizes must list at least two positive ints (input and output "
                             f"features), got {sizes!r}")
        self.act = get_activation(activation)
        self.activation = activation
        self.sizes = sizes
        self.layers = nn.ModuleList(Dense(d_in, d_out)
                                    for d_in, d_out in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, sizes[0]) -> (N, sizes[-1]); no activation after the last layer.

        Extra leading dimensions are kept: (..., sizes[0]) -> (..., sizes[-1]).
        """
        if x.dim() == 0 or x.shape[-1] != self.sizes[0]:
            raise ValueError(f"MLP expects input of shape (N, {self.sizes[0]}), "
                             f"got {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)                     # (N, sizes[i + 1])
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def n_params(self) -> int:
        """Number of trainable numbers: sum over layers of d_in * d_out + d_out."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation!r}"
