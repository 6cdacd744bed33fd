"""Tokenizers of chapter 08: byte-level BPE written from scratch, and a word tokenizer.

Both follow :class:`coursekit.data.text.Tokenizer` (``vocab_size``, ``encode``,
``decode``, ``state``); importing this package registers the kinds ``"bpe"`` and
``"word"`` with :func:`coursekit.data.text.tokenizer_from_state`.

    from coursekit.tokenizers import BPETokenizer
    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode("Once upon a time")        # (N,) int64
"""
from coursekit.tokenizers.bpe import BPETokenizer, train_bpe
from coursekit.tokenizers.words import WordTokenizer

__all__ = ["BPETokenizer", "WordTokenizer", "train_bpe"]
