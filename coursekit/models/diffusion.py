"""Diffusion models: noise schedules, the forward process, the training loss, DDPM and DDIM.

Two papers, one network:

* "Denoising Diffusion Probabilistic Models" (Ho, Jain and Abbeel, 2020), DDPM: destroy
  an image x0 with T small steps of Gaussian noise, train a network eps_theta(xt, t) to
  predict the noise that was added, then generate by undoing the T steps one by one.
* "Denoising Diffusion Implicit Models" (Song, Meng and Ermon, 2020), DDIM: the same
  trained network, sampled with a deterministic update that may skip most timesteps.
* The cosine schedule is from "Improved Denoising Diffusion Probabilistic Models"
  (Nichol and Dhariwal, 2021).

Conventions. Timesteps are 0-based indices into the schedule: ``betas[t]`` is the paper's
beta_{t+1}, so ``t = 0`` is the least noisy step and ``t = T - 1`` is (almost) pure
noise. Images live in [-1, 1] inside the model (``to_model_range`` / ``from_model_range``).
Equation numbers refer to the papers above.

    cfg = DIFFUSION_PRESETS["digits"]
    schedule = NoiseSchedule.from_config(cfg)
    model = UNet(cfg.unet)
    loss = diffusion_loss(model, x0, schedule.alphas_cumprod)           # train on this
    samples = ddim_sample(model, schedule, n=64, n_steps=20)           # (64, 1, 8, 8)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.models.ema import EMA
from coursekit.models.presets import Presets
from coursekit.models.unet import UNet, UNetConfig
from coursekit.runtime import budget
from coursekit.train import Run, train

__all__ = [
    "DiffusionConfig", "DIFFUSION_PRESETS", "NoiseSchedule", "linear_betas", "cosine_betas",
    "alphas_cumprod_from_betas", "q_sample", "predict_x0", "diffusion_loss", "ddpm_step",
    "ddim_step", "ddim_timesteps", "ddpm_sample", "ddim_sample", "Trajectory", "EMA",
    "to_model_range", "from_model_range", "DiffusionRun", "train_diffusion", "train_digit_diffusion",
    "UNet", "UNetConfig",
]


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
@dataclass
class DiffusionConfig(Presets):
    """Everything needed to build and train a diffusion model."""

    n_timesteps: int = 100        # T, the number of noising steps
    schedule: str = "cosine"      # "linear" (Ho et al.) or "cosine" (Nichol and Dhariwal)
    beta_start: float = 1e-4      # linear schedule: first beta, quoted for T = 1000 ...
    beta_end: float = 0.02        # ... and last beta; both are rescaled by 1000 / T
    cosine_s: float = 0.008       # cosine schedule: small offset that keeps beta_1 > 0
    lr: float = 2e-3              # Adam learning rate
    batch_size: int = 128         # images per training step
    ema_decay: float = 0.995      # weight of the old value in the exponential moving average
    unet: UNetConfig = field(default_factory=UNetConfig)  # the noise-predicting network


# Tiny named presets: "tiny" is for tests, "digits" is the lesson's model on 8x8 digits,
# "mnist" is an opt-in for 28x28 images (train it on a GPU).
PRESETS: dict[str, DiffusionConfig] = {
    "tiny": DiffusionConfig(n_timesteps=50, batch_size=32, unet=UNetConfig(base_channels=8, time_dim=16,
                                                                           n_groups=4)),
    "digits": DiffusionConfig(),
    "mnist": DiffusionConfig(n_timesteps=1000, lr=2e-4, unet=UNetConfig(image_size=28, base_channels=32)),
}
DIFFUSION_PRESETS = PRESETS   # the name lesson 07 uses
LESSON_STEPS, LESSON_STEPS_FAST = 1500, 30   # training steps of the lesson (default, fast mode)


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> [-1, 1], the range the model works in."""
    return x * 2 - 1


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """Model outputs in [-1, 1] -> images in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------------------------------
# Noise schedules
# ---------------------------------------------------------------------------------------
def linear_betas(n_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The linear schedule of Ho et al. (2020): betas rising evenly from beta_start to beta_end.

    The defaults are the paper's, for T = 1000. For other T they are multiplied by
    1000 / T (as in Nichol and Dhariwal, 2021) so that the last step still reaches noise.

    Returns:
        (T,) float64 betas.
    """
    scale = 1000 / n_timesteps
    return torch.linspace(scale * beta_start, scale * beta_end, n_timesteps, dtype=torch.float64)


