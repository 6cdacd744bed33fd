"""Checks for chapter 07, Diffusion models (``exercises/07_diffusion.ipynb``).

Each check compares the learner's function with a reference written out below, on a
fixed small case and on random cases, and says what to fix when they differ.
Exercise signatures (0-based timesteps: ``betas[t]`` is the paper's beta_{t+1}):

* ``alphas_cumprod(betas) -> (T,)``
* ``q_sample(x0, t, alphas_cumprod, eps) -> xt``                    (DDPM eq. 4)
* ``diffusion_loss(model, x0, t, eps, alphas_cumprod) -> 0-d tensor``  (DDPM eq. 14)
* ``ddpm_step(eps, t, xt, betas, z) -> x_{t-1}``                   (DDPM eq. 11, sigma_t^2 = tilde beta_t)
* ``ddim_step(eps, t, t_prev, xt, alphas_cumprod) -> x_{t_prev}``  (DDIM eq. 12, eta = 0)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.checks.assertions import (CheckFailure, as_tensor, call, expect_close, fail, passed,
                                        require_callable, seeded)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use: coursekit's own diffusion code is the lesson's answer
# ---------------------------------------------------------------------------------------
_M = "coursekit.models.diffusion."
_SCHEDULE = ban(_M + "NoiseSchedule", reason="a NoiseSchedule computes the schedule's tensors for "
                "you; the exercise is to compute them yourself")
BANS = {
    "check_alphas_cumprod": [
        ban(_M + "alphas_cumprod_from_betas", reason="it is the function this exercise asks you to write"),
        _SCHEDULE],
    "check_q_sample": [
        ban(_M + "q_sample", _M + "_per_sample",
            reason="coursekit's q_sample is the answer; write eq. 4 yourself")],
    "check_diffusion_loss": [
        ban(_M + "diffusion_loss", reason="coursekit's diffusion_loss is the answer; build it from your q_sample"),
        ban(_M + "q_sample", reason="the exercise asks you to noise the images with your own q_sample")],
    "check_ddpm_step": [
        ban(_M + "ddpm_step", _M + "ddpm_sample",
            reason="coursekit's DDPM step is the answer; write eq. 11 yourself"),
        _SCHEDULE],
    "check_ddim_step": [
        ban(_M + "ddim_step", _M + "ddim_sample",
            reason="coursekit's DDIM step is the answer; write eq. 12 yourself"),
        ban(_M + "predict_x0", reason="recovering x0 from xt and eps is step 1 of the exercise")],
}


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.models.diffusion)
# ---------------------------------------------------------------------------------------
def _alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    out, running = [], 1.0
    for b in betas.tolist():
        running *= 1.0 - b
        out.append(running)
    return torch.tensor(out, dtype=torch.float64)


def _q_sample(x0, t, ac, eps):
    a = ac[t].double().view(-1, 1, 1, 1)
    return a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()


def _ddpm_step(eps, t, xt, betas, z):
    betas = betas.double()
    alphas = 1 - betas
    ac = torch.cumprod(alphas, 0)
    ac_prev = ac[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    mean = (xt.double() - betas[t] / (1 - ac[t]).sqrt() * eps.double()) / alphas[t].sqrt()
    if t == 0:
        return mean
    var = (1 - ac_prev) / (1 - ac[t]) * betas[t]
    return mean + var.sqrt() * z.double()


def _ddim_step(eps, t, t_prev, xt, ac):
    ac = ac.double()
    a_t = ac[t]
    a_prev = ac[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = (xt.double() - (1 - a_t).sqrt() * eps.double()) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps.double()


def _betas(T: int) -> torch.Tensor:
    """A cosine schedule (Nichol and Dhariwal, 2021) of T steps, float32."""
    s = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999).float()


def _linear_betas(T: int) -> torch.Tensor:
    """DDPM's linear schedule, rescaled to T steps (so that a hard-coded schedule fails)."""
    return torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T).clamp(max=0.5).float()


