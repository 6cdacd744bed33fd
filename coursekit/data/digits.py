"""scikit-learn's 8x8 handwritten digits (1,797 images, bundled, no download) as tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DigitSplit:
    """Train and validation tensors. Images are (N, 1, 8, 8) floats in [0, 1]."""

    x_train: torch.Tensor  # (N_train, 1, 8, 8)
    y_train: torch.Tensor  # (N_train,) int64 labels 0..9
    x_val: torch.Tensor    # (N_val, 1, 8, 8)
    y_val: torch.Tensor    # (N_val,)

    def to(self, device) -> "DigitSplit":
        """Move all four tensors to ``device``."""
        return DigitSplit(*(t.to(device) for t in (self.x_train, self.y_train, self.x_val, self.y_val)))

    def __repr__(self) -> str:
        return (f"DigitSplit(x_train={tuple(self.x_train.shape)}, x_val={tuple(self.x_val.shape)}, "
                f"classes={int(self.y_train.max()) + 1})")


def load_digits(val_fraction: float = 0.2, seed: int = 0, device=None) -> DigitSplit:
    """Load the 8x8 digits, scaled from 0..16 to [0, 1], split at random into train/val.

    Args:
        val_fraction: share of images held out for validation (0 < val_fraction < 1).
        seed: seed of the random split (the same seed gives the same split).
        device: where to put the tensors (default CPU).
    Returns:
        A DigitSplit.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)                        # (1797,)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(x) * val_fraction))
    val, tr = order[:n_val], order[n_val:]
    split = DigitSplit(x[tr], y[tr], x[val], y[val])
    return split.to(device) if device is not None else split
