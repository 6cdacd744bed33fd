"""2-D toy distributions: moons, rings and grids of Gaussians, spirals, blobs.

Every generator takes ``n`` and ``seed`` and returns float32 tensors; those with classes
or modes also return an int64 label per point.
"""
from __future__ import annotations

import math

import torch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")


def make_moons(n: int = 500, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles. Returns points (n, 2) and labels (n,) in {0, 1}."""
    _check_n(n)
    g = _gen(seed)
    n0 = n // 2
    t = torch.rand(n, generator=g) * math.pi
    outer = torch.stack([torch.cos(t[:n0]), torch.sin(t[:n0])], 1)
    inner = torch.stack([1 - torch.cos(t[n0:]), 0.5 - torch.sin(t[n0:])], 1)
    x = torch.cat([outer, inner]) + noise * torch.randn(n, 2, generator=g)
    y = torch.cat([torch.zeros(n0), torch.ones(n - n0)]).long()
    perm = torch.randperm(n, generator=g)
    return x[perm], y[perm]


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Centres of ``n_modes`` Gaussians evenly spaced on a circle. Shape (n_modes, 2)."""
    angles = torch.arange(n_modes) * 2 * math.pi / n_modes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)


def ring_of_gaussians(n: int = 2500, n_modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points from a mixture of Gaussians on a ring (the GAN mode-collapse test bed).

    Returns:
        points (n, 2) and the mode index of each point (n,).
    """
    _check_n(n)
    g = _gen(seed)
    mode = torch.randint(0, n_modes, (n,), generator=g)
    x = ring_centers(n_modes, radius)[mode] + std * torch.randn(n, 2, generator=g)
    return x, mode


def grid_centers(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """Centres of a ``side`` x ``side`` grid centred on the origin. Shape (side**2, 2)."""
    coords = (torch.arange(side) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def grid_of_gaussians(n: int = 2500, side: int = 5, spacing: float = 2.0, std: float = 0.05,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points from Gaussians on a square grid. Returns points (n, 2) and mode indices (n,)."""
    _check_n(n)
    g = _gen(seed)
    centres = grid_centers(side, spacing)
    mode = torch.randint(0, len(centres), (n,), generator=g)
    return centres[mode] + std * torch.randn(n, 2, generator=g), mode


def spirals(n: int = 1000, n_arms: int = 2, noise: float = 0.05, turns: float = 1.5,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved spiral arms. Returns points (n, 2) and the arm index (n,)."""
    _check_n(n)
    g = _gen(seed)
    arm = torch.arange(n) % n_arms
    t = torch.rand(n, generator=g).sqrt()                  # more points far out
    angle = t * turns * 2 * math.pi + arm * 2 * math.pi / n_arms
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], 1)
    x = x + noise * torch.randn(n, 2, generator=g)
    perm = torch.randperm(n, generator=g)
    return x[perm], arm[perm]


def two_blobs(n: int = 400, distance: float = 2.0, std: float = 0.6,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs ``distance`` apart. Returns points (n, 2) and labels (n,)."""
    _check_n(n)
    g = _gen(seed)
    y = (torch.arange(n) % 2).long()
    centres = torch.tensor([[-distance / 2, 0.0], [distance / 2, 0.0]])
    x = centres[y] + std * torch.randn(n, 2, generator=g)
    perm = torch.randperm(n, generator=g)
    return x[perm], y[perm]