_gen = seeded


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
def check_alphas_cumprod(alphas_cumprod, seed: int = 0) -> None:
    """``alphas_cumprod(betas)`` returns abar_t = prod_{s<=t} (1 - beta_s) for every t."""
    name = "check_alphas_cumprod"
    require_callable(name, alphas_cumprod, "alphas_cumprod", n_args=1)
    g = _gen(seed)
    cases = [("betas = [0.1, 0.2, 0.5]", torch.tensor([0.1, 0.2, 0.5])),
             ("a cosine schedule with T = 50", _betas(50)),
             ("random betas in (0, 0.3), T = 20", 0.3 * torch.rand(20, generator=g)),
             ("a linear schedule with T = 40", _linear_betas(40))]
    for case, betas in cases:
        got = call(name, alphas_cumprod, betas.clone(), what="alphas_cumprod(betas)", bans=BANS[name])
        got = as_tensor(name, got, "alphas_cumprod(betas)", shape=(len(betas),), dtype_float=True)
        ref = _alphas_cumprod(betas)
        hint = ("abar_t is the running product of alpha_s = 1 - beta_s for s = 0, ..., t "
                "(torch has a cumulative product)")
        if torch.allclose(got.double(), torch.cumprod(betas.double(), 0), atol=1e-6):
            hint = "this is the running product of the betas; take the product of alphas = 1 - betas"
        elif torch.allclose(got.double(), 1 - betas.double(), atol=1e-6):
            hint = "these are the alphas of single steps; abar_t multiplies all alphas up to t"
        elif len(betas) > 1 and torch.allclose(got[1:].double(), ref[:-1], atol=1e-6):
            hint = "off by one step: abar_t includes (1 - beta_t) itself, so abar_0 = 1 - betas[0]"
        expect_close(name, f"alphas_cumprod(betas) for {case}", got, ref, atol=1e-5, hint=hint)
    passed(name, "abar_t = prod of (1 - beta_s) up to t, on 4 schedules")


