"""Tests of coursekit.models.diffusion / unet, the timestep scrubber, and the lesson's inline code.

Oracles: the papers' formulas written out in float64 (schedules, eq. 4, 7, 11, 12, 16),
Monte Carlo simulation of the step-by-step forward process, and a known optimal
denoiser (for data made of one or two fixed images) that the samplers must follow.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from coursekit.models import diffusion as D
from coursekit.models.unet import UNET_PRESETS, UNet, UNetConfig, timestep_embedding


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions run fastest on one thread, and far faster on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cosine_oracle(T: int, s: float = 0.008) -> list[float]:
    f = [math.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    return [f[t] / f[0] for t in range(1, T + 1)]


def _schedule(kind: str = "cosine", T: int = 100) -> D.NoiseSchedule:
    return D.NoiseSchedule.from_config(D.DiffusionConfig(n_timesteps=T, schedule=kind))


# ---------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------
def test_linear_betas_are_the_papers_for_T_1000_and_rescaled_otherwise():
    b = D.linear_betas(1000)
    assert b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4, abs=1e-12)
    assert b[-1].item() == pytest.approx(0.02, abs=1e-12)
    assert torch.allclose(b.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(D.linear_betas(100), 10 * torch.linspace(1e-4, 0.02, 100, dtype=torch.float64))


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_cosine_alphas_cumprod_follow_the_closed_form(T):
    ac = D.alphas_cumprod_from_betas(D.cosine_betas(T))
    oracle = torch.tensor(_cosine_oracle(T), dtype=torch.float64)
    unclipped = D.cosine_betas(T) < 0.999
    assert torch.allclose(ac[unclipped], oracle[unclipped], atol=1e-9)


def test_alphas_cumprod_is_the_running_product_of_alphas():
    betas = torch.tensor([0.1, 0.2, 0.5, 0.05], dtype=torch.float64)
    expected, running = [], 1.0
    for b in betas.tolist():
        running *= 1 - b
        expected.append(running)
    assert torch.allclose(D.alphas_cumprod_from_betas(betas), torch.tensor(expected, dtype=torch.float64),
                          atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [50, 200, 1000])
def test_schedule_tensors(kind, T):
    s = _schedule(kind, T)
    assert s.n_timesteps == T
    assert ((s.betas > 0) & (s.betas < 1)).all()
    assert (s.alphas_cumprod.diff() < 0).all(), "signal must fade at every step"
    assert s.alphas_cumprod[-1] < 0.01, "the last step should be (almost) pure noise"
    assert s.alphas_cumprod_prev[0] == 1.0
    assert torch.allclose(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    b = s.betas.double()
    ac = torch.cumprod(1 - b, 0)                          # recomputed in float64
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    assert torch.allclose(s.posterior_variance.double(), (1 - prev) / (1 - ac) * b, rtol=1e-4)
    assert "NoiseSchedule(T=" in repr(s)


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        D.NoiseSchedule(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match="unknown schedule"):
        D.NoiseSchedule.from_config(D.DiffusionConfig(schedule="quadratic"))


# ---------------------------------------------------------------------------------------
# Forward process and loss
# ---------------------------------------------------------------------------------------
def test_q_sample_matches_eq4_per_image():
    s = _schedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 50, 99])
    got = D.q_sample(x0, t, s.alphas_cumprod, eps)
    for i in range(4):
        a = s.alphas_cumprod[t[i]].double()
        assert torch.allclose(got[i].double(), a.sqrt() * x0[i].double() + (1 - a).sqrt() * eps[i].double(), atol=1e-6)
    assert torch.allclose(D.q_sample(x0, 10, s.alphas_cumprod, eps),
                          D.q_sample(x0, torch.full((4,), 10), s.alphas_cumprod, eps))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_closed_form_equals_many_single_steps_in_distribution(kind):
    """Noising step by step, x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, has the law of eq. 4."""
    s = _schedule(kind, 50)
    g = torch.Generator().manual_seed(1)
    x0 = torch.tensor([0.8, -0.5, 0.0])                        # three pixel values
    n = 20_000
    x = x0.expand(n, 3).clone()
    for t in range(30):
        x = (1 - s.betas[t]).sqrt() * x + s.betas[t].sqrt() * torch.randn(x.shape, generator=g)
    a = s.alphas_cumprod[29]
    se_mean = (1 / math.sqrt(n)) * 4
    assert torch.allclose(x.mean(0), a.sqrt() * x0, atol=se_mean)
    assert torch.allclose(x.var(0), (1 - a).expand(3), atol=0.05 * (1 - a).item())
    closed = D.q_sample(x0.expand(n, 3).reshape(n, 3, 1, 1), 29, s.alphas_cumprod).reshape(n, 3)
    assert torch.allclose(closed.mean(0), x.mean(0), atol=2 * se_mean)


def test_predict_x0_inverts_q_sample():
    s = _schedule()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 40, 90])
    assert torch.allclose(D.predict_x0(D.q_sample(x0, t, s.alphas_cumprod, eps), t, eps, s.alphas_cumprod),
                          x0, atol=1e-4)


class _Linear(nn.Module):
    """eps_theta(xt, t) = w * xt + t / 100, a model whose loss is easy to compute by hand."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))

    def forward(self, xt, t):
        return self.w * xt + torch.as_tensor(t).float().view(-1, 1, 1, 1) / 100


