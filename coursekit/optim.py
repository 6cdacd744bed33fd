"""Gradient-descent optimisers written out step by step: SGD, SGD with momentum, Adam.

They work like ``torch.optim``: build one on a list of tensors (or ``model.parameters()``),
call ``loss.backward()``, then ``opt.step()`` and ``opt.zero_grad()``. The tests check
that they follow the same trajectory as ``torch.optim.SGD`` and ``torch.optim.Adam``.

    opt = Adam(model.parameters(), lr=1e-2)
    for step in range(100):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Optimizer:
    """What every optimiser here shares: the parameter list, ``zero_grad`` and checks.

    Args:
        params: tensors to optimise (each must have ``requires_grad=True``), e.g.
            ``model.parameters()`` or ``[w, b]``.
        lr: the learning rate (step size), a positive number.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got an empty list of parameters")
        for i, p in enumerate(self.params):
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"parameter {i} is a {type(p).__name__}, not a torch.Tensor")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def zero_grad(self) -> None:
        """Forget the gradients of the last step (sets ``p.grad = None``, as torch does)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (heavy-ball) momentum and weight decay.

    Without momentum:  p <- p - lr * g.
    With momentum mu (Polyak, 1964, in PyTorch's form):
        v <- mu * v + g;   p <- p - lr * v
    so a constant gradient g builds up to a step of lr * g / (1 - mu).

    Args:
        params: tensors to optimise.
        lr: learning rate.
        momentum: mu in [0, 1); 0 gives plain SGD.
        weight_decay: adds ``weight_decay * p`` to each gradient (an L2 penalty).
    Attributes:
        velocity: one tensor v per parameter (same shape), created at the first step.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.velocity: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        """Move every parameter that has a gradient one step downhill."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                if self.velocity[i] is None:
                    self.velocity[i] = torch.zeros_like(p)
                v = self.velocity[i]
                v.mul_(self.momentum).add_(g)               # v <- mu * v + g
                g = v
            p.sub_(self.lr * g)                             # p <- p - lr * (v or g)


class Adam(Optimizer):
    """Adam, "Adam: A Method for Stochastic Optimization" (Kingma & Ba, 2014), Algorithm 1.

    Each parameter gets its own step size: the running mean of its gradient (m) divided
    by the square root of the running mean of its squared gradient (v). Both averages
    start at zero, so early on they are too small; dividing by (1 - beta**t) corrects that.

    Args:
        params: tensors to optimise.
        lr: alpha, the step size (the largest a step can be, roughly).
        betas: (beta1, beta2), decay rates of the first and second moment estimates.
        eps: epsilon, keeps the division finite when v is close to 0.
        weight_decay: adds ``weight_decay * p`` to each gradient (L2, as torch.optim.Adam).
    Attributes:
        t: the number of steps taken so far.
        m, v: one first- and one second-moment tensor per parameter.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update, the six lines of Algorithm 1 numbered (1)-(6)."""
        self.t += 1
        t, beta1, beta2 = self.t, self.beta1, self.beta2
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad                                      # (1) g_t = grad of f_t at theta_{t-1}
            if self.weight_decay:
                g = g + self.weight_decay * p
            m.mul_(beta1).add_((1 - beta1) * g)             # (2) m_t = beta1 m_{t-1} + (1 - beta1) g_t
            v.mul_(beta2).add_((1 - beta2) * g * g)         # (3) v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
            m_hat = m / (1 - beta1 ** t)                    # (4) m^_t = m_t / (1 - beta1^t)
            v_hat = v / (1 - beta2 ** t)                    # (5) v^_t = v_t / (1 - beta2^t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))  # (6) theta_t = theta_{t-1} - alpha m^_t / (sqrt(v^_t) + eps)


OPTIMIZERS = {
    "sgd": lambda params, lr: SGD(params, lr=lr),
    "momentum": lambda params, lr: SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: Adam(params, lr=lr),
}
"""The three optimisers of the lesson by name, with their usual settings."""


def make(name: str, params: Iterable[torch.Tensor], lr: float) -> Optimizer:
    """Build an optimiser by name: "sgd", "momentum" (mu = 0.9) or "adam" (default betas)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr)
