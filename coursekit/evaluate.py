"""Scoring generated samples: digit images with a small classifier, text with counts.

Images: used for evaluation (benchmarks and lesson comparisons of GAN, VAE and diffusion
samples). The score is in the spirit of the Inception score ("Improved Techniques for
Training GANs", Salimans et al., 2016): confident predictions on each sample, spread
over all ten classes across samples.

Text (chapter 13, comparing decoding methods): ``sequence_nll`` (likelihood under a
scorer model), ``distinct_n`` and ``self_similarity`` (diversity across samples),
``repetition`` (loops inside a sample), ``fact_accuracy`` (the story world's facts).
Words are whitespace-separated pieces of text, punctuation attached.

Points (chapter 04, mode collapse on 2-D mixtures): ``mode_stats``, the VEEGAN paper's
modes covered and high-quality share.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

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



@torch.no_grad()
def within_class_diversity(samples: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean distance between two images of the same class, averaged over the classes (chapter 14).

    For each class with at least two images: the mean Euclidean distance (in pixel space)
    over all pairs of its images; then the mean over those classes. A model that draws the
    same image for every request of a class scores 0; real digits score well above.

    Args:
        samples: (N, 1, 8, 8) or (N, D) images in [0, 1].
        labels: (N,) the class of each image (the requested class for generated ones).
    Returns:
        The diversity (nan when no class has two images).
    """
    x = torch.as_tensor(samples).detach().float().cpu().flatten(1)              # (N, D)
    labels = torch.as_tensor(labels).cpu()
    per_class = []
    for c in labels.unique():
        xc = x[labels == c]                                                       # (n_c, D)
        if len(xc) >= 2:
            d = torch.cdist(xc, xc)                                               # (n_c, n_c)
            per_class.append(d.sum() / (len(xc) * (len(xc) - 1)))
    return torch.stack(per_class).mean().item() if per_class else float("nan")

# --- text --------------------------------------------------------------------------------