def test_diffusion_loss_is_the_mse_to_the_true_noise():
    s = _schedule()
    x0, eps = torch.rand(5, 1, 4, 4) * 2 - 1, torch.randn(5, 1, 4, 4)
    t = torch.tensor([1, 2, 30, 60, 99])
    model = _Linear()
    loss = D.diffusion_loss(model, x0, s.alphas_cumprod, t=t, eps=eps)
    xt = D.q_sample(x0, t, s.alphas_cumprod, eps)
    assert loss.item() == pytest.approx(((0.3 * xt + t.view(-1, 1, 1, 1) / 100 - eps) ** 2).mean().item(),
                                        rel=1e-6)
    loss.backward()
    assert model.w.grad is not None and model.w.grad != 0


def test_diffusion_loss_of_a_zero_predictor_is_about_one():
    zero = lambda xt, t: torch.zeros_like(xt)   # noqa: E731
    torch.manual_seed(0)
    loss = D.diffusion_loss(zero, torch.rand(2000, 1, 8, 8) * 2 - 1, _schedule().alphas_cumprod)
    assert loss.item() == pytest.approx(1.0, abs=0.01)   # E[eps^2] = 1


def test_ema_update_is_a_convex_combination():   # diffusion re-exports the one EMA
    model = _Linear()
    ema = D.EMA(model, decay=0.9)
    with torch.no_grad():
        model.w.fill_(1.3)
    ema.update(model)
    assert ema.model.w.item() == pytest.approx(0.9 * 0.3 + 0.1 * 1.3)
    assert not ema.model.w.requires_grad
    with pytest.raises(ValueError):
        D.EMA(model, decay=1.0)


# ---------------------------------------------------------------------------------------
# One reverse step
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 37, 99])
def test_ddpm_step_without_clipping_is_algorithm_2(t):
    s = _schedule()
    g = torch.Generator().manual_seed(t)
    xt, eps, z = (torch.randn(2, 1, 8, 8, generator=g) for _ in range(3))
    got = D.ddpm_step(eps, t, xt, s, noise=z, clip_x0=False)
    b = s.betas.double()
    ac = torch.cumprod(1 - b, 0)
    mean = (xt.double() - b[t] / (1 - ac[t]).sqrt() * eps.double()) / (1 - b[t]).sqrt()   # eq. 11
    sigma = ((1 - ac[t - 1]) / (1 - ac[t]) * b[t]).sqrt() if t > 0 else 0.0                # eq. 7
    assert torch.allclose(got.double(), mean + sigma * z.double(), atol=2e-4)


