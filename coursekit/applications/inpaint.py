"""Filling in the hidden part of a digit with a diffusion model that never saw a mask (chapter 15).

The replacement trick: run the reverse process as usual, and after every step overwrite the
pixels we know with the known image noised to the same step, ``q(x_t' | x0)``. The model fills the
rest so that it fits. RePaint (Lugmayr et al., 2022) adds resampling: it jumps back and forth a
few times per step so that the two parts agree better; this module does the plain version.
"""
from __future__ import annotations

import torch
from torch import nn

from coursekit.models.cond_diffusion import guided_ddim_step
from coursekit.models.diffusion import NoiseSchedule, ddim_timesteps


def half_mask(n: int, size: int = 8, hide: str = "bottom") -> torch.Tensor:
    """(n, 1, size, size) masks, 1 where the pixel is known, 0 where it is hidden:
    ``hide`` = "bottom", "top", "left" or "right" half."""
    if hide not in ("bottom", "top", "left", "right"):
        raise ValueError(f"hide must be 'bottom', 'top', 'left' or 'right', got {hide!r}")
    mask = torch.ones(n, 1, size, size)
    h = size // 2
    region = {"bottom": (slice(h, None), slice(None)), "top": (slice(None, h), slice(None)),
              "left": (slice(None), slice(None, h)), "right": (slice(None), slice(h, None))}[hide]
    mask[:, :, region[0], region[1]] = 0
    return mask


def replace_known(x: torch.Tensor, x0_known: torch.Tensor, mask: torch.Tensor, t_prev: int,
                  alphas_cumprod: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The replacement after one reverse step to ``t_prev``.

    1. noise the known image to step t_prev: sqrt(abar) x0 + sqrt(1 - abar) eps, eps ~ N(0, I)
       drawn from ``generator`` (abar = 1 at t_prev = -1: the clean image);
    2. keep the model's pixels where ``mask`` is 0 and the noised known ones where it is 1.

    Args:
        x: (B, C, H, W) the model's images at t_prev; x0_known: (B, C, H, W) in [-1, 1];
        mask: (B, C, H, W) or broadcastable, 1 = known; alphas_cumprod: (T,) the schedule's abar.
    Returns:
        (B, C, H, W) images at t_prev.
    """
    eps = torch.randn(x0_known.shape, generator=generator).to(x0_known.device)         # (B, C, H, W)
    abar = alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones((), dtype=x0_known.dtype)
    known = abar.sqrt() * x0_known + (1 - abar).sqrt() * eps
    return mask * known + (1 - mask) * x


@torch.no_grad()
def inpaint(model: nn.Module, schedule: NoiseSchedule, x0_known: torch.Tensor, mask: torch.Tensor,
            labels: torch.Tensor | None = None, w: float = 1.0, n_steps: int = 50,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill the pixels where ``mask`` is 0 with guided DDIM and replacement.

    1. start from noise x_T (where the mask is 1, the known image noised to T);
    2. for each pair of ``ddim_timesteps``: a guided DDIM step (``labels`` None: the null class,
       i.e. the model must guess the digit from the visible pixels), then ``replace_known``.

    Args:
        model: a ``CondUNet``; schedule: its NoiseSchedule; x0_known: (B, 1, 8, 8) in [-1, 1];
        mask: (B, 1, 8, 8), 1 = known; labels: (B,) digits or None; w: guidance scale.
    Returns:
        (B, 1, 8, 8) images in [-1, 1] that equal ``x0_known`` where the mask is 1.
    """
    if x0_known.shape[0] != mask.shape[0] or x0_known.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit the images {tuple(x0_known.shape)}")
    was_training = model.training
    model.eval()
    B = x0_known.shape[0]
    null = model.n_classes
    y = torch.full((B,), null, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long)
    ts = ddim_timesteps(schedule.n_timesteps, n_steps)
    abar = schedule.alphas_cumprod
    x = torch.randn(x0_known.shape, generator=generator)                              # x_T: (B, 1, 8, 8)
    x = replace_known(x, x0_known, mask, ts[0], abar, generator)
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        x = guided_ddim_step(model, x, t, t_prev, y, w, abar, null)
        x = replace_known(x, x0_known, mask, t_prev, abar, generator)
    model.train(was_training)
    return x
