"""Class-conditional diffusion with classifier-free guidance.

"Classifier-Free Diffusion Guidance" (Ho and Salimans, 2022): one network learns both the
conditional noise prediction eps(xt, t, y) and the unconditional one eps(xt, t, null), by
replacing the label y with a "null" class in a random share p_uncond of the training
examples. At sampling time the two predictions are mixed with a guidance scale w:

    eps_guided = eps_uncond + w * (eps_cond - eps_uncond)

w = 0 is the unconditional model, w = 1 the plain conditional model, w > 1 pushes the
sample further in the direction that makes the class more likely (sharper, more typical
digits, less variety). The noise schedules, the DDIM step and the EMA are chapter 07's
(``coursekit.models.diffusion``); this file adds only the label.

    cfg = CondDiffusionConfig.preset("digits")
    run = train_cond_diffusion(cfg, x0, labels, n_steps=1500)               # x0 in [-1, 1]
    samples = guided_sample(run.ema_model, run.schedule, torch.tensor([3] * 8), w=2.0)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.models.diffusion import DiffusionRun, NoiseSchedule, ddim_step, ddim_timesteps, q_sample
from coursekit.models.ema import EMA
from coursekit.models.presets import Presets
from coursekit.models.unet import UNet, UNetConfig, timestep_embedding
from coursekit.runtime import budget
from coursekit.train import train

__all__ = ["CondDiffusionConfig", "PRESETS", "CondUNet", "drop_condition", "guided_eps", "cond_diffusion_loss",
           "guided_ddim_step", "guided_sample", "train_cond_diffusion", "train_digit_cfg"]


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
@dataclass
class CondDiffusionConfig(Presets):
    """A class-conditional diffusion model: chapter 07's settings plus the label's."""

    n_classes: int = 10           # real classes 0..n_classes-1; the null class is n_classes
    p_uncond: float = 0.1         # share of training examples whose label is replaced by null
    n_timesteps: int = 100        # T, the number of noising steps
    schedule: str = "cosine"      # "linear" or "cosine", as in DiffusionConfig
    beta_start: float = 1e-4      # linear schedule's first beta (for T = 1000)
    beta_end: float = 0.02        # linear schedule's last beta (for T = 1000)
    cosine_s: float = 0.008       # cosine schedule's offset
    lr: float = 2e-3              # Adam learning rate
    batch_size: int = 128         # images per training step
    ema_decay: float = 0.995      # weight of the old value in the moving average of the weights
    unet: UNetConfig = field(default_factory=UNetConfig)  # the noise-predicting network

    @property
    def null_class(self) -> int:
        """The label that means "no condition" (one past the last real class)."""
        return self.n_classes


# "tiny" for tests, "digits" for lesson 14's model on the 8x8 digits.
PRESETS: dict[str, CondDiffusionConfig] = {
    "tiny": CondDiffusionConfig(n_timesteps=50, batch_size=32,
                                unet=UNetConfig(base_channels=8, time_dim=16, n_groups=4)),
    "digits": CondDiffusionConfig(),
}
LESSON_STEPS, LESSON_STEPS_FAST = 1200, 30   # training steps of the zoo's "digit-cfg"


# ---------------------------------------------------------------------------------------
# The network: chapter 07's U-Net with a class embedding added to the time embedding
# ---------------------------------------------------------------------------------------
class CondUNet(UNet):
    """Predicts the noise eps in xt given the timestep t and a class label y.

    The label (0..n_classes-1, or n_classes for "no condition") is looked up in a learned
    table of vectors and added to the timestep embedding, so every residual block sees
    both. Everything else is ``UNet``'s.
    """

    def __init__(self, config: UNetConfig | None = None, n_classes: int = 10):
        super().__init__(config)
        self.n_classes = n_classes
        self.class_emb = nn.Embedding(n_classes + 1, self.config.time_dim)   # the last row: null

    def forward(self, xt: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Predict the noise.

        Args:
            xt: (B, C, H, W) noisy images.
            t: (B,) integer timesteps, or one int.
            y: (B,) labels in 0..n_classes (n_classes = null), one int, or None for null.
        Returns:
            (B, C, H, W) predicted noise.
        """
        cfg = self.config
        if xt.dim() != 4 or xt.shape[1] != cfg.in_channels:
            raise ValueError(f"CondUNet expects (B, {cfg.in_channels}, H, H), got {tuple(xt.shape)}")
        B = xt.shape[0]
        t = torch.as_tensor(t, device=xt.device)
        t = t.expand(B) if t.dim() == 0 else t                                # (B,)
        y = torch.as_tensor(self.n_classes if y is None else y, device=xt.device, dtype=torch.long)
        y = y.expand(B) if y.dim() == 0 else y                                # (B,)
        if ((y < 0) | (y > self.n_classes)).any():
            raise ValueError(f"labels must be in 0..{self.n_classes} ({self.n_classes} = null), got {y.tolist()}")
        temb = self.time_mlp(timestep_embedding(t, cfg.time_dim)) + self.class_emb(y)   # (B, time_dim)
        h1 = self.down1(self.conv_in(xt), temb)                              # (B, c, H, W)
        h2 = self.down2(self.pool1(h1), temb)                                # (B, 2c, H/2, W/2)
        h = self.mid2(self.mid1(self.pool2(h2), temb), temb)                 # (B, 2c, H/4, W/4)
        h = F.interpolate(h, size=h2.shape[-2:], mode="nearest")             # (B, 2c, H/2, W/2)
        h = self.up2(torch.cat([h, h2], dim=1), temb)                        # (B, 2c, H/2, W/2)
        h = F.interpolate(h, size=h1.shape[-2:], mode="nearest")             # (B, 2c, H, W)
        h = self.up1(torch.cat([h, h1], dim=1), temb)                        # (B, c, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))                       # (B, C, H, W)