def test_ddpm_step_clipping_only_matters_out_of_range():
    s = _schedule()
    x0 = torch.rand(2, 1, 8, 8) * 1.6 - 0.8
    eps, z = torch.randn_like(x0), torch.randn_like(x0)
    xt = D.q_sample(x0, 50, s.alphas_cumprod, eps)
    assert torch.allclose(D.ddpm_step(eps, 50, xt, s, z, clip_x0=True),
                          D.ddpm_step(eps, 50, xt, s, z, clip_x0=False), atol=1e-5)
    wild = 5 * eps                      # a bad noise guess implies an x0 far outside [-1, 1]
    assert not torch.allclose(D.ddpm_step(wild, 50, xt, s, z, clip_x0=True),
                              D.ddpm_step(wild, 50, xt, s, z, clip_x0=False))


@pytest.mark.parametrize("t,t_prev", [(99, 74), (50, 49), (10, 0), (30, -1)])
def test_ddim_step_with_true_noise_lands_on_q(t, t_prev):
    """Eq. 12 with the true eps reaches exactly sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps."""
    s = _schedule()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    eps = torch.randn_like(x0)
    xt = D.q_sample(x0, t, s.alphas_cumprod, eps)
    got = D.ddim_step(eps, t, t_prev, xt, s.alphas_cumprod, clip_x0=False)
    want = x0 if t_prev < 0 else D.q_sample(x0, t_prev, s.alphas_cumprod, eps)
    assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("t", [1, 20, 99])
def test_ddim_with_eta_1_and_every_step_is_ddpm(t):
    """Eq. 16 with eta = 1 gives sigma_t^2 = tilde beta_t: the DDPM step."""
    s = _schedule()
    xt, eps, z = torch.randn(3, 2, 1, 8, 8).unbind(0)
    ddim = D.ddim_step(eps, t, t - 1, xt, s.alphas_cumprod, eta=1.0, noise=z, clip_x0=False)
    ddpm = D.ddpm_step(eps, t, xt, s, noise=z, clip_x0=False)
    assert torch.allclose(ddim, ddpm, atol=1e-4)


def test_ddim_timesteps():
    # trailing spacing (Lin et al., 2023): every one of the n calls makes a real jump
    assert D.ddim_timesteps(100, 5) == [99, 79, 59, 39, 19]
    assert D.ddim_timesteps(100, 100) == list(range(99, -1, -1))
    assert D.ddim_timesteps(100, 1) == [99]
    for n in (2, 7, 33):
        ts = D.ddim_timesteps(200, n)
        jumps = [a - b for a, b in zip(ts + [-1], ts[1:] + [-1])][:-1] + [ts[-1] + 1]
        assert len(ts) == n and ts[0] == 199 and all(a > b for a, b in zip(ts, ts[1:]))
        assert max(jumps) - min(jumps) <= 1, jumps           # n jumps of (nearly) equal length
    with pytest.raises(ValueError):
        D.ddim_timesteps(100, 0)
    with pytest.raises(ValueError):
        D.ddim_timesteps(100, 101)


# ---------------------------------------------------------------------------------------
# The U-Net
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,channels", [(8, 1), (16, 1), (28, 1), (16, 3), (32, 3)])
def test_unet_shapes(size, channels):
    net = UNet(UNetConfig(image_size=size, in_channels=channels, base_channels=8, time_dim=16, n_groups=4))
    x = torch.randn(2, channels, size, size)
    assert net(x, torch.tensor([0, 5])).shape == x.shape
    assert torch.allclose(net(x, 5), net(x, torch.tensor([5, 5])))


def test_unet_uses_the_timestep_and_every_pixel():
    torch.manual_seed(0)
    net = UNet(UNET_PRESETS["nano"])
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    assert not torch.allclose(net(x, 0), net(x, 50), atol=1e-4)
    net(x, 3)[0, 0, 0, 0].backward()              # the corner output sees the whole image
    assert (x.grad.abs() > 0).float().mean() > 0.9


def test_unet_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet(UNetConfig(image_size=10))
    with pytest.raises(ValueError, match="divide"):
        UNet(UNetConfig(base_channels=12, n_groups=8))
    with pytest.raises(ValueError, match="expects"):
        UNet(UNET_PRESETS["nano"])(torch.randn(2, 3, 8, 8), 0)


