"""coursekit.optim follows torch.optim step for step (the oracle), plus its own guarantees."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from coursekit import optim

# (id, coursekit optimiser, torch.optim twin), both built from the same kwargs
CONFIGS = [
    ("sgd", optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    ("sgd-wd", optim.SGD, torch.optim.SGD, {"lr": 0.05, "weight_decay": 0.1}),
    ("momentum", optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    ("momentum-0.5-wd", optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01}),
    ("adam", optim.Adam, torch.optim.Adam, {"lr": 1e-2}),
    ("adam-default-lr", optim.Adam, torch.optim.Adam, {}),
    ("adam-betas-eps", optim.Adam, torch.optim.Adam, {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-4}),
    ("adam-wd", optim.Adam, torch.optim.Adam, {"lr": 0.02, "weight_decay": 0.05}),
]
TOLS = {torch.float32: 2e-6, torch.float64: 1e-12}


def _loss(params):
    a, b = params
    return ((a @ b).sin() ** 2).sum() + 0.5 * (b ** 2).sum() + (a ** 2).mean()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name, ours, theirs, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_follows_torch_optim_on_a_smooth_loss(name, ours, theirs, kwargs, dtype):
    g = torch.Generator().manual_seed(3)
    start = [torch.randn(4, 3, generator=g, dtype=dtype), torch.randn(3, generator=g, dtype=dtype)]
    a = [p.clone().requires_grad_(True) for p in start]
    b = [p.clone().requires_grad_(True) for p in start]
    opt_a, opt_b = ours(a, **kwargs), theirs(b, **kwargs)
    for _ in range(60):
        for params, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _loss(params).backward()
            opt.step()
    for pa, pb in zip(a, b):
        assert torch.allclose(pa, pb, atol=TOLS[dtype], rtol=TOLS[dtype]), (pa - pb).abs().max()


@pytest.mark.parametrize("name, ours, theirs, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_follows_torch_optim_on_a_small_network(name, ours, theirs, kwargs):
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] * x[:, 1] > 0).float()
    losses = {}
    for who, make in (("ours", ours), ("torch", theirs)):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
        opt = make(net.parameters(), **kwargs)          # a generator, as in real use
        losses[who] = []
        for _ in range(30):
            loss = nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[who].append(loss.item())
    assert losses["ours"] == pytest.approx(losses["torch"], rel=1e-5, abs=1e-6)
    assert losses["ours"][-1] < losses["ours"][0]


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1)], ids=["sgd", "momentum", "adam"])
def test_zero_grad_clears_and_parameters_without_grad_are_left_alone(make):
    used, unused = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = make([used, unused])
    (used ** 2).sum().backward()
    opt.step()
    assert unused.grad is None and torch.equal(unused, torch.ones(2))
    assert not torch.equal(used, torch.ones(3))
    opt.zero_grad()
    assert used.grad is None and unused.grad is None


def test_adam_first_step_has_length_lr_whatever_the_gradient_scale():
    for scale in (1e-4, 1.0, 1e4):
        p = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
        opt = optim.Adam([p], lr=0.1, eps=1e-12)
        p.grad = torch.tensor([0.3, -5.0], dtype=torch.float64) * scale
        opt.step()
        assert opt.t == 1
        assert torch.allclose(p.detach(), torch.tensor([0.9, -0.9], dtype=torch.float64), atol=1e-9)


def test_momentum_builds_up_to_lr_over_one_minus_mu():
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.01, momentum=0.9)
    steps = []
    for _ in range(200):
        before = p.item()
        p.grad = torch.ones(1, dtype=torch.float64)      # a constant gradient
        opt.step()
        steps.append(before - p.item())
    assert steps[0] == pytest.approx(0.01)
    assert steps[-1] == pytest.approx(0.01 / (1 - 0.9), rel=1e-6)


def test_sgd_on_a_quadratic_converges_below_two_over_curvature_and_diverges_above():
    def final(lr):
        w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        opt = optim.SGD([w], lr=lr)
        for _ in range(100):
            opt.zero_grad()
            (2.0 * w ** 2).sum().backward()              # curvature c = 4, limit 2/c = 0.5
            opt.step()
        return abs(w.item())
    assert final(0.45) < 1e-3
    assert final(0.55) > 1e3


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_make_builds_the_lesson_optimisers_by_name(name):
    p = torch.zeros(2, requires_grad=True)
    opt = optim.make(name, [p], lr=0.01)
    assert isinstance(opt, optim.Optimizer) and opt.lr == 0.01
    if name == "momentum":
        assert opt.momentum == 0.9


@pytest.mark.parametrize("bad", [
    lambda p: optim.SGD([], lr=0.1),
    lambda p: optim.SGD([1.0], lr=0.1),
    lambda p: optim.SGD([p], lr=0.0),
    lambda p: optim.SGD([p], lr=-0.1),
    lambda p: optim.SGD([p], lr=math.nan),
    lambda p: optim.SGD([p], lr=0.1, momentum=1.0),
    lambda p: optim.SGD([p], lr=0.1, weight_decay=-1.0),
    lambda p: optim.Adam([p], lr=0.1, betas=(1.0, 0.999)),
    lambda p: optim.Adam([p], lr=0.1, eps=0.0),
    lambda p: optim.make("rmsprop", [p], lr=0.1),
], ids=["empty", "not-a-tensor", "lr-0", "lr-negative", "lr-nan", "momentum-1", "wd-negative",
        "beta-1", "eps-0", "unknown-name"])
def test_bad_settings_are_refused_with_a_clear_error(bad):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises((ValueError, TypeError)):
        bad(p)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    p = torch.ones(3, device="cuda", requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    (p ** 2).sum().backward()
    opt.step()
    assert p.device.type == "cuda" and (p < 1).all()