# ---------------------------------------------------------------------------------------
# Training: condition dropout and the loss
# ---------------------------------------------------------------------------------------
def drop_condition(y: torch.Tensor, p_uncond: float, null_class: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null class with probability p_uncond, independently.

    Ho and Salimans (2022), Algorithm 1, line 3: "c <- null with probability p_uncond".
    1. draw u = torch.rand(B) (from ``generator``), one uniform number per example;
    2. where u < p_uncond the label becomes ``null_class``; the others are kept.

    Args:
        y: (B,) int64 labels.
    Returns:
        (B,) a new tensor (``y`` is not changed).
    """
    u = torch.rand(y.shape, generator=generator).to(y.device)              # (B,)
    return torch.where(u < p_uncond, torch.full_like(y, null_class), y)


def cond_diffusion_loss(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, alphas_cumprod: torch.Tensor,
                        p_uncond: float, null_class: int) -> torch.Tensor:
    """L_simple with a label that is sometimes dropped (Ho and Salimans, 2022, Algorithm 1).

    1. drop labels to the null class with probability p_uncond (``drop_condition``);
    2. draw t uniformly and eps ~ N(0, I), and noise x0 to xt (DDPM eq. 4);
    3. the mean squared error between eps and eps_theta(xt, t, y).

    Args:
        x0: (B, C, H, W) clean images in [-1, 1]; y: (B,) labels.
    Returns:
        A 0-d tensor.
    """
    y = drop_condition(y, p_uncond, null_class)                                       # 1.
    t = torch.randint(0, len(alphas_cumprod), (x0.shape[0],), device=x0.device)       # 2. (B,)
    eps = torch.randn_like(x0)
    xt = q_sample(x0, t, alphas_cumprod, eps)
    return F.mse_loss(model(xt, t, y), eps)                                           # 3.


# ---------------------------------------------------------------------------------------
# Sampling with guidance
# ---------------------------------------------------------------------------------------
def guided_eps(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance, Ho and Salimans (2022) eq. 6 in the "w = 1 is conditional" form.

    eps = eps_uncond + w * (eps_cond - eps_uncond). The paper writes (1 + w') eps_cond - w' eps_uncond;
    that is this formula with w = 1 + w'.
    """
    return eps_uncond + w * (eps_cond - eps_uncond)


def _both(model: nn.Module, xt: torch.Tensor, t: int, y: torch.Tensor, null_class: int):
    """(eps_uncond, eps_cond) from one network call on the batch stacked twice."""
    B = xt.shape[0]
    tt = torch.full((2 * B,), t, device=xt.device, dtype=torch.long)                  # (2B,)
    yy = torch.cat([torch.full_like(y, null_class), y])                              # (2B,)
    eps = model(torch.cat([xt, xt]), tt, yy)                                         # (2B, C, H, W)
    return eps[:B], eps[B:]


def guided_ddim_step(model: nn.Module, xt: torch.Tensor, t: int, t_prev: int, y: torch.Tensor, w: float,
                     alphas_cumprod: torch.Tensor, null_class: int) -> torch.Tensor:
    """One deterministic (eta = 0) DDIM step with classifier-free guidance.

    1. predict the noise without and with the label;
    2. mix them with ``guided_eps``;
    3. take chapter 07's ``ddim_step`` from t to t_prev (x0 clipped to [-1, 1]).
    """
    eps_uncond, eps_cond = _both(model, xt, t, y, null_class)
    return ddim_step(guided_eps(eps_uncond, eps_cond, w), t, t_prev, xt, alphas_cumprod)


@torch.no_grad()
def guided_sample(model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, w: float = 2.0,
                  n_steps: int = 20, generator: torch.Generator | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """Generate one image per label with guided DDIM (eta = 0).

    1. start from x_T ~ N(0, I) (drawn on the CPU from ``generator``, or the given ``noise``);
    2. for each pair of ``ddim_timesteps``: ``guided_ddim_step``; the last goes to -1 (clean).

    Args:
        model: a ``CondUNet`` (its ``n_classes`` is the null label).
        schedule: the NoiseSchedule it was trained with.
        labels: (N,) requested classes.
        w: guidance scale (0 unconditional, 1 conditional, > 1 guided).
    Returns:
        (N, C, H, W) samples in [-1, 1].
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    labels = torch.as_tensor(labels, dtype=torch.long).to(device)                    # (N,)
    cfg = model.config
    if noise is None:
        noise = torch.randn((len(labels), cfg.in_channels, cfg.image_size, cfg.image_size), generator=generator)
    x = noise.to(device)                                                             # (N, C, H, W)
    ts = ddim_timesteps(schedule.n_timesteps, n_steps)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        x = guided_ddim_step(model, x, t, t_prev, labels, w, schedule.alphas_cumprod, model.n_classes)
    model.train(was_training)
    return x


# ---------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------
def train_cond_diffusion(cfg: CondDiffusionConfig, data: tuple[torch.Tensor, torch.Tensor], n_steps: int, *,
                         device=None, seed: int = 0, progress: bool = True,
                         desc: str = "conditional diffusion") -> DiffusionRun:
    """Train a ``CondUNet`` with condition dropout (Ho and Salimans, 2022, Algorithm 1), keeping an EMA.

    Each step: 1. a minibatch of (image, label) pairs; 2. ``cond_diffusion_loss``; 3. Adam;
    4. update the moving average. Random numbers come from a stream seeded by ``seed``;
    the global random state is left as it was.

    Args:
        cfg: ``CondDiffusionConfig.preset(...)``.
        data: (x0, y): (N, C, H, W) images in [-1, 1] and (N,) int64 labels in 0..n_classes-1.
        n_steps: number of steps.
    Returns:
        A DiffusionRun; sample with ``guided_sample(run.ema_model, run.schedule, labels, w)``.
    """
    x0, y = data
    if len(x0) != len(y) or y.min() < 0 or y.max() >= cfg.n_classes:
        raise ValueError(f"need one label in 0..{cfg.n_classes - 1} per image")
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        schedule = NoiseSchedule.from_config(cfg).to(device)
        model = CondUNet(cfg.unet, cfg.n_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        ema = EMA(model, cfg.ema_decay)
        x0, y = x0.to(device), y.to(device)

        def train_step(step):
            idx = torch.randint(0, len(x0), (cfg.batch_size,), device=device)          # 1. minibatch
            loss = cond_diffusion_loss(model, x0[idx], y[idx], schedule.alphas_cumprod,
                                       cfg.p_uncond, cfg.null_class)                    # 2.
            opt.zero_grad()
            loss.backward()
            opt.step()                                                                   # 3.
            ema.update(model)                                                            # 4.
            return loss

        start = time.perf_counter()
        history = train(train_step, n_steps, desc=desc, show=progress)
        seconds = time.perf_counter() - start
    return DiffusionRun(model, history, cfg, seconds, ema_model=ema.model, schedule=schedule)


def train_digit_cfg(n_steps: int | None = None, *, device=None, seed: int = 0, progress: bool = True,
                    **overrides) -> DiffusionRun:
    """Lesson 14's model: the "digits" preset trained on the 8x8 digits' training split with labels.

    Args:
        n_steps: default ``coursekit.budget(LESSON_STEPS, fast=LESSON_STEPS_FAST)``.
        overrides: fields of ``CondDiffusionConfig`` (e.g. ``p_uncond=0.2``).
    """
    from coursekit.data import load_digits
    from coursekit.models.diffusion import to_model_range

    n_steps = budget(LESSON_STEPS, fast=LESSON_STEPS_FAST) if n_steps is None else n_steps
    digits = load_digits(seed=0)
    cfg = CondDiffusionConfig.preset("digits", **overrides)
    return train_cond_diffusion(cfg, (to_model_range(digits.x_train), digits.y_train), n_steps, device=device,
                                seed=seed, progress=progress, desc="digit-cfg")
