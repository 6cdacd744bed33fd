"""A word-level tokenizer: the most frequent words, spaces and punctuation of a text,
plus one ``<unk>`` id for everything else (what byte-level BPE does without)."""
from __future__ import annotations

import re
from collections import Counter

import torch

from coursekit.data.text import register_tokenizer

WORD_SPLIT = r"\w+|[^\w\s]|\s+"
# words that carry the space before them (" Anna"), as GPT-2's pieces do: no token is a bare space
SPACED_WORD_SPLIT = r" ?\w+| ?[^\w\s]|\s+"
UNK = "<unk>"


class WordTokenizer:
    """Id 0 is ``<unk>``; ids 1.. are the ``max_words`` most frequent pieces of a text.

    ``split`` is the regular expression that cuts a text into pieces: ``WORD_SPLIT`` (the
    default) makes spaces pieces of their own, ``SPACED_WORD_SPLIT`` joins a word to the
    space before it (lesson 17's watermark needs every token to carry a word's choice).
    """

    def __init__(self, text: str | None = None, max_words: int = 5000, *,
                 words: list[str] | None = None, split: str = WORD_SPLIT):
        try:
            self.split = re.compile(split)
        except (re.error, TypeError) as err:
            raise ValueError(f"split must be a regular expression, got {split!r}: {err}") from None
        if words is None:
            if not isinstance(text, str) or not text:
                raise ValueError("WordTokenizer needs a non-empty text to build its vocabulary")
            counts = Counter(self.split.findall(text))
            words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words]]
        self.words = [UNK] + [w for w in words if w != UNK]
        self.stoi = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def pieces(self, text: str) -> list[tuple[str, int]]:
        """[(piece of the text, its id)]; unknown pieces get id 0."""
        return [(w, self.stoi.get(w, 0)) for w in self.split.findall(text)]

    def encode(self, text: str) -> torch.Tensor:
        """Text -> (N,) int64 ids, 0 for every piece outside the vocabulary."""
        return torch.tensor([i for _, i in self.pieces(text)], dtype=torch.int64)

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.words[i] for i in ids)

    def state(self) -> dict:
        state = {"kind": "word", "words": self.words[1:]}
        if self.split.pattern != WORD_SPLIT:
            state["split"] = self.split.pattern
        return state

    @classmethod
    def from_state(cls, state: dict) -> "WordTokenizer":
        return cls(words=list(state["words"]), split=state.get("split", WORD_SPLIT))

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"


register_tokenizer("word", WordTokenizer.from_state)
