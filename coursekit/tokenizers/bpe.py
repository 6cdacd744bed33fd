"""Byte-level byte-pair encoding (BPE), written from scratch.

Sennrich, Haddow & Birch (2016) learn a vocabulary by repeatedly merging the most
frequent pair of adjacent symbols; GPT-2 (Radford et al., 2019) runs it on the UTF-8
*bytes* of the text, so any string can be encoded and nothing is ever unknown.

Training (:func:`train_bpe`):

1. pre-tokenise the text with a regular expression (words with their leading space,
   numbers, punctuation runs, whitespace), and count each distinct piece once;
2. write each piece as its bytes (ids 0..255) and count every adjacent pair, weighted
   by how often the piece occurs;
3. merge the most frequent pair into a new id (256, 257, ...), ties broken by the
   smaller pair; then update **only** the counts of pairs that the merge touched, in
   the pieces that held the pair (:func:`update_pair_counts`) -- never a full recount;
4. repeat until the vocabulary has ``vocab_size`` ids.

Encoding applies the learned merges in the order they were learned (lowest rank first)
to each pre-token; decoding concatenates the bytes of the ids and decodes UTF-8.

    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode("naïve café 🙂")        # (N,) int64
    assert tok.decode(ids) == "naïve café 🙂"
"""
from __future__ import annotations

import heapq
import re
from collections import Counter

import torch

from coursekit.data.text import register_tokenizer

# GPT-2's pre-tokenisation pattern, with \p{L} and \p{N} spelled for Python's re module
GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

Pair = tuple[int, int]


def pretokenize(text: str, pattern: str = GPT2_SPLIT) -> list[str]:
    """Split ``text`` into the pieces BPE never merges across; they join back to ``text``."""
    return re.findall(pattern, text)


def piece_counts(text: str, pattern: str = GPT2_SPLIT) -> dict[tuple[int, ...], int]:
    """{piece as a tuple of byte ids: how many times it occurs}."""
    return dict(Counter(tuple(p.encode("utf-8")) for p in pretokenize(text, pattern)))


def pair_counts(words: dict[tuple[int, ...], int]) -> dict[Pair, int]:
    """Full recount: {adjacent pair: occurrences, weighted by each word's frequency}."""
    counts: dict[Pair, int] = {}
    for word, freq in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + freq
    return counts


def merge_word(word, pair: Pair, new_id: int) -> tuple[int, ...]:
    """Replace each occurrence of ``pair`` in ``word``, scanning left to right, by ``new_id``."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def update_pair_counts(counts: dict[Pair, int], word, freq: int, pair: Pair,
                       new_id: int) -> tuple[int, ...]:
    """Merge ``pair`` in one word and update ``counts`` in place for that word only.

    Only the pairs whose number changes are touched: the merged pair itself, and its
    neighbours (``(x, a)`` becomes ``(x, new_id)``, ``(b, y)`` becomes ``(new_id, y)``).
    Pairs whose count reaches 0 are deleted. Returns the merged word.
    """
    new = merge_word(word, pair, new_id)
    delta = Counter(zip(new, new[1:]))
    delta.subtract(Counter(zip(word, word[1:])))
    for q, d in delta.items():
        if d:
            c = counts.get(q, 0) + d * freq
            if c:
                counts[q] = c
            else:
                counts.pop(q, None)
    return new


def train_bpe(text: str, vocab_size: int, pattern: str = GPT2_SPLIT,
              progress: bool = False) -> list[Pair]:
    """Learn ``vocab_size - 256`` merges on ``text``; returns them in order (rank 0 first).

    Merge k creates token id 256 + k. Pair counts are updated incrementally and the best
    pair is found with a heap (stale entries are skipped when popped).
    """
    if vocab_size < 256:
        raise ValueError(f"a byte-level vocabulary has at least 256 ids, got {vocab_size}")
    counted = piece_counts(text, pattern)
    words = list(counted)                               # each word: a tuple of ids
    freqs = list(counted.values())
    counts = pair_counts(counted)
    where: dict[Pair, set[int]] = {}                    # pair -> words that (may) hold it
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            where.setdefault(pair, set()).add(k)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    n_merges = vocab_size - 256
    bar = None
    if progress:
        from coursekit.train import progress as _progress
        bar = _progress(n_merges, desc="BPE merges")
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg:                 # stale entry
            continue
        new_id = 256 + len(merges)
        merges.append(pair)
        for k in where.pop(pair, ()):
            before = set(zip(words[k], words[k][1:]))
            word = update_pair_counts(counts, words[k], freqs[k], pair, new_id)
            if word == words[k]:
                continue
            words[k] = word
            for q in before | set(zip(word, word[1:])):     # every pair whose count moved
                if q in counts:
                    heapq.heappush(heap, (-counts[q], q))
                    where.setdefault(q, set()).add(k)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


class BPETokenizer:
    """A byte-level BPE tokenizer: 256 byte ids plus one id per learned merge.

    Follows :class:`coursekit.data.text.Tokenizer` and registers the kind ``"bpe"``.
    """

    def __init__(self, merges: list[Pair], pattern: str = GPT2_SPLIT):
        self.merges = [tuple(int(x) for x in m) for m in merges]
        self.pattern = pattern
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]
        for r, (a, b) in enumerate(self.merges):
            if not (a < 256 + r and b < 256 + r):
                raise ValueError(f"merge {r} uses an id that does not exist yet: {(a, b)}")
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = GPT2_SPLIT,
              progress: bool = False) -> "BPETokenizer":
        """Learn a tokenizer of ``vocab_size`` ids from ``text``."""
        return cls(train_bpe(text, vocab_size, pattern, progress), pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def truncated(self, vocab_size: int) -> "BPETokenizer":
        """The tokenizer with only the first ``vocab_size - 256`` merges (BPE's vocabularies
        are nested: training to a smaller size gives exactly these merges)."""
        return BPETokenizer(self.merges[: max(0, vocab_size - 256)], self.pattern)

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = tuple(piece.encode("utf-8"))
            while len(ids) > 1:
                pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, 1 << 60))
                if pair not in self.ranks:
                    break
                ids = merge_word(ids, pair, 256 + self.ranks[pair])
            if len(self._cache) < 200_000:
                self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> torch.Tensor:
        """Text -> (N,) int64 ids: merges applied in rank order within each pre-token."""
        out: list[int] = []
        for piece in pretokenize(text, self.pattern):
            out.extend(self._encode_piece(piece))
        return torch.tensor(out, dtype=torch.int64)

    def decode(self, ids) -> str:
        """Ids (list or 1-D tensor) -> text; bytes that are not valid UTF-8 become U+FFFD."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def pieces(self, text: str) -> list[tuple[str, int]]:
        """[(the token's text, its id)] for every token of ``text`` (for display)."""
        return [(self.vocab[i].decode("utf-8", errors="replace"), i)
                for i in self.encode(text).tolist()]

    def state(self) -> dict:
        return {"kind": "bpe", "merges": [list(m) for m in self.merges], "pattern": self.pattern}

    @classmethod
    def from_state(cls, state: dict) -> "BPETokenizer":
        return cls([tuple(m) for m in state["merges"]], state.get("pattern", GPT2_SPLIT))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


register_tokenizer("bpe", BPETokenizer.from_state)
