"""A character-level Markov chain: each character depends only on the k characters before it.

This is the "early attempt" at text generation of chapter 01. Claude Shannon produced
English-looking text this way by hand in "A Mathematical Theory of Communication"
(1948); the model below does the same with a computer and a corpus.

For a character ``x`` that follows the context ``c`` (the ``k`` characters before it),
the model with add-alpha smoothing is::

    p(x | c) = (N(c, x) + alpha) / (N(c) + alpha * V)                      (1)

where ``N(c, x)`` counts how often ``x`` followed ``c`` in the training text,
``N(c) = sum_x N(c, x)``, and ``V`` is the vocabulary size. Two details:

- near the start of a text fewer than ``k`` characters precede ``x``; the context is then
  all of them, which is why counts are kept for every context length 0..k;
- a context never seen in training (``N(c) = 0``) gets the uniform distribution ``1/V``,
  or, with ``backoff=True``, the distribution of its longest suffix that was seen.

Usage::

    from coursekit.models.markov import MarkovChain, MarkovConfig
    chain = MarkovChain(MarkovConfig(order=3)).fit(train_text)
    chain.sample(200, prompt="Once", generator=torch.Generator().manual_seed(0))
    chain.perplexity(val_text)
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

from coursekit.models.presets import Presets


@dataclass
class MarkovConfig(Presets):
    """Settings of a character-level Markov chain."""

    order: int = 3         # k: how many previous characters the next one depends on
    alpha: float = 0.01    # add-alpha smoothing: pseudo-count of every (context, next char) pair
    backoff: bool = False  # unseen context: use its longest seen suffix instead of uniform

    def __post_init__(self):
        if not isinstance(self.order, int) or isinstance(self.order, bool) or self.order < 0:
            raise ValueError(f"order must be an int >= 0, got {self.order!r}")
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")


# Named presets: a k-th order chain looks at k characters, so it models (k+1)-grams.
PRESETS = {
    "unigram": MarkovConfig(order=0),
    "bigram": MarkovConfig(order=1),
    "trigram": MarkovConfig(order=2),
    "5-gram": MarkovConfig(order=4),
}


class MarkovChain:
    """A k-th order character Markov chain fitted by counting.

    Args:
        config: a ``MarkovConfig``; keyword arguments override its fields,
            e.g. ``MarkovChain(order=2)``.

    Attributes (after ``fit``):
        vocab: the sorted list of characters the model knows (V of them).
        stoi: character -> index into ``vocab``.
        counts: context -> {next character: count}, for every context length 0..k.
        totals: context -> N(c), the number of times the context was followed by anything.
    """

    def __init__(self, config: MarkovConfig | None = None, **overrides):
        base = config or MarkovConfig()
        self.config = MarkovConfig(**{**vars(base), **overrides})
        self.vocab: list[str] = []
        self.stoi: dict[str, int] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.totals: dict[str, int] = {}

    @property
    def order(self) -> int:
        return self.config.order

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def fit(self, text: str, vocab: str | list[str] | None = None) -> "MarkovChain":
        """Count every (context, next character) pair of ``text``.

        Args:
            text: the training text.
            vocab: the characters to model (default: those of ``text``); give it when
                held-out text may contain characters the training text lacks.
        Returns:
            self, so that ``MarkovChain(...).fit(text)`` reads as one line.
        """
        if not isinstance(text, str) or not text:
            raise ValueError("fit needs a non-empty string of training text")
        # 1. The vocabulary: every character the model can produce, in sorted order.
        self.vocab = sorted(set(vocab if vocab is not None else text))
        missing = sorted(set(text) - set(self.vocab))
        if missing:
            raise ValueError(f"text has characters that are not in vocab: {missing[:10]!r}")
        self.stoi = {ch: i for i, ch in enumerate(self.vocab)}
        # 2. Count the (k+1)-grams c + x: one at every position t, where x = text[t] and
        #    c is the k characters before it (fewer at the start of the text).
        k = self.order
        grams = Counter(text[max(0, t - k):t + 1] for t in range(len(text)))
        # 3. Shorter contexts: a gram that ends at position t also ends with every shorter
        #    gram there, so cut the first character off, longest grams first.
        for length in range(k + 1, 1, -1):
            for gram, n in [(g, n) for g, n in grams.items() if len(g) == length]:
                grams[gram[1:]] += n
        # 4. Group by context: counts[c][x] = N(c, x) and totals[c] = N(c).
        self.counts, self.totals = {}, {}
        for gram, n in grams.items():
            c, x = gram[:-1], gram[-1]
            self.counts.setdefault(c, {})[x] = n
            self.totals[c] = self.totals.get(c, 0) + n
        return self

    def _require_fitted(self) -> None:
        if not self.vocab:
            raise RuntimeError("this MarkovChain has not been fitted yet: call .fit(text) first")

    def context(self, history: str) -> str:
        """The context that predicts the character after ``history``.

        Its last k characters (all of it when shorter); with ``backoff``, shortened from
        the left until it is a context seen in training.
        """
        c = history[max(0, len(history) - self.order):]
        if self.config.backoff:
            while c and c not in self.counts:
                c = c[1:]
        return c

    def next_probs(self, history: str = "") -> torch.Tensor:
        """p(next character | history) by equation (1).

        Args:
            history: the text so far (only its last k characters matter).
        Returns:
            (V,) float64 probabilities, in the order of ``vocab``; they sum to 1.
        """
        self._require_fitted()
        V = self.vocab_size
        c = self.context(history)
        if c not in self.counts:                               # unseen context: uniform
            return torch.full((V,), 1.0 / V, dtype=torch.float64)
        n = torch.zeros(V, dtype=torch.float64)                # (V,) N(c, x) for each x
        for x, count in self.counts[c].items():
            n[self.stoi[x]] = count
        alpha = self.config.alpha
        return (n + alpha) / (self.totals[c] + alpha * V)

    def transition_matrix(self) -> torch.Tensor:
        """For a first-order chain: P[i, j] = p(vocab[j] | vocab[i]). Shape (V, V)."""
        if self.order != 1:
            raise ValueError("transition_matrix is for order 1 (bigram) chains; "
                             f"this one has order {self.order}")
        self._require_fitted()
        return torch.stack([self.next_probs(ch) for ch in self.vocab])  # (V, V)

    @torch.no_grad()
    def sample(self, n_chars: int, prompt: str = "", temperature: float = 1.0,
               generator: torch.Generator | None = None) -> str:
        """Generate ``n_chars`` characters that continue ``prompt``.

        Args:
            n_chars: how many new characters to draw.
            prompt: text to continue (may be empty: the chain starts as a text does).
            temperature: 1 samples the model; below 1 sharpens it (0 = always the most
                likely character), above 1 flattens it: p_i ** (1 / T), renormalised.
            generator: a ``torch.Generator`` for reproducible samples (default: torch's
                global random state, seeded by ``ck.setup``).
        Returns:
            The new characters only (without the prompt).
        """
        self._require_fitted()
        if not isinstance(n_chars, int) or n_chars < 0:
            raise ValueError(f"n_chars must be an int >= 0, got {n_chars!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        text = prompt
        for _ in range(n_chars):
            # 1. The distribution of the next character given the last k characters.
            probs = self.next_probs(text)                                  # (V,)
            # 2. Reshape it with the temperature, then draw one index.
            if temperature == 0:
                i = int(torch.argmax(probs))
            else:
                if temperature != 1:
                    probs = probs ** (1.0 / temperature)
                    probs = probs / probs.sum()
                i = int(torch.multinomial(probs, 1, generator=generator))
            # 3. Append the character: it becomes part of the next context.
            text += self.vocab[i]
        return text[len(prompt):]

    def log_prob(self, x: str, history: str = "") -> float:
        """log p(x | history) in nats (natural log); -inf when the model rules ``x`` out."""
        self._require_fitted()
        if x not in self.stoi:
            raise ValueError(f"character {x!r} is not in the vocabulary; fit with vocab=... "
                             "that includes it")
        V, alpha = self.vocab_size, self.config.alpha
        c = self.context(history)
        if c not in self.counts:
            return -math.log(V)
        p = (self.counts[c].get(x, 0) + alpha) / (self.totals[c] + alpha * V)
        return math.log(p) if p > 0 else -math.inf

    def log_likelihood(self, text: str, prompt: str = "") -> float:
        """log p(text | prompt) = sum_t log p(text[t] | prompt + text[:t]), in nats."""
        full, k = prompt + text, self.order
        # Only the last k characters of the history matter: slice them, not the whole prefix.
        return sum(self.log_prob(full[t], full[max(0, t - k):t])
                   for t in range(len(prompt), len(full)))

    def perplexity(self, text: str, prompt: str = "") -> float:
        """exp(-log-likelihood per character): the effective number of choices per character.

        1 means the model predicts ``text`` perfectly; V means it guesses uniformly.
        """
        if not text:
            raise ValueError("perplexity needs a non-empty text")
        return math.exp(-self.log_likelihood(text, prompt) / len(text))

    def __repr__(self) -> str:
        c = self.config
        return (f"MarkovChain(order={c.order}, alpha={c.alpha}, backoff={c.backoff}, "
                f"vocab_size={self.vocab_size}, contexts={len(self.counts)})")
