"""Character-level text tools: a tokenizer, a train/validation split, random batches."""
from __future__ import annotations

import torch


class CharTokenizer:
    """Maps each distinct character of a text to an integer id and back."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer needs a non-empty string to build its vocabulary")
        self.chars: list[str] = sorted(set(text))
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

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


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
