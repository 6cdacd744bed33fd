"""A small U-Net that predicts the noise in a noisy image, for diffusion models.

The shape of the network follows "U-Net: Convolutional Networks for Biomedical Image
Segmentation" (Ronneberger, Fischer and Brox, 2015) as adapted to diffusion by
"Denoising Diffusion Probabilistic Models" (Ho, Jain and Abbeel, 2020): residual
blocks with group normalisation, a sinusoidal embedding of the timestep added inside
every block, two downsamplings on the way in and two upsamplings on the way out, and
skip connections that carry each resolution's features across the "U".

Sizes: images are (B, C, H, W) with H = W divisible by 4 (8x8 digits by default;
16x16, 28x28 or 32x32 work too) and C = 1 (grey) or 3 (colour)::

    net = UNet(UNetConfig(image_size=28, in_channels=1))
    eps_hat = net(xt, t)          # xt: (B, 1, 28, 28), t: (B,) ints -> (B, 1, 28, 28)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from coursekit.models.embeddings import sinusoidal_embedding
from coursekit.models.presets import Presets


@dataclass
class UNetConfig(Presets):
    """Sizes of the U-Net."""

    image_size: int = 8       # height = width of the images; must be divisible by 4
    in_channels: int = 1      # image channels: 1 for grey, 3 for colour
    base_channels: int = 16   # channels at full resolution; doubled at each downsampling
    time_dim: int = 64        # size of the timestep embedding fed to every block
    n_groups: int = 8         # groups of GroupNorm; must divide base_channels


# Tiny named presets. "nano" is for tests; "digits" is the lesson's network (about 130k
# parameters); "mnist" and "rgb32" are opt-ins for larger images (train them on a GPU).
PRESETS: dict[str, UNetConfig] = {
    "nano": UNetConfig(base_channels=8, time_dim=16, n_groups=4),
    "digits": UNetConfig(),
    "mnist": UNetConfig(image_size=28, base_channels=32),
    "rgb32": UNetConfig(image_size=32, in_channels=3, base_channels=32),
}
UNET_PRESETS = PRESETS   # the name the diffusion tests use


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, as for positions in a Transformer.

    Args:
        t: (B,) timesteps (ints or floats).
        dim: embedding size (even).
    Returns:
        (B, dim) tensor: [cos(t * w_k), sin(t * w_k)] for dim/2 frequencies w_k
        spaced geometrically from 1 down to 1/max_period (``sinusoidal_embedding``).
    """
    return sinusoidal_embedding(t, dim, max_period, layout="cos-sin")                      # (B, dim)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; the time embedding is added between."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, n_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(n_groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2 = nn.GroupNorm(n_groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W), temb: (B, time_dim) -> (B, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))                               # (B, out, H, W)
        h = h + rearrange(self.time(F.silu(temb)), "b c -> b c 1 1")        # one shift per channel
        h = self.conv2(F.silu(self.norm2(h)))                               # (B, out, H, W)
        return h + self.skip(x)


class UNet(nn.Module):
    """Predicts the noise eps in xt, given xt and the timestep t.

    Layout (for 8x8 inputs and base_channels c)::

        8x8  in-conv c -> ResBlock c  ---------------------skip----------> cat -> ResBlock 2c+c -> c -> out-conv
        4x4         down -> ResBlock 2c  -----------skip---> cat -> ResBlock 4c -> 2c -> up
        2x2                 down -> ResBlock 2c -> ResBlock 2c -> up
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config or UNetConfig()
        if cfg.image_size % 4 != 0 or cfg.image_size < 4:
            raise ValueError(f"image_size must be a positive multiple of 4 (two 2x downsamplings), "
                             f"got {cfg.image_size}; pad or resize the images, e.g. 28 or 32")
        if cfg.base_channels % cfg.n_groups != 0:
            raise ValueError(f"n_groups ({cfg.n_groups}) must divide base_channels ({cfg.base_channels})")
        self.config = cfg
        c, td = cfg.base_channels, cfg.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.conv_in = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
        self.down1 = ResBlock(c, c, td, cfg.n_groups)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, td, cfg.n_groups)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid1 = ResBlock(2 * c, 2 * c, td, cfg.n_groups)
        self.mid2 = ResBlock(2 * c, 2 * c, td, cfg.n_groups)
        self.up2 = ResBlock(4 * c, 2 * c, td, cfg.n_groups)
        self.up1 = ResBlock(3 * c, c, td, cfg.n_groups)
        self.norm_out = nn.GroupNorm(cfg.n_groups, c)
        self.conv_out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)

    def forward(self, xt: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Predict the noise.

        Args:
            xt: (B, C, H, W) noisy images.
            t: (B,) integer timesteps, or one int for the whole batch.
        Returns:
            (B, C, H, W) predicted noise eps.
        """
        cfg = self.config
        if xt.dim() != 4 or xt.shape[1] != cfg.in_channels or xt.shape[-1] != xt.shape[-2] \
                or xt.shape[-1] % 4 != 0:
            raise ValueError(f"UNet expects (B, {cfg.in_channels}, H, H) with H divisible by 4, "
                             f"got {tuple(xt.shape)}")
        t = torch.as_tensor(t, device=xt.device)
        if t.dim() == 0:
            t = t.expand(xt.shape[0])                                         # (B,)
        temb = self.time_mlp(timestep_embedding(t, cfg.time_dim))            # (B, time_dim)
        h1 = self.down1(self.conv_in(xt), temb)                              # (B, c, H, W)
        h2 = self.down2(self.pool1(h1), temb)                                # (B, 2c, H/2, W/2)
        h = self.pool2(h2)                                                   # (B, 2c, H/4, W/4)
        h = self.mid2(self.mid1(h, temb), temb)                              # (B, 2c, H/4, W/4)
        h = F.interpolate(h, size=h2.shape[-2:], mode="nearest")             # (B, 2c, H/2, W/2)
        h = self.up2(torch.cat([h, h2], dim=1), temb)                        # (B, 2c, H/2, W/2)
        h = F.interpolate(h, size=h1.shape[-2:], mode="nearest")             # (B, 2c, H, W)
        h = self.up1(torch.cat([h, h1], dim=1), temb)                        # (B, c, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))                       # (B, C, H, W)
