"""Image preprocessing of chapter 08: standardisation, label-keeping augmentation, and
the experiment that measures what augmentation buys a classifier trained on few labels.

    x = standardise(images, mean, std)                     # zero mean, unit variance
    x_aug = augment(images, AugmentConfig(), generator=g)  # (B, 1, H, W) -> same shape
    result = augmentation_experiment(per_class=10, seeds=(0, 1, 2))

Augmentations follow Simard, Steinkraus & Platt (2003): small shifts and rotations of a
digit do not change which digit it is, so each training step can see a new version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.data.digits import DigitSplit


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each channel over a training set (N, C, H, W) -> (C,) x2."""
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per channel: (N, C, H, W) with (C,) statistics -> (N, C, H, W)."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1).clamp_min(1e-8)


@dataclass
class AugmentConfig:
    """Random, label-keeping changes applied to each image independently."""

    max_shift: float = 1.0      # largest shift, in pixels, along each axis
    max_degrees: float = 15.0   # largest rotation, either way
    noise_std: float = 0.05     # standard deviation of added Gaussian pixel noise


def augment(x: torch.Tensor, config: AugmentConfig | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """A random shift + rotation (bilinear, zero padding) and pixel noise per image.

    Args:
        x: (B, C, H, W) images with values in [0, 1].
    Returns:
        (B, C, H, W) in [0, 1].
    """
    cfg = config or AugmentConfig()
    B, _, H, W = x.shape
    u = torch.rand(B, 3, generator=generator, device="cpu").to(x.device) * 2 - 1   # (B, 3) in [-1, 1)
    angle = u[:, 0] * math.radians(cfg.max_degrees)                                # (B,)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / size
    tx, ty = u[:, 1] * cfg.max_shift * 2 / W, u[:, 2] * cfg.max_shift * 2 / H       # (B,)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1),
                         torch.stack([sin, cos, ty], 1)], 1).to(x.dtype)           # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)               # (B, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
    return (out + cfg.noise_std * noise).clamp(0, 1)


def few_labels(data: DigitSplit, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` training images of every digit, drawn with ``seed``: (10 k, 1, 8, 8), (10 k,)."""
    g = torch.Generator().manual_seed(seed)
    idx = []
    for c in range(int(data.y_train.max()) + 1):
        members = (data.y_train == c).nonzero().flatten()
        idx.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    idx = torch.cat(idx)
    return data.x_train[idx], data.y_train[idx]


def small_cnn(n_classes: int = 10) -> nn.Module:
    """A two-layer convolutional classifier for 8x8 images."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),          # (B, 16, 8, 8)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),         # (B, 32, 8, 8)
        nn.MaxPool2d(2), nn.Flatten(),                      # (B, 512)
        nn.Linear(32 * 16, n_classes))


def train_classifier(x: torch.Tensor, y: torch.Tensor, n_steps: int, seed: int = 0,
                     augment_config: AugmentConfig | None = None, lr: float = 3e-3) -> nn.Module:
    """Train :func:`small_cnn` full-batch with Adam on images in [0, 1]; with
    ``augment_config`` each step sees a fresh augmented copy of every image."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(n_steps):
        xb = augment(x, augment_config, g) if augment_config is not None else x
        loss = F.cross_entropy(model(xb), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` that ``model`` labels correctly."""
    return (model(x).argmax(1) == y).double().mean().item()


@dataclass
class AugmentResult:
    """Validation accuracy per seed, without and with augmentation."""

    plain: list[float] = field(default_factory=list)
    augmented: list[float] = field(default_factory=list)

    @property
    def gain(self) -> float:
        """Mean accuracy with augmentation minus mean accuracy without."""
        return sum(self.augmented) / len(self.augmented) - sum(self.plain) / len(self.plain)


def augmentation_experiment(data: DigitSplit, per_class: int = 10, seeds=(0, 1, 2),
                            n_steps: int = 300, config: AugmentConfig | None = None,
                            progress: bool = False) -> AugmentResult:
    """For each seed: draw ``per_class`` labelled images per digit, train the same CNN
    with and without augmentation, and measure accuracy on the whole validation split."""
    config = config or AugmentConfig()
    result = AugmentResult()
    seeds = list(seeds)
    if progress:
        from coursekit.train import progress as _progress
        seeds = _progress(seeds, desc="seeds")
    for seed in seeds:
        x, y = few_labels(data, per_class, seed)
        result.plain.append(accuracy(train_classifier(x, y, n_steps, seed), data.x_val, data.y_val))
        result.augmented.append(accuracy(train_classifier(x, y, n_steps, seed, config),
                                         data.x_val, data.y_val))
    return result
