"""Text tools: the tokenizer interface, a character tokenizer, a split, random batches.

A tokenizer is anything with the four members of :class:`Tokenizer`: ``vocab_size``,
``encode(text) -> (N,) int64``, ``decode(ids) -> text`` and ``state() -> dict`` (plain
Python data: what a checkpoint stores). :func:`tokenizer_from_state` rebuilds one from
that dict, so a saved language model carries its tokenizer with it. Chapter 08's
byte-pair encoder registers itself with :func:`register_tokenizer` and plugs in here.

    tok = CharTokenizer(text)
    ids = tok.encode("hello")              # (5,) int64
    tok2 = tokenizer_from_state(tok.state())
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Tokenizer(Protocol):
    """What the language-model toolkit needs of a tokenizer."""

    @property
    def vocab_size(self) -> int:
        """Number of distinct token ids (ids are 0 .. vocab_size - 1)."""

    def encode(self, text: str) -> torch.Tensor:
        """Text -> (N,) int64 token ids."""

    def decode(self, ids) -> str:
        """A sequence of ids (list or 1-D tensor) -> text."""

    def state(self) -> dict:
        """Everything needed to rebuild the tokenizer, as plain Python data, with a
        ``"kind"`` key naming its class in the registry."""


_KINDS: dict[str, Callable[[dict], Tokenizer]] = {}


def register_tokenizer(kind: str, from_state: Callable[[dict], Tokenizer]) -> None:
    """Make ``tokenizer_from_state`` rebuild states whose ``"kind"`` is ``kind``."""
    _KINDS[kind] = from_state


def tokenizer_from_state(state: dict) -> Tokenizer:
    """Rebuild a tokenizer from its ``state()`` (as stored in a checkpoint)."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in _KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known kinds: {sorted(_KINDS)}. "
                         "Import the module that defines it (it registers itself) first")
    return _KINDS[kind](state)


class CharTokenizer:
    """Maps each distinct character of a text to an integer id and back."""

    def __init__(self, text: str | None = None, *, chars: list[str] | None = None):
        if chars is None:
            if not isinstance(text, str) or not text:
                raise ValueError("CharTokenizer needs a non-empty string to build its vocabulary")
            chars = sorted(set(text))
        if len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars: list[str] = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Text -> (len(text),) int64 ids. Unknown characters raise a KeyError naming them."""
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise KeyError(f"characters not in the vocabulary: {unknown[:10]!r}; "
                           "build the tokenizer from a text that contains them")
        return torch.tensor([self.stoi[c] for c in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """A sequence of ids (list or 1-D tensor) -> text."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)

    def state(self) -> dict:
        return {"kind": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_state(cls, state: dict) -> "CharTokenizer":
        return cls(chars=list(state["chars"]))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


register_tokenizer("char", CharTokenizer.from_state)


def split_text(data: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D token tensor into its first (1 - val_fraction) and last val_fraction."""
    n = int(len(data) * (1 - val_fraction))
    return data[:n], data[n:]


def get_batch(data: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of ``block_size`` tokens.

    Returns:
        x (B, T) inputs and y (B, T) targets: y is x shifted left by one token.
    """
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}")
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = data[starts[:, None] + offsets]       # (B, T)
    y = data[starts[:, None] + offsets + 1]   # (B, T)
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y
