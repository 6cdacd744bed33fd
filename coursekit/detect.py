"""Detecting generated digits (lesson 17): real scans against the course's generators.

A detector is a binary classifier, real (0) against generated (1). Trained on samples of
some generators, it is tested on real images it never saw and on every generator, the ones
it was trained against ("seen") and the ones it was not ("unseen"). Generated pixels are
rounded to the 17 grey levels of the real scans (0, 1/16, ..., 1) first: otherwise a
detector wins by spotting levels no scan has, a shortcut that says nothing about the images.

    fakes = {name: generator_samples(name, 600, seed=1) for name in GENERATORS}
    det = train_detector(real_train, {"vae": fakes["vae"], "gan": fakes["gan"]})
    flagged_share(det, fakes["diffusion"])      # share of an unseen generator's images caught
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.train import progress as _progress

GENERATORS = ("vae", "gan", "diffusion", "cfg")
ABOUT = {"vae": "VAE (chapter 05)", "gan": "GAN (chapter 04)",
         "diffusion": "diffusion, DDIM 20 steps (chapter 07)",
         "cfg": "class-conditional diffusion, w = 2 (chapter 14)"}


def quantise(x: torch.Tensor, levels: int = 16) -> torch.Tensor:
    """Round images in [0, 1] to the grid 0, 1/levels, ..., 1 (the real scans' grey levels)."""
    return (x.clamp(0, 1) * levels).round() / levels


@torch.no_grad()
def generator_samples(name: str, n: int, seed: int = 0, device=None) -> torch.Tensor:
    """``n`` images (n, 1, 8, 8) in [0, 1] from a zoo generator, quantised like the scans."""
    import coursekit.zoo as zoo
    from coursekit.models import gan
    from coursekit.models.cond_diffusion import guided_sample
    from coursekit.models.diffusion import ddim_sample, from_model_range

    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}: choose one of {', '.join(GENERATORS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    g = torch.Generator().manual_seed(seed)
    if name == "vae":
        model = zoo.load("digit-vae", device=device, progress=False).model
        x = model.sample(n, generator=g).cpu()
    elif name == "gan":
        G = zoo.load("digit-gan", device=device, progress=False).model
        x = gan.sample(G, n, seed=seed).cpu()
    elif name == "diffusion":
        run = zoo.load("digit-diffusion", device=device, progress=False)
        x = from_model_range(ddim_sample(run.model, run.schedule, n=n, n_steps=20, generator=g)).cpu()
    else:
        run = zoo.load("digit-cfg", device=device, progress=False)
        labels = torch.randint(0, 10, (n,), generator=g)
        x = from_model_range(guided_sample(run.model, run.schedule, labels, w=2.0, generator=g)).cpu()
    return quantise(x.reshape(n, 1, 8, 8))


class Detector(nn.Module):
    """A small CNN: (N, 1, 8, 8) images -> (N,) logits of "generated"."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),              # (N, w, 8, 8)
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),          # (N, w, 8, 8)
            nn.MaxPool2d(2), nn.Flatten(),                             # (N, 16 w)
            nn.Linear(16 * width, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    @torch.no_grad()
    def prob_generated(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) probability that each image is generated."""
        self.eval()
        return torch.sigmoid(self(x))


def _check_images(x: torch.Tensor, what: str) -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{what} must be images of shape (N, 1, 8, 8), got {shape}")


def train_detector(real: torch.Tensor, fakes: dict[str, torch.Tensor], epochs: int = 15,
                   seed: int = 0, progress: bool = True) -> Detector:
    """Train a ``Detector`` on ``real`` images (label 0) against the generated images in
    ``fakes`` (label 1), each generator weighted so that real and generated count equally."""
    _check_images(real, "real")
    if not fakes:
        raise ValueError("fakes is empty: give at least one generator's samples to train against")
    for name, x in fakes.items():
        _check_images(x, f"fakes[{name!r}]")
    fake = torch.cat(list(fakes.values()))
    x = torch.cat([real, fake])
    y = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])
    # weights: the real images carry half the loss, the generated ones the other half
    w = torch.cat([torch.full((len(real),), 0.5 / len(real)), torch.full((len(fake),), 0.5 / len(fake))])
    w = w * len(x)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(seed)
        det = Detector()
        opt = torch.optim.Adam(det.parameters(), lr=2e-3)
        for _ in _progress(epochs, desc="detector", disable=not progress, leave=False):
            det.train()
            for idx in torch.randperm(len(x), generator=g).split(128):
                loss = (F.binary_cross_entropy_with_logits(det(x[idx]), y[idx], reduction="none")
                        * w[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    return det.eval()


def flagged_share(det: Detector, x: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of images ``x`` the detector calls generated (on real images: its false alarms)."""
    _check_images(x, "x")
    return (det.prob_generated(x) > threshold).float().mean().item()


def rate_at_fpr(null_scores: torch.Tensor, scores: torch.Tensor, fpr: float) -> tuple[float, float]:
    """(threshold, detection rate) at a false-positive rate calibrated on ``null_scores``.

    ``null_scores`` are the detector's scores on negatives (real images, unwatermarked text);
    the threshold is the (floor(fpr N) + 1)-th largest of them, so at most a share ``fpr``
    of the negatives score strictly above it. The detection rate is the share of ``scores``
    (the positives) strictly above the threshold.
    """
    null_scores = torch.as_tensor(null_scores, dtype=torch.float64).flatten()
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    if len(null_scores) == 0 or len(scores) == 0:
        raise ValueError("both null_scores and scores need at least one score")
    k = int(fpr * len(null_scores))
    threshold = null_scores.sort(descending=True).values[k].item()
    return threshold, (scores > threshold).double().mean().item()