def cosine_betas(n_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol and Dhariwal (2021), their eq. 17.

    alphas_cumprod follows f(t) / f(0) with f(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2,
    so the signal fades slowly at both ends; beta_t = 1 - abar_t / abar_{t-1}, capped at
    max_beta so that the last step is not singular.

    Returns:
        (T,) float64 betas.
    """
    steps = torch.arange(n_timesteps + 1, dtype=torch.float64) / n_timesteps   # (T+1,)
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2                     # (T+1,)
    alphas_cumprod = f / f[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]                        # (T,)
    return betas.clamp(max=max_beta)


def alphas_cumprod_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """abar_t = prod_{s <= t} (1 - beta_s), the share of signal variance left at step t.

    Args:
        betas: (T,) noise variances of the single steps.
    Returns:
        (T,) alphas_cumprod, decreasing from 1 - beta_1 towards 0.
    """
    return torch.cumprod(1 - betas, dim=0)


class NoiseSchedule:
    """The schedule's tensors, computed once in float64 and stored in float32.

    Attributes (all (T,)):
        betas: beta_t, the variance of the noise added by step t.
        alphas: alpha_t = 1 - beta_t.
        alphas_cumprod: abar_t = alpha_1 * ... * alpha_t.
        alphas_cumprod_prev: abar_{t-1}, with abar_0 = 1 (no noise before the first step).
        posterior_variance: tilde beta_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t (DDPM eq. 7).
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor of values strictly between 0 and 1")
        alphas_cumprod = alphas_cumprod_from_betas(betas)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.betas = betas.float()
        self.alphas = (1 - betas).float()
        self.alphas_cumprod = alphas_cumprod.float()
        self.alphas_cumprod_prev = prev.float()
        self.posterior_variance = ((1 - prev) / (1 - alphas_cumprod) * betas).float()

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> "NoiseSchedule":
        """Build the schedule named by ``cfg.schedule`` with ``cfg.n_timesteps`` steps."""
        if cfg.schedule == "linear":
            return cls(linear_betas(cfg.n_timesteps, cfg.beta_start, cfg.beta_end))
        if cfg.schedule == "cosine":
            return cls(cosine_betas(cfg.n_timesteps, cfg.cosine_s))
        raise ValueError(f"unknown schedule {cfg.schedule!r}; use 'linear' or 'cosine'")

    @property
    def n_timesteps(self) -> int:
        return len(self.betas)

    def to(self, device) -> "NoiseSchedule":
        """Move every tensor to ``device`` (returns self)."""
        for name in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def __repr__(self) -> str:
        ac = self.alphas_cumprod
        return (f"NoiseSchedule(T={self.n_timesteps}, beta: {self.betas[0]:.2e}..{self.betas[-1]:.2e}, "
                f"alphas_cumprod: {ac[0]:.4f}..{ac[-1]:.2e})")


def _per_sample(values: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against x: (B,) or scalar t -> (B, 1, 1, 1) or ()."""
    t = torch.as_tensor(t, device=values.device)
    v = values[t].to(x.device, x.dtype)
    return v.reshape(-1, *([1] * (x.dim() - 1))) if v.dim() == 1 else v       # (B, 1, 1, 1)


# ---------------------------------------------------------------------------------------
# Forward process and loss
# ---------------------------------------------------------------------------------------
def q_sample(x0: torch.Tensor, t: torch.Tensor | int, alphas_cumprod: torch.Tensor,
             eps: torch.Tensor | None = None) -> torch.Tensor:
    """Jump straight to step t of the forward process, DDPM eq. 4.

    q(xt | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I), so xt = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

    Args:
        x0: (B, C, H, W) clean images in [-1, 1].
        t: (B,) integer timesteps (one per image) or one int for all.
        alphas_cumprod: (T,) the schedule's abar.
        eps: (B, C, H, W) standard normal noise; drawn fresh when None.
    Returns:
        (B, C, H, W) noisy images xt.
    """
    if eps is None:
        eps = torch.randn_like(x0)
    abar = _per_sample(alphas_cumprod, t, x0)                                   # (B, 1, 1, 1)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps


def predict_x0(xt: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor,
               alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for x0 given (predicted) noise: x0 = (xt - sqrt(1 - abar_t) eps) / sqrt(abar_t).

    This is DDPM eq. 15 and the "predicted x0" of DDIM eq. 12. Shapes as in ``q_sample``.
    """
    abar = _per_sample(alphas_cumprod, t, xt)
    return (xt - (1 - abar).sqrt() * eps) / abar.sqrt()


def diffusion_loss(model: nn.Module, x0: torch.Tensor, alphas_cumprod: torch.Tensor,
                   t: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    """The simplified DDPM objective L_simple (eq. 14; Algorithm 1, "Training").

    1. draw t uniformly from {0, ..., T-1} and eps ~ N(0, I) (unless given);
    2. noise the images in closed form: xt = q_sample(x0, t, eps) (eq. 4);
    3. return the mean squared error between eps and the network's guess eps_theta(xt, t).

    Args:
        model: maps (xt (B, C, H, W), t (B,)) to predicted noise (B, C, H, W).
        x0: (B, C, H, W) clean images in [-1, 1].
        alphas_cumprod: (T,) on the same device as x0.
    Returns:
        A 0-d tensor.
    """
    if t is None:
        t = torch.randint(0, len(alphas_cumprod), (x0.shape[0],), device=x0.device)   # (B,)
    if eps is None:
        eps = torch.randn_like(x0)
    xt = q_sample(x0, t, alphas_cumprod, eps)
    return F.mse_loss(model(xt, t), eps)


# ---------------------------------------------------------------------------------------
# Reverse process: one step
# ---------------------------------------------------------------------------------------
def ddpm_step(eps: torch.Tensor, t: int, xt: torch.Tensor, schedule: NoiseSchedule,
              noise: torch.Tensor | None = None, clip_x0: bool = True) -> torch.Tensor:
    """One step of DDPM's reverse process, x_t -> x_{t-1} (Algorithm 2, "Sampling").

    1. read alpha_t, beta_t, abar_t and abar_{t-1} from the schedule;
    2. predict the clean image from the predicted noise, x0 = (xt - sqrt(1 - abar_t) eps) / sqrt(abar_t)
       (eq. 15);
    3. optionally clip x0 to [-1, 1], the data range (Ho et al.'s code does this);
    4. the posterior mean mu_tilde(xt, x0) of q(x_{t-1} | xt, x0), eq. 7:
       mu = sqrt(abar_{t-1}) beta_t / (1 - abar_t) * x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) * xt;
       without clipping this equals eq. 11, mu = (xt - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t);
    5. add noise with the posterior variance sigma_t^2 = tilde beta_t (eq. 7), except at t = 0.

    Args:
        eps: (B, C, H, W) the network's predicted noise eps_theta(xt, t).
        t: the current timestep (an int, the same for the whole batch).
        xt: (B, C, H, W) the current noisy images.
        schedule: the NoiseSchedule the model was trained with.
        noise: (B, C, H, W) the z of step 5; drawn fresh when None.
        clip_x0: clip the predicted x0 to [-1, 1] (step 3).
    Returns:
        (B, C, H, W) x_{t-1}.
    """
    # 1. schedule values at t
    alpha_t, beta_t = schedule.alphas[t], schedule.betas[t]
    abar_t, abar_prev = schedule.alphas_cumprod[t], schedule.alphas_cumprod_prev[t]
    # 2. predicted x0 (eq. 15)
    x0 = (xt - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    # 3. clip to the data range
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    # 4. posterior mean (eq. 7)
    coef_x0 = abar_prev.sqrt() * beta_t / (1 - abar_t)
    coef_xt = alpha_t.sqrt() * (1 - abar_prev) / (1 - abar_t)
    mu = coef_x0 * x0 + coef_xt * xt
    # 5. add noise with variance tilde beta_t, except at the last step
    if t == 0:
        return mu
    if noise is None:
        noise = torch.randn_like(xt)
    return mu + schedule.posterior_variance[t].sqrt() * noise


def ddim_step(eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor, alphas_cumprod: torch.Tensor,
              eta: float = 0.0, noise: torch.Tensor | None = None, clip_x0: bool = True) -> torch.Tensor:
    """One DDIM step from timestep t to an earlier timestep t_prev (Song et al., eq. 12).

    1. read abar_t and abar_prev (abar_prev = 1 when t_prev < 0, i.e. the clean image);
    2. predict x0 = (xt - sqrt(1 - abar_t) eps) / sqrt(abar_t), the "predicted x0" of eq. 12;
    3. optionally clip x0 to [-1, 1];
    4. sigma_t = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev) (eq. 16);
       eta = 0 gives the deterministic DDIM, eta = 1 the DDPM variance;
    5. the "direction pointing to xt", sqrt(1 - abar_prev - sigma_t^2) * eps (eq. 12);
    6. x_prev = sqrt(abar_prev) * x0 + direction + sigma_t * noise (eq. 12).

    Args:
        eps: (B, C, H, W) predicted noise eps_theta(xt, t).
        t: current timestep; t_prev: the next (smaller) timestep, or -1 for the final step.
        xt: (B, C, H, W) current images.
        alphas_cumprod: (T,) the schedule's abar.
        eta: amount of fresh noise (0 = deterministic).
        noise: (B, C, H, W) the noise of step 6 when eta > 0; drawn fresh when None.
    Returns:
        (B, C, H, W) x_{t_prev}.
    """
    # 1. schedule values
    abar_t = alphas_cumprod[t]
    abar_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones_like(abar_t)
    # 2. predicted x0
    x0 = (xt - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    # 3. clip to the data range
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    # 4. sigma_t (eq. 16)
    sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).sqrt()
    # 5. direction pointing to xt
    direction = (1 - abar_prev - sigma ** 2).clamp(min=0).sqrt() * eps
    # 6. x_prev
    x_prev = abar_prev.sqrt() * x0 + direction
    if eta > 0 and t_prev >= 0:                      # sigma_t = 0 on the last step
        if noise is None:
            noise = torch.randn_like(xt)
        x_prev = x_prev + sigma * noise
    return x_prev


def ddim_timesteps(n_timesteps: int, n_steps: int) -> list[int]:
    """The n_steps timesteps DDIM visits, with "trailing" spacing.

    Lin, Liu, Li and Yang (2023), "Common Diffusion Noise Schedules and Sample Steps are
    Flawed", table 2: start at the noisiest step T-1 and space the others T/n_steps apart,
    so the last visited step is about T/n_steps - 1 and the final jump (to -1, the clean
    image) is as long as the others. Spacing evenly from T-1 down to 0 instead would spend
    one of the n_steps network calls on the tiny step from t = 0 to the clean image, so
    that n_steps calls made only n_steps - 1 real jumps.

    >>> ddim_timesteps(100, 5)
    [99, 79, 59, 39, 19]
    """
    if not 1 <= n_steps <= n_timesteps:
        raise ValueError(f"n_steps must be between 1 and T = {n_timesteps}, got {n_steps}")
    return [round(n_timesteps - k * n_timesteps / n_steps) - 1 for k in range(n_steps)]


# ---------------------------------------------------------------------------------------
# Reverse process: full samplers
# ---------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """The images along one sampling run, from pure noise (frame 0) to the sample (frame S).

    xs: (S+1, N, C, H, W) x at each frame; xs[0] is the starting noise x_T.
    x0_preds: (S+1, N, C, H, W) the model's guess of the clean image at each frame
        (frame 0 has none yet: zeros; the last frame is the sample itself).
    timesteps: S+1 ints; timesteps[k] is the timestep of xs[k], and -1 marks the clean sample.
    """

    xs: torch.Tensor
    x0_preds: torch.Tensor
    timesteps: list[int]

    def __len__(self) -> int:
        return len(self.timesteps)


def _start_noise(model: nn.Module, n: int, device, generator: torch.Generator | None,
                 noise: torch.Tensor | None) -> torch.Tensor:
    if noise is not None:
        return noise.to(device)
    cfg = model.config
    shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
    return torch.randn(shape, generator=generator).to(device)   # drawn on the CPU: same on every device


@torch.no_grad()
def _sample(model, schedule, pairs, step, noisy, n, device, generator, noise, return_trajectory):
    """Run ``step(eps, t, t_prev, x, z)`` over the (t, t_prev) pairs, from noise to image."""
    model_was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    x = _start_noise(model, n, device, generator, noise)                     # (N, C, H, W)
    xs, x0s, ts = [x.cpu()], [torch.zeros_like(x).cpu()], [pairs[0][0]]
    for t, t_prev in pairs:
        eps = model(x, torch.full((x.shape[0],), t, device=device, dtype=torch.long))
        # fresh noise only where the step uses it (never on the last step)
        z = torch.randn(x.shape, generator=generator).to(device) if noisy and t_prev >= 0 else None
        if return_trajectory:
            x0 = predict_x0(x, t, eps, schedule.alphas_cumprod).clamp(-1, 1)
        x = step(eps, t, t_prev, x, z)
        if return_trajectory:
            xs.append(x.cpu())
            x0s.append(x0.cpu() if t_prev >= 0 else x.cpu())
            ts.append(t_prev)
    model.train(model_was_training)
    if not return_trajectory:
        return x
    return x, Trajectory(torch.stack(xs), torch.stack(x0s), ts)


def ddpm_sample(model: nn.Module, schedule: NoiseSchedule, n: int = 64, device=None,
                generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                clip_x0: bool = True, return_trajectory: bool = False):
    """Generate n images with all T steps of DDPM (Algorithm 2).

    1. start from pure noise x_T ~ N(0, I) (or the given ``noise``);
    2. for t = T-1, ..., 0: predict eps = model(xt, t) and take ``ddpm_step``;
    3. return x_0.

    Args:
        model: a trained noise predictor with a ``config`` (image_size, in_channels).
        schedule: its NoiseSchedule, on the model's device.
        generator: a CPU torch.Generator for reproducible noise.
        noise: (N, C, H, W) starting noise instead of a fresh draw.
        return_trajectory: also return a Trajectory of every step.
    Returns:
        (N, C, H, W) samples in [-1, 1] (and the Trajectory when asked).
    """
    T = schedule.n_timesteps
    pairs = [(t, t - 1) for t in range(T - 1, -1, -1)]

    def step(eps, t, t_prev, x, z):
        return ddpm_step(eps, t, x, schedule, z, clip_x0)

    return _sample(model, schedule, pairs, step, True, n, device, generator, noise, return_trajectory)


def ddim_sample(model: nn.Module, schedule: NoiseSchedule, n: int = 64, n_steps: int = 20,
                eta: float = 0.0, device=None, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None, clip_x0: bool = True,
                return_trajectory: bool = False):
    """Generate n images with n_steps DDIM steps (Song et al., 2020), skipping timesteps.

    1. pick n_steps timesteps tau_1 > ... > tau_S, T/S apart from T-1 down (``ddim_timesteps``);
    2. start from pure noise at tau_1;
    3. for each pair (tau_i, tau_{i+1}) take ``ddim_step``; the last goes to -1 (clean).

    Args and returns as in ``ddpm_sample``; ``eta`` = 0 makes sampling deterministic.
    """
    ts = ddim_timesteps(schedule.n_timesteps, n_steps)
    pairs = list(zip(ts, ts[1:] + [-1]))

    def step(eps, t, t_prev, x, z):
        return ddim_step(eps, t, t_prev, x, schedule.alphas_cumprod, eta, z, clip_x0)

    return _sample(model, schedule, pairs, step, eta > 0, n, device, generator, noise, return_trajectory)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
@dataclass
class DiffusionRun(Run):
    """What ``train_diffusion`` returns: ``model`` is the network as trained (last weights),
    ``ema_model`` the averaged weights in eval mode (sample from this one)."""

    ema_model: nn.Module | None = None
    schedule: NoiseSchedule | None = None   # the schedule it was trained with, on the training device


def train_diffusion(cfg: DiffusionConfig, data: torch.Tensor, n_steps: int, *, device=None,
                    seed: int = 0, progress: bool = True, desc: str = "diffusion") -> DiffusionRun:
    """Train a U-Net to predict noise with L_simple (DDPM Algorithm 1), keeping an EMA copy.

    Each step: 1. draw a minibatch of images; 2. ``diffusion_loss`` (random t and eps);
    3. an Adam step; 4. update the moving average of the weights. This is the loop the
    lesson writes out; it draws random numbers in the same order, from a stream seeded by
    ``seed``; the global random state is left as it was.

    Args:
        cfg: sizes and training settings (``DiffusionConfig.preset(...)``).
        data: (N, C, H, W) training images x0 in [-1, 1].
        n_steps: number of steps; write it as ``coursekit.budget(...)`` in lessons.
        device: where to train (default CPU).
        seed: seeds the weights, minibatches, timesteps and noise.
        progress: show a progress bar.
    Returns:
        A DiffusionRun.
    """
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        schedule = NoiseSchedule.from_config(cfg).to(device)
        model = UNet(cfg.unet).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        ema = EMA(model, cfg.ema_decay)
        x0 = data.to(device)

        def train_step(step):
            idx = torch.randint(0, len(x0), (cfg.batch_size,), device=device)     # 1. minibatch
            loss = diffusion_loss(model, x0[idx], schedule.alphas_cumprod)      # 2. L_simple
            opt.zero_grad()
            loss.backward()
            opt.step()                                                          # 3. Adam
            ema.update(model)                                                   # 4. EMA
            return loss

        start = time.perf_counter()
        history = train(train_step, n_steps, desc=desc, show=progress)
        seconds = time.perf_counter() - start
    return DiffusionRun(model, history, cfg, seconds, ema_model=ema.model, schedule=schedule)


def train_digit_diffusion(n_steps: int | None = None, *, device=None, seed: int = 0,
                          progress: bool = True) -> DiffusionRun:
    """The lesson's model: the "digits" preset trained on the 8x8 digits' training split.

    Args:
        n_steps: training steps (default: the lesson's, ``coursekit.budget(LESSON_STEPS, fast=LESSON_STEPS_FAST)``).
    Returns:
        A DiffusionRun; ``from_model_range(ddim_sample(run.ema_model, run.schedule, n))``
        gives (n, 1, 8, 8) digits in [0, 1].
    """
    from coursekit.data import load_digits

    n_steps = budget(LESSON_STEPS, fast=LESSON_STEPS_FAST) if n_steps is None else n_steps
    x0 = to_model_range(load_digits(seed=0).x_train)                       # (N, 1, 8, 8)
    return train_diffusion(PRESETS["digits"], x0, n_steps, device=device, seed=seed,
                           progress=progress, desc="digit diffusion")