def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    """The word n-grams of ``text`` in order (words split on whitespace)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    words = text.split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): distinct word n-grams / all word n-grams, over all ``texts``.

    1.0 when no n-gram occurs twice anywhere; near 0 when the samples say the same thing
    over and over. 0.0 when the texts hold no n-gram at all.
    """
    grams = [g for text in texts for g in ngrams(text, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str, n: int = 4) -> float:
    """Share of the word n-grams of one text that already occurred earlier in it.

    0.0 for a text that never repeats itself; close to 1 for a text stuck in a loop.
    ("rep-n" in the spirit of Welleck et al., 2019, "Neural Text Generation with
    Unlikelihood Training".)
    """
    grams = ngrams(text, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def self_similarity(texts: list[str], n: int = 2) -> float:
    """Mean Jaccard overlap of the word n-gram sets of every pair of ``texts`` (0 to 1).

    A simple stand-in for Self-BLEU (Zhu et al., 2018): 1.0 when every sample has the
    same n-grams, 0.0 when no two samples share one.
    """
    sets = [set(ngrams(t, n)) for t in texts]
    pairs = [(a, b) for a, b in itertools.combinations(sets, 2) if a or b]
    if not pairs:
        return 0.0
    return sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs)


_LANDMARK = re.compile(r"\bIn ([A-Z][a-z]+) there is ([a-z][a-z ]*?)[.,]")
_KNOWN_FOR = re.compile(r"\b([A-Z][a-z]+) is known for ([a-z][a-z ]*?)[.,]")


def fact_claims(text: str) -> list[tuple[str, str, str]]:
    """The story-world claims in ``text``: (kind, town, value) with kind "landmark" or "known_for".

    Claims are the corpus's two sentence forms, "In <town> there is <landmark>." and
    "<town> is known for <specialty>." (a sentence may end with "," or ".").
    """
    found = [(m.start(), "landmark", m.group(1), m.group(2)) for m in _LANDMARK.finditer(text)]
    found += [(m.start(), "known_for", m.group(1), m.group(2)) for m in _KNOWN_FOR.finditer(text)]
    return [tuple(claim) for _, *claim in sorted(found)]


def fact_accuracy(texts: list[str], world) -> tuple[float, int]:
    """Share of the story-world claims in ``texts`` that are true in ``world``.

    Args:
        texts: generated text.
        world: a ``coursekit.data.stories.StoryWorld`` (its ``landmark`` and ``known_for``).
    Returns:
        (accuracy, number of claims); accuracy is nan when there is no claim. A claim
        about a town that does not exist counts as wrong.
    """
    claims = [c for t in texts for c in fact_claims(t)]
    if not claims:
        return float("nan"), 0
    table = {"landmark": world.landmark, "known_for": world.known_for}
    right = sum(table[kind].get(town) == value for kind, town, value in claims)
    return right / len(claims), len(claims)


@torch.no_grad()
def sequence_nll(model, idx: torch.Tensor, start: int, stride: int | None = None) -> torch.Tensor:
    """Mean negative log-likelihood (nats per token) of ``idx[:, start:]`` under ``model``.

    Each token is predicted from the tokens before it; a sequence longer than the model's
    ``block_size`` is read in windows of ``block_size`` tokens that move by ``stride``
    tokens (default half a block), so a scored token past the first window sees at least
    ``block_size - stride + 1`` tokens of context.

    Args:
        model: a GPT-like model (``model(idx) -> (logits, loss)``, ``config.block_size``).
        idx: (B, T) token ids; start: first scored position (>= 1, e.g. the prompt length).
    Returns:
        (B,) mean nats per scored token of each row.
    """
    B, T = idx.shape
    block = model.config.block_size
    stride = stride or block // 2
    if not 1 <= start < T:
        raise ValueError(f"start must be in [1, {T - 1}], got {start}")
    if not 1 <= stride <= block:
        raise ValueError(f"stride must be in [1, block_size = {block}], got {stride}")
    was_training = model.training
    model.eval()
    total = torch.zeros(B, dtype=torch.float64)
    lo, hi = start, min(T, block + 1)                  # score positions lo .. hi - 1
    while True:
        first = max(0, hi - 1 - block)
        window = idx[:, first:hi - 1]                                               # (B, <= block) inputs
        logp = F.log_softmax(model(window)[0].float(), dim=-1)                      # (B, t, V)
        # the token at position p is predicted by the window's position p - 1 - first
        pos = torch.arange(lo, hi)
        picked = logp[:, pos - 1 - first].gather(-1, idx[:, pos, None].to(logp.device))[..., 0]
        total -= picked.double().sum(1).cpu()
        if hi == T:
            break
        lo, hi = hi, min(T, hi + stride)
    model.train(was_training)
    return (total / (T - start)).float()


@torch.no_grad()
def texts_nll(run, texts: list[str], n_chars: int | None = None) -> torch.Tensor:
    """(len(texts),) nats per character of each text under a character model ``run``
    (an ``LMRun``), all cut to the same ``n_chars`` (default: the shortest text's length)
    so that every text is scored over as many characters with the same context."""
    if not texts:
        raise ValueError("no texts to score")
    n = min(len(t) for t in texts) if n_chars is None else int(n_chars)
    if n < 2 or any(len(t) < n for t in texts):
        raise ValueError(f"every text needs at least n_chars = {n} >= 2 characters; "
                         f"the shortest has {min(len(t) for t in texts)}")
    device = next(run.model.parameters()).device
    ids = torch.stack([run.tokenizer.encode(t[:n]) for t in texts]).to(device)     # (B, n)
    return sequence_nll(run.model, ids, start=1)


# -- the GAN lesson's mixtures: mode coverage and sample quality ---------------------------


@dataclass
class ModeStats:
    """Mode coverage and sample quality of generated points on a Gaussian mixture."""

    modes_covered: int        # modes holding at least ``min_share`` of all samples
    n_modes: int              # modes in the mixture
    high_quality: float       # share of samples within n_std standard deviations of a centre
    shares: torch.Tensor      # (n_modes,) share of all samples that are high quality at each mode

    def __str__(self) -> str:
        return (f"{self.modes_covered}/{self.n_modes} modes covered, "
                f"{100 * self.high_quality:.1f}% high-quality samples")


@torch.no_grad()
def mode_stats(samples: torch.Tensor, centres: torch.Tensor, std: float, n_std: float = 3.0,
               min_share: float = 0.01) -> ModeStats:
    """Modes covered and high-quality share, as in the VEEGAN paper (Srivastava et al., 2017).

    1. A sample is *high quality* when it lies within ``n_std * std`` of its nearest centre.
    2. A mode is *covered* when at least ``min_share`` of all samples are high-quality
       samples of that mode.

    Args:
        samples: generated points (N, 2).
        centres: the mixture's centres (K, 2).
        std: the standard deviation of each Gaussian.
    Returns:
        A ModeStats.
    """
    x = torch.as_tensor(samples).detach().float().cpu()
    c = torch.as_tensor(centres).detach().float().cpu()
    dist, nearest = torch.cdist(x, c).min(dim=1)                        # (N,), (N,)
    good = dist < n_std * std                                           # (N,)
    shares = torch.bincount(nearest[good], minlength=len(c)).float() / max(len(x), 1)  # (K,)
    return ModeStats(int((shares >= min_share).sum()), len(c),
                     good.float().mean().item() if len(x) else 0.0, shares)
