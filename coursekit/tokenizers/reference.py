"""The well-kept library BPE that chapter 08 compares with: HuggingFace ``tokenizers``,
set up as GPT-2's byte-level BPE (the same pre-tokenisation and 256-byte alphabet as
:mod:`coursekit.tokenizers.bpe`), so the two differ only in how they were written."""
from __future__ import annotations


def train_library_bpe(text: str, vocab_size: int):
    """A ``tokenizers.Tokenizer`` trained on ``text`` to ``vocab_size`` ids (bytes included)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def library_token_count(tok, text: str) -> int:
    """How many tokens the library tokenizer makes of ``text``."""
    return len(tok.encode(text).ids)