def test_presets_build_and_digits_model_is_small():
    for cfg in list(UNET_PRESETS.values()) + [c.unet for c in D.DIFFUSION_PRESETS.values()]:
        UNet(cfg)
    n = sum(p.numel() for p in UNet(D.DIFFUSION_PRESETS["digits"].unet).parameters())
    assert 50_000 < n < 1_000_000


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 10]), 8)
    assert e.shape == (3, 8)
    assert torch.allclose(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert torch.allclose(e[:, 0], torch.cos(torch.tensor([0.0, 1.0, 10.0])))


# ---------------------------------------------------------------------------------------
# Samplers, against the exact denoiser of a two-image data set
# ---------------------------------------------------------------------------------------
class OptimalDenoiser(nn.Module):
    """The best possible eps_theta when the data are the images `atoms` with equal weight.

    E[x0 | xt] is a softmax-weighted mean of the atoms; eps = (xt - sqrt(abar) E[x0|xt]) / sqrt(1 - abar).
    """

    def __init__(self, atoms: torch.Tensor, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.atoms, self.ac = atoms, alphas_cumprod
        self.config = UNetConfig(image_size=atoms.shape[-1], in_channels=atoms.shape[1])
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, xt, t):
        a = self.ac[torch.as_tensor(t)].double().view(-1, 1)                       # (B, 1)
        x = xt.double().flatten(1)                                                 # (B, D)
        atoms = self.atoms.double().flatten(1)                                     # (K, D)
        d2 = ((x[:, None, :] - a.sqrt()[:, :, None] * atoms[None]) ** 2).sum(-1)   # (B, K)
        w = torch.softmax(-d2 / (2 * (1 - a)), dim=1)                              # (B, K)
        x0 = w @ atoms                                                             # (B, D)
        return ((x - a.sqrt() * x0) / (1 - a).sqrt()).float().view_as(xt)


def _atoms():
    a = torch.full((2, 1, 8, 8), -1.0)
    a[0, :, 2:6, 2:6] = 1.0            # a square
    a[1, :, :, 3:5] = 0.6              # a bar
    return a


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_reproduce_the_data_distribution(sampler):
    s = _schedule("cosine", 50)
    atoms = _atoms()
    model = OptimalDenoiser(atoms, s.alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        x = D.ddpm_sample(model, s, n=400, generator=g)
    else:
        x = D.ddim_sample(model, s, n=400, n_steps=10, generator=g)
    assert x.shape == (400, 1, 8, 8)
    dist = ((x[:, None] - atoms[None]) ** 2).flatten(2).mean(-1)       # (N, 2)
    assert (dist.min(1).values < 1e-3).all(), "every sample should be one of the two images"
    share = (dist.argmin(1) == 0).float().mean().item()
    assert 0.4 < share < 0.6, f"both images should be drawn about equally often, got {share:.2f}"


def test_sampling_is_reproducible_and_trajectories_are_consistent():
    s = _schedule("cosine", 20)
    torch.manual_seed(0)
    model = UNet(UNET_PRESETS["nano"])
    x1 = D.ddpm_sample(model, s, n=4, generator=torch.Generator().manual_seed(3))
    x2, traj = D.ddpm_sample(model, s, n=4, generator=torch.Generator().manual_seed(3), return_trajectory=True)
    assert torch.equal(x1, x2)
    assert len(traj) == 21 and traj.xs.shape == (21, 4, 1, 8, 8) and traj.x0_preds.shape == traj.xs.shape
    assert traj.timesteps[0] == 19 and traj.timesteps[-1] == -1
    assert torch.equal(traj.xs[-1], x2) and x2.abs().max() <= 1
    noise = torch.randn(4, 1, 8, 8)
    a = D.ddim_sample(model, s, n_steps=5, noise=noise, generator=torch.Generator().manual_seed(1))
    b, tr = D.ddim_sample(model, s, n_steps=5, noise=noise, generator=torch.Generator().manual_seed(2),
                          return_trajectory=True)
    assert torch.equal(a, b), "DDIM with eta = 0 is deterministic given the starting noise"
    assert torch.equal(tr.xs[0], noise) and tr.timesteps == [19, 15, 11, 7, 3, -1]   # trailing spacing
    assert model.training, "sampling must leave the model's train/eval mode as it was"


def test_a_tiny_model_learns():
    from coursekit.data import load_digits

    torch.manual_seed(0)
    cfg = D.DIFFUSION_PRESETS["tiny"]
    s = D.NoiseSchedule.from_config(cfg)
    model = UNet(cfg.unet)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = D.to_model_range(load_digits().x_train)
    losses = []
    for _ in range(150):
        loss = D.diffusion_loss(model, x[torch.randint(0, len(x), (cfg.batch_size,))], s.alphas_cumprod)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20


def test_range_helpers():
    x = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(D.to_model_range(x), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(D.from_model_range(torch.tensor([-2.0, 0.0, 1.0])), torch.tensor([0.0, 0.5, 1.0]))


# ---------------------------------------------------------------------------------------
# The timestep scrubber widget
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scrubber():
    from coursekit.widgets import timestep_scrubber

    s = _schedule("cosine", 30)
    model = OptimalDenoiser(_atoms(), s.alphas_cumprod)
    return timestep_scrubber(model, s, n_images=4, ddim_steps=6, seed=0), s


def test_scrubber_starts_at_pure_noise(scrubber):
    w, s = scrubber
    assert list(w.trajectories) == ["DDPM (30 steps)", "DDIM (6 steps)"]
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG")
    assert w.step == 0 and w.timestep == 29
    assert w.noise_std == pytest.approx((1 - s.alphas_cumprod[29]).sqrt().item())
    ddpm, ddim = w.trajectories.values()
    assert torch.equal(ddpm.xs[0], ddim.xs[0]), "both samplers start from the same noise"
    assert torch.equal(w.shown, ddpm.xs[0, :4])


def test_scrubber_slider_redraws_the_right_frame(scrubber):
    w, _ = scrubber
    png, draws = w.png, w.n_draws
    w.set(step=15)
    assert w.n_draws == draws + 1 and w.png != png
    ddpm = w.trajectories["DDPM (30 steps)"]
    assert w.timestep == ddpm.timesteps[15] == 14 and torch.equal(w.shown, ddpm.xs[15, :4])
    assert torch.equal(w.shown_x0, ddpm.x0_preds[15, :4])
    w.set(step=30)
    assert w.timestep == -1 and w.noise_std == 0.0
    assert torch.equal(w.shown, ddpm.xs[-1, :4])


def test_scrubber_switching_sampler_rescales_the_slider(scrubber):
    w, _ = scrubber
    w.set(step=15)
    draws = w.n_draws
    w.controls["sampler"].value = "DDIM (6 steps)"         # as a click in the browser would
    assert w.n_draws == draws + 1, "one redraw per change"
    assert w.controls["step"].max == 6 and w.step == 3     # half-way stays half-way
    assert w.timestep == w.trajectories["DDIM (6 steps)"].timesteps[3]
    w.set(sampler="DDPM (30 steps)", step=30)
    assert w.step == 30 and w.controls["step"].max == 30 and w.error == ""


def test_scrubber_from_a_unet_and_bad_arguments():
    from coursekit.widgets import timestep_scrubber

    s = _schedule("cosine", 10)
    torch.manual_seed(0)
    w = timestep_scrubber(UNet(UNET_PRESETS["nano"]), s, n_images=3, ddim_steps=4)
    assert w.shown.shape == (3, 1, 8, 8) and len(w.trajectories["DDIM (4 steps)"]) == 5
    with pytest.raises(ValueError, match="NoiseSchedule"):
        timestep_scrubber(UNet(UNET_PRESETS["nano"]))
    with pytest.raises(ValueError, match="trained model"):
        timestep_scrubber(None, s)
