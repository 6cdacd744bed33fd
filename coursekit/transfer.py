"""Transfer learning on images (chapter 10): features learned on digits 0-4 reused for 5-9.

A small convolutional classifier learns digits 0-4 from every training image. Its body
(its convolutions, everything before the last layer) turns an 8x8 image into 512 features. For
digits 5-9 only a handful of labelled images per class are given; two ways to use them:

* transfer: keep the body frozen and fit only a new last layer on its features;
* from scratch: train the same network, all of it, on the handful of images alone;
* the control, a random body: a body that never trained, frozen, with a new last layer.
  Transfer has helped only if it beats this one too (random convolutions keep much of an
  image's pixels, which on 8x8 digits is already a lot).

    body = train_source_body(seed=0)                      # digits 0-4, every image
    few_shot_accuracy(body, n_per_class=5, seed=0)        # {"transfer": ..., "scratch": ..., "random body": ...}
"""
from __future__ import annotations

import torch
from torch import nn

from coursekit.data.digits import DigitSplit, load_digits

SOURCE = (0, 1, 2, 3, 4)   # the classes the body is trained on
TARGET = (5, 6, 7, 8, 9)   # the new classes, seen with a few labels each


N_FEATURES = 512          # what the body gives per image: 32 channels x 4 x 4


def make_body() -> nn.Sequential:
    """(B, 1, 8, 8) images -> (B, 512) features: two 3x3 convolutions and a pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),                # (B, 16, 8, 8)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),               # (B, 32, 8, 8)
        nn.MaxPool2d(2),                                           # (B, 32, 4, 4)
        nn.Flatten())                                              # (B, 512)


def _subset(x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]):
    keep = torch.isin(y, torch.tensor(classes))
    labels = torch.tensor([classes.index(int(c)) if int(c) in classes else -1 for c in y])
    return x[keep], labels[keep]


def _fit(model: nn.Module, params, x, y, steps: int, lr: float, g: torch.Generator, batch: int = 64) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        i = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of images whose most likely class is the label."""
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()


def train_source_body(seed: int = 0, steps: int = 400, split: DigitSplit | None = None) -> nn.Sequential:
    """Train body + a 5-way head on every training image of digits 0-4; return the body (frozen).

    The global random state is left as it was.
    """
    split = split or load_digits(seed=0)
    x, y = _subset(split.x_train, split.y_train, SOURCE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = make_body()
        model = nn.Sequential(body, nn.Linear(N_FEATURES, len(SOURCE)))
        model.train()
        _fit(model, model.parameters(), x, y, steps, 3e-3, torch.Generator().manual_seed(seed))
    body.eval()
    return body.requires_grad_(False)


def few_shot_split(n_per_class: int, seed: int, split: DigitSplit | None = None):
    """``n_per_class`` training images of each of digits 5-9 (labels 0-4), and all their validation images."""
    split = split or load_digits(seed=0)
    x, y = _subset(split.x_train, split.y_train, TARGET)
    g = torch.Generator().manual_seed(seed)
    picks = torch.cat([torch.nonzero(y == c)[:, 0][torch.randperm(int((y == c).sum()), generator=g)[:n_per_class]]
                       for c in range(len(TARGET))])
    xv, yv = _subset(split.x_val, split.y_val, TARGET)
    return x[picks], y[picks], xv, yv


def few_shot_accuracy(body: nn.Sequential, n_per_class: int = 5, seed: int = 0, steps: int = 200,
                      split: DigitSplit | None = None) -> dict[str, float]:
    """Validation accuracy on digits 5-9 from ``n_per_class`` labels each: transfer and from scratch.

    Returns:
        ``{"transfer": acc, "scratch": acc, "random body": acc}``: a new head on the frozen
        ``body``; the same network trained from a random start on the same few images; a new
        head on a frozen body that was never trained (the control).
    """
    x, y, xv, yv = few_shot_split(n_per_class, seed, split)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1000 + seed)
        head = nn.Linear(N_FEATURES, len(TARGET))
        transfer = nn.Sequential(body, head)
        _fit(transfer, head.parameters(), x, y, steps, 1e-2, torch.Generator().manual_seed(seed))
        scratch = nn.Sequential(make_body(), nn.Linear(N_FEATURES, len(TARGET)))
        scratch.train()
        _fit(scratch, scratch.parameters(), x, y, steps, 3e-3, torch.Generator().manual_seed(seed))
        random_head = nn.Linear(N_FEATURES, len(TARGET))
        control = nn.Sequential(make_body().requires_grad_(False), random_head)
        _fit(control, random_head.parameters(), x, y, steps, 1e-2, torch.Generator().manual_seed(seed))
    return {"transfer": accuracy(transfer, xv, yv), "scratch": accuracy(scratch, xv, yv),
            "random body": accuracy(control, xv, yv)}
