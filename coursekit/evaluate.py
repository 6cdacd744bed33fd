"""Scoring generated digit images with a small classifier trained on real digits.

Used only for evaluation (benchmarks and lesson comparisons of GAN, VAE and diffusion
samples). The score is in the spirit of the Inception score ("Improved Techniques for
Training GANs", Salimans et al., 2016): confident predictions on each sample, spread
over all ten classes across samples.
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F


class DigitClassifier(nn.Module):
    """A small CNN for (N, 1, 8, 8) digits in [0, 1] -> (N, 10) logits."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),           # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),          # (N, 64, 8, 8)
            nn.MaxPool2d(2),                                     # (N, 64, 4, 4)
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 16, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@functools.lru_cache(maxsize=2)
def digit_classifier(seed: int = 0, epochs: int = 30) -> DigitClassifier:
    """Train (once per process, then cached) the evaluation classifier on the train split.

    Takes a few seconds on a CPU and reaches about 98% validation accuracy. Always runs
    on the CPU so its scores do not depend on the device.
    """
    from coursekit.data import load_digits

    data = load_digits(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    # Its own random state (dropout uses the global one) and gradients on, whatever the
    # caller's: the same classifier, and so the same scores, in every process.
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(seed)
        model = DigitClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        n = len(data.x_train)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(n, generator=gen).split(128):
                x = data.x_train[idx]
                x = x + 0.05 * torch.randn(x.shape, generator=gen)  # noise: robust to samples
                loss = F.cross_entropy(model(x), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    with torch.no_grad():
        model.val_accuracy = (model(data.x_val).argmax(1) == data.y_val).float().mean().item()
    return model


@torch.no_grad()
def digit_quality(samples: torch.Tensor, classifier: DigitClassifier | None = None) -> dict[str, float]:
    """Score a batch of digit images.

    Args:
        samples: (N, 1, 8, 8) or (N, 64) images with values in [0, 1].
    Returns:
        confidence: mean top-class probability (1.0 = every sample clearly a digit);
        class_entropy: entropy (nats) of the mean predicted class distribution
            (log 10 = 2.303 when all ten digits are equally frequent);
        score: exp(E_x KL(p(y|x) || p(y))), the Inception-score-like figure (1 to 10);
        classes_covered: how many digits are the top class of at least 1% of samples.
    """
    x = torch.as_tensor(samples).detach().float().cpu()
    if x.dim() == 2 and x.shape[1] == 64:
        x = x.view(-1, 1, 8, 8)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"digit_quality expects (N, 1, 8, 8) or (N, 64) images, got {tuple(x.shape)}")
    clf = classifier or digit_classifier()
    p = F.softmax(clf(x.clamp(0, 1)), dim=1)                    # (N, 10)
    p_y = p.mean(0)                                              # (10,)
    kl = (p * (p.clamp_min(1e-12).log() - p_y.clamp_min(1e-12).log())).sum(1)  # (N,)
    counts = torch.bincount(p.argmax(1), minlength=10).float() / len(p)
    return {
        "confidence": p.max(1).values.mean().item(),
        "class_entropy": -(p_y * p_y.clamp_min(1e-12).log()).sum().item(),
        "score": kl.mean().exp().item(),
        "classes_covered": int((counts >= 0.01).sum().item()),
    }
