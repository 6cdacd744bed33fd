"""A statistical watermark for generated text (lesson 17).

Kirchenbauer, Geiping, Wen, Katz, Miers and Goldstein (2023), "A Watermark for Large
Language Models": before each token is drawn, the previous token and a secret key seed a
random split of the vocabulary into a *green list* (a share ``gamma`` of it) and a red
list, and ``delta`` is added to the logits of the green tokens. Text written that way has
more green tokens than chance allows; anyone with the key counts them and runs a one-sided
z-test, without the model:

    z = (greens - gamma T) / sqrt(T gamma (1 - gamma))

over the T scored tokens (each judged by the list its previous token seeds). Human text
(or text from any other source) has z about N(0, 1); z above ``Z_1PCT`` (2.326) flags it
at a 1% false-positive rate.

    wm = Watermark(vocab_size=tok.vocab_size, key=42, gamma=0.5, delta=2.0)
    out = ck.sampling.generate(model, prompt, 200, logits_processor=wm.processor)   # (B, T0 + 200)
    z = wm.z_score(out[0], start=prompt.shape[1])                                # one text's z
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

Z_1PCT = 2.3263478740408408        # the standard normal's 99th percentile: 1% false positives
_MIX = 1_000_003                   # mixes the key with the previous token into one seed


def green_list_seed(key: int, prev: int) -> int:
    """The seed of the green list that follows token ``prev`` under ``key``."""
    return (int(key) * _MIX + int(prev)) % (2 ** 62)


def green_list(prev: int, vocab_size: int, gamma: float, key: int) -> torch.Tensor:
    """(vocab_size,) bool: the green tokens after ``prev``.

    A permutation of the vocabulary drawn from ``torch.Generator().manual_seed(
    green_list_seed(key, prev))``; its first ``round(gamma * vocab_size)`` tokens are green.
    """
    if not 0 < gamma < 1:
        raise ValueError(f"gamma (the green share of the vocabulary) must be in (0, 1), got {gamma}")
    g = torch.Generator().manual_seed(green_list_seed(key, prev))
    perm = torch.randperm(vocab_size, generator=g)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[perm[:round(gamma * vocab_size)]] = True
    return mask


def z_score(greens: float, n: int, gamma: float) -> float:
    """The one-sided z of ``greens`` green tokens out of ``n`` when each is green with chance ``gamma``."""
    if n <= 0:
        raise ValueError("no tokens to score: the text must have at least one token after its first")
    return (greens - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


@dataclass
class Watermark:
    """The green-list watermark with its secret ``key``; the green lists are computed once."""

    vocab_size: int
    key: int = 42
    gamma: float = 0.5          # share of the vocabulary that is green after each token
    delta: float = 2.0          # added to the green tokens' logits (0: no watermark)
    table: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")
        # (V, V) bool: row p is the green list after token p
        self.table = torch.stack([green_list(p, self.vocab_size, self.gamma, self.key)
                                  for p in range(self.vocab_size)])

    def processor(self, idx: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """For ``sampling.generate``: add ``delta`` to the green tokens after each row's last token."""
        green = self.table[idx[:, -1].cpu()].to(logits.device)                 # (B, V)
        return logits + self.delta * green

    def greens(self, tokens: torch.Tensor, start: int = 1, unique: bool = True) -> torch.Tensor:
        """Bool per scored token: is it green under the list its previous token seeds?

        Scored are the tokens from ``start`` on. With ``unique`` (the default) each distinct
        (previous, token) pair counts once: a repeated pair is green or red every time, so
        counting it again would add no evidence, only correlation (on repetitive text the
        plain count's z is not N(0, 1) and the 1% threshold no longer means 1%).
        """
        tokens = torch.as_tensor(tokens).cpu()
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be one text's ids (T,), got shape {tuple(tokens.shape)}")
        if not 1 <= start < len(tokens):
            raise ValueError(f"start must be in [1, {len(tokens) - 1}] (the first scored token), got {start}")
        prev, cur = tokens[start - 1:-1], tokens[start:]
        if unique:
            pairs = torch.unique(prev * self.vocab_size + cur)
            prev, cur = pairs // self.vocab_size, pairs % self.vocab_size
        return self.table[prev, cur]

    def z_score(self, tokens: torch.Tensor, start: int = 1, unique: bool = True) -> float:
        """The detector's z for one text (see ``greens`` for what is scored)."""
        g = self.greens(tokens, start, unique)
        return z_score(g.sum().item(), len(g), self.gamma)

    def detect(self, tokens: torch.Tensor, start: int = 1, z_threshold: float = Z_1PCT) -> bool:
        """True when the text's z passes ``z_threshold`` (default: 1% false positives)."""
        return self.z_score(tokens, start) > z_threshold


def random_edits(tokens: torch.Tensor, rate: float, vocab_size: int, generator: torch.Generator,
                 start: int = 0) -> torch.Tensor:
    """A copy of ``tokens`` (T,) with a share ``rate`` of the positions from ``start`` on replaced
    by random tokens (an attacker paraphrasing at random; each edit also changes the green list
    of the token after it)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    out = torch.as_tensor(tokens).clone()
    n = len(out) - start
    k = round(rate * n)
    pos = start + torch.randperm(n, generator=generator)[:k]
    out[pos] = torch.randint(0, vocab_size, (k,), generator=generator)
    return out