def check_q_sample(q_sample, seed: int = 0) -> None:
    """``q_sample(x0, t, alphas_cumprod, eps)`` returns sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    name = "check_q_sample"
    require_callable(name, q_sample, "q_sample", n_args=4)
    g = _gen(seed)
    ac = _alphas_cumprod(_betas(100)).float()
    cases = [("one image, t = [10]", torch.rand(1, 1, 4, 4, generator=g) * 2 - 1, torch.tensor([10])),
             ("a batch of 4 with different t = [0, 30, 60, 99]",
              torch.rand(4, 1, 8, 8, generator=g) * 2 - 1, torch.tensor([0, 30, 60, 99])),
             ("a batch of 3 colour images with random t",
              torch.rand(3, 3, 4, 4, generator=g) * 2 - 1, torch.randint(0, 100, (3,), generator=g)),
             ("a batch of 5 on a linear schedule of T = 40, random t",
              torch.rand(5, 1, 6, 6, generator=g) * 2 - 1, torch.randint(0, 40, (5,), generator=g))]
    for case, x0, t in cases:
        eps = torch.randn(x0.shape, generator=g)
        ac = _alphas_cumprod(_linear_betas(40) if "linear" in case else _betas(100)).float()
        try:
            got = call(name, q_sample, x0.clone(), t.clone(), ac.clone(), eps.clone(),
                       what="q_sample(x0, t, alphas_cumprod, eps)", bans=BANS[name])
        except CheckFailure as err:
            cause = err.__cause__
            if isinstance(cause, RuntimeError) and "size of tensor" in str(cause):
                fail(name, f"q_sample for {case}", f"xt of shape {tuple(x0.shape)}",
                     f"RuntimeError: {cause}",
                     "alphas_cumprod[t] has shape (B,), which lines up with the last pixel axis; "
                     "reshape it to (B, 1, 1, 1) so each image gets its own value")
            raise
        got = as_tensor(name, got, "xt", shape=tuple(x0.shape), dtype_float=True)
        ref = _q_sample(x0, t, ac, eps)
        a = ac[t].double().view(-1, 1, 1, 1)
        if torch.allclose(got.double(), a * x0 + (1 - a) * eps, atol=1e-5):
            hint = "take square roots: the weights are sqrt(abar_t) and sqrt(1 - abar_t)"
        elif len(t) > 1 and torch.allclose(got.double(), _q_sample(x0, t[:1].expand(len(t)), ac, eps), atol=1e-5):
            hint = ("every image has its own t: index alphas_cumprod[t] and reshape it to (B, 1, 1, 1) "
                    "so that it broadcasts over the pixels")
        else:
            hint = ("xt = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, where abar_t is the schedule's entry "
                    "at each image's own t, reshaped to (B, 1, 1, 1)")
        expect_close(name, f"q_sample for {case}", got, ref, atol=1e-5, hint=hint)
    passed(name, "xt = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, per image")


class _ToyNoisePredictor(nn.Module):
    """A fixed little network eps_theta(xt, t) for checking losses (any shape works)."""

    def __init__(self, seed: int):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.scale = nn.Parameter(torch.randn(()))

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).float().view(-1, 1, 1, 1)
        return self.conv(xt) + self.scale * torch.sin(t / 10)


def check_diffusion_loss(diffusion_loss, seed: int = 0) -> None:
    """``diffusion_loss(model, x0, t, eps, alphas_cumprod)``: mean of (eps - model(xt, t))^2."""
    name = "check_diffusion_loss"
    require_callable(name, diffusion_loss, "diffusion_loss", n_args=5)
    g = _gen(seed)
    ac = _alphas_cumprod(_betas(100)).float()
    model = _ToyNoisePredictor(seed)
    for case, (b, hw) in [("a batch of 2 images of 4x4", (2, 4)), ("a batch of 8 images of 8x8", (8, 8)),
                          ("a batch of 5 images of 6x6, linear schedule of T = 40", (5, 6))]:
        if "linear" in case:
            ac = _alphas_cumprod(_linear_betas(40)).float()
        x0 = torch.rand(b, 1, hw, hw, generator=g) * 2 - 1
        t = torch.randint(0, len(ac), (b,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        got = call(name, diffusion_loss, model, x0.clone(), t.clone(), eps.clone(), ac.clone(),
                   what="diffusion_loss(model, x0, t, eps, alphas_cumprod)", bans=BANS[name])
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.requires_grad:
            fail(name, f"diffusion_loss for {case}", "a tensor that autograd can differentiate",
                 got, "keep the result a tensor: no .item(), no torch.no_grad(), no .detach()")
        if not isinstance(got, torch.Tensor):
            fail(name, f"diffusion_loss for {case}", "a 0-d torch.Tensor (the loss)", got,
                 "return the loss tensor itself, not loss.item(): training needs its gradient")
        got = as_tensor(name, got.reshape(()) if got.numel() == 1 else got, "the loss", shape=())
        with torch.no_grad():
            xt = _q_sample(x0, t, ac, eps).float()
            ref = F.mse_loss(model(xt, t), eps)
            wrong = {
                "the target is the noise eps, not the clean image x0": F.mse_loss(model(xt, t), x0),
                "feed the noisy image xt to the model, not x0": F.mse_loss(model(x0, t), eps),
                "average the squared errors, do not sum them":
                    ((model(xt, t) - eps) ** 2).sum(),
            }
        hint = ("noise x0 to level t with the given eps (eq. 4), ask the model for its guess of "
                "eps from xt and t, and average the squared errors (eq. 14)")
        for why, value in wrong.items():
            if abs(got.item() - value.item()) < 1e-5 * max(1.0, abs(value.item())):
                hint = why
        expect_close(name, f"diffusion_loss for {case}", got, ref, atol=1e-5, hint=hint)
    passed(name, "the mean squared error between eps and eps_theta(xt, t)")


def _clipped_ddpm_step(eps, t, xt, b, z):
    """The lesson's DDPM step, which clips the predicted x0 to [-1, 1] (b: betas, float64)."""
    ac = torch.cumprod(1 - b, 0)
    ac_prev = ac[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = ((xt.double() - (1 - ac[t]).sqrt() * eps.double()) / ac[t].sqrt()).clamp(-1, 1)
    mean = (ac_prev.sqrt() * b[t] * x0 + (1 - b[t]).sqrt() * (1 - ac_prev) * xt.double()) / (1 - ac[t])
    return mean + ((1 - ac_prev) / (1 - ac[t]) * b[t]).sqrt() * z.double() if t > 0 else mean


def check_ddpm_step(ddpm_step, seed: int = 0) -> None:
    """``ddpm_step(eps, t, xt, betas, z)``: DDPM eq. 11 mean plus sqrt(tilde beta_t) z, no noise at t = 0."""
    name = "check_ddpm_step"
    require_callable(name, ddpm_step, "ddpm_step", n_args=5)
    g = _gen(seed)
    t_rand = int(torch.randint(1, 99, (), generator=g))
    cases = [("t = 50", 50, 100), ("t = 99 (the first sampling step)", 99, 100),
             ("t = 1", 1, 100), ("t = 0 (the last step: no noise is added)", 0, 100),
             (f"t = {t_rand}", t_rand, 100),
             ("t = 39, the first step of a linear schedule of T = 40", 39, 40),
             ("t = 0 of a linear schedule of T = 40", 0, 40)]
    for case, t, T in cases:
        betas = _betas(T) if T == 100 else _linear_betas(T)
        xt = torch.randn(3, 1, 4, 4, generator=g)
        eps = torch.randn(xt.shape, generator=g)
        z = torch.randn(xt.shape, generator=g)
        got = call(name, ddpm_step, eps.clone(), t, xt.clone(), betas.clone(), z.clone(),
                   what="ddpm_step(eps, t, xt, betas, z)", bans=BANS[name])
        got = as_tensor(name, got, "x_{t-1}", shape=tuple(xt.shape), dtype_float=True)
        ref = _ddpm_step(eps, t, xt, betas, z)
        mean = _ddpm_step(eps, t, xt, betas, torch.zeros_like(z))            # (3, 1, 4, 4)
        b = betas.double()
        ac = torch.cumprod(1 - b, 0)
        var = (1 - ac[t - 1]) / (1 - ac[t]) * b[t] if t > 0 else b[0]
        close = lambda other: torch.allclose(got.double(), other, atol=1e-5)  # noqa: E731
        hint = ("mean = (xt - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t); "
                "add sqrt(tilde beta_t) * z when t > 0")
        if t > 0 and close(mean):
            hint = "no noise was added: for t > 0 add sigma_t * z with sigma_t^2 = tilde beta_t"
        elif t == 0 and not close(ref) and (close(mean + b[0].sqrt() * z) or close(mean + b[0] * z)):
            hint = "at t = 0 return the mean only: the last step adds no noise"
        elif t > 0 and close(mean + b[t].sqrt() * z):
            hint = ("sigma_t^2 = beta_t is the paper's other choice; this exercise uses the posterior "
                    "variance tilde beta_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t")
        elif t > 0 and close(mean + var * z):
            hint = "sigma_t is the square root of the variance: multiply z by sqrt(tilde beta_t)"
        elif close(_clipped_ddpm_step(eps, t, xt, b, z)):
            hint = ("this is the lesson's step with x0 clipped to [-1, 1]; the exercise asks for "
                    "eq. 11 without clipping")
        expect_close(name, f"ddpm_step at {case}", got, ref, atol=1e-4, hint=hint)
    passed(name, "x_{t-1} = mu_theta(xt, t) + sigma_t z, with the right mean and variance")


def check_ddim_step(ddim_step, seed: int = 0) -> None:
    """``ddim_step(eps, t, t_prev, xt, alphas_cumprod)``: DDIM eq. 12 with eta = 0."""
    name = "check_ddim_step"
    require_callable(name, ddim_step, "ddim_step", n_args=5)
    g = _gen(seed)
    t_r = int(torch.randint(2, 100, (), generator=g))
    tp_r = int(torch.randint(0, t_r - 1, (), generator=g))
    cases = [("t = 99 -> 74", 99, 74, 100), ("t = 40 -> 39 (t_prev at the top of its range, t - 1)", 40, 39, 100),
             ("t = 20 -> -1 (the final step, to the clean image)", 20, -1, 100),
             ("t = 99 -> 98", 99, 98, 100), ("t = 0 -> -1", 0, -1, 100),
             ("t = 99 -> -1 (one jump from pure noise to the image)", 99, -1, 100),
             (f"t = {t_r} -> {tp_r}", t_r, tp_r, 100),
             ("t = 39 -> 13 on a linear schedule of T = 40", 39, 13, 40)]
    for case, t, t_prev, T in cases:
        ac = _alphas_cumprod(_betas(T) if T == 100 else _linear_betas(T)).float()
        xt = torch.randn(3, 1, 4, 4, generator=g)
        eps = torch.randn(xt.shape, generator=g)
        got = call(name, ddim_step, eps.clone(), t, t_prev, xt.clone(), ac.clone(),
                   what="ddim_step(eps, t, t_prev, xt, alphas_cumprod)", bans=BANS[name])
        got = as_tensor(name, got, "x_{t_prev}", shape=tuple(xt.shape), dtype_float=True)
        ref = _ddim_step(eps, t, t_prev, xt, ac)
        a_t = ac[t].double()
        x0 = (xt.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        hint = ("x0 = (xt - sqrt(1 - abar_t) eps) / sqrt(abar_t); "
                "x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps")
        if t_prev < 0 and torch.allclose(got.double(), _ddim_step(eps, t, len(ac) - 1, xt, ac), atol=1e-5):
            hint = ("alphas_cumprod[-1] is the LAST entry (almost pure noise); for t_prev = -1 use "
                    "abar_prev = 1, so the final step returns the predicted x0")
        elif t_prev >= 0 and torch.allclose(got.double(), ac[t_prev].double().sqrt() * x0, atol=1e-5):
            hint = "the direction term is missing: add sqrt(1 - abar_prev) * eps"
        else:
            a_prev = ac[t_prev].double() if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
            clipped = a_prev.sqrt() * x0.clamp(-1, 1) + (1 - a_prev).sqrt() * eps.double()
            if torch.allclose(got.double(), clipped, atol=1e-5):
                hint = ("this is the lesson's step with x0 clipped to [-1, 1]; the exercise asks for "
                        "eq. 12 without clipping")
        expect_close(name, f"ddim_step for {case}", got, ref, atol=1e-4, hint=hint)
    # The defining property: with the true noise, one step lands exactly on q(x_prev | x0).
    ac = _alphas_cumprod(_betas(100)).float()
    x0 = torch.rand(2, 1, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    xt = _q_sample(x0, torch.tensor([80, 80]), ac, eps).float()
    got = call(name, ddim_step, eps, 80, 30, xt, ac.clone(), what="ddim_step(eps, t, t_prev, xt, alphas_cumprod)",
               bans=BANS[name])
    expect_close(name, "with the true noise, x_80 -> x_30 should equal sqrt(abar_30) x0 + sqrt(1 - abar_30) eps",
                 got, _q_sample(x0, torch.tensor([30, 30]), ac, eps), atol=1e-4,
                 hint="recover x0 from xt and eps first, then re-noise it to the level of t_prev")
    passed(name, "deterministic DDIM step, including the last step to the clean image")
