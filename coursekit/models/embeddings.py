"""The sinusoidal encoding of a number (a position, a timestep), the one the course uses.

"Attention Is All You Need" (Vaswani et al., 2017, section 3.5) encodes position p by
sines and cosines of p at geometrically spaced frequencies w_i = 1 / max_period^(2i/C);
DDPM's U-Net encodes the timestep t the same way. GPT's positions interleave the pairs
(sin, cos, sin, cos, ...); the U-Net's timestep embedding puts the cosines first and the
sines after. Both are this function, laid out two ways.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10_000.0,
                         layout: str = "interleaved") -> torch.Tensor:
    """sin and cos of ``values`` at dim/2 frequencies from 1 down to 1/max_period.

    Args:
        values: (N,) positions or timesteps (ints or floats).
        dim: embedding size C (even).
        max_period: the slowest wavelength.
        layout: "interleaved" -> [sin w0, cos w0, sin w1, cos w1, ...] (Transformer
            positions); "cos-sin" -> [cos w0, cos w1, ..., sin w0, sin w1, ...] (DDPM's U-Net).
    Returns:
        (N, dim) float32 tensor.
    """
    if dim % 2:
        raise ValueError(f"a sinusoidal embedding needs an even size, got {dim}")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=values.device)
    freqs = torch.exp(-math.log(max_period) * k / half)                                  # (C/2,)
    angles = values.float()[:, None] * freqs[None, :]                                    # (N, C/2)
    if layout == "interleaved":
        pairs = torch.stack([angles.sin(), angles.cos()], dim=-1)                        # (N, C/2, 2)
        return rearrange(pairs, "n half two -> n (half two)")                             # (N, C)
    if layout == "cos-sin":
        return torch.cat([angles.cos(), angles.sin()], dim=1)                             # (N, C)
    raise ValueError(f"layout must be 'interleaved' or 'cos-sin', got {layout!r}")
