"""A chat-style fine-tune of the story model (chapter 15): teach it the question-and-answer
format on some towns' facts, then ask about the other towns, whose facts it read only in stories.

1. ``add_characters``: the story model has never seen "Q", "W", ":" or "?"; give its (tied)
   embedding one new row per new character, leaving every old weight as it was;
2. ``chat_finetune``: continue training on ``coursekit.data.qa`` pairs (lesson 10's full
   fine-tune, with ``coursekit.lm.train_lm``);
3. ``answer_accuracy``: greedy answers to held-out questions, right if they state the fact.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch

from coursekit.data.qa import QA, answer_correct, qa_corpus
from coursekit.data.text import CharTokenizer
from coursekit.lm import LMData, LMRun, LMTrainConfig, train_lm
from coursekit.models.gpt import GPT
from coursekit.train import History

CHAT_CHARS = "QW:?"
"""The characters the question-and-answer format needs beyond the stories'."""


def add_characters(run: LMRun, chars: str = CHAT_CHARS, seed: int = 0) -> LMRun:
    """A copy of a character-level ``run`` whose vocabulary ends with the characters of ``chars``
    it lacks. Old token ids, and every old weight, are unchanged; each new embedding row is drawn
    like GPT's initial ones (normal, std 0.02) from ``seed``. The new model is not trained."""
    tok = run.tokenizer
    if not isinstance(tok, CharTokenizer):
        raise TypeError(f"add_characters needs a character-level run, got a {type(tok).__name__}")
    new = [c for c in dict.fromkeys(chars) if c not in tok.stoi]
    cfg = replace(run.config, vocab_size=tok.vocab_size + len(new))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT(cfg)
    state = model.state_dict()
    for name, value in run.model.state_dict().items():
        if name in ("tok_emb.weight", "head.weight"):
            state[name][: value.shape[0]] = value                # (V_old, C) rows kept, new rows random
        else:
            state[name] = value
    model.load_state_dict(state)
    model.to(next(run.model.parameters()).device).eval()
    return LMRun(model, History(), cfg, tokenizer=CharTokenizer(chars=tok.chars + new),
                 train_config=run.train_config)


def chat_finetune(run: LMRun, pairs: list[QA], n_steps: int, *, seed: int = 0, progress: bool = True,
                  lr: float = 1e-3, stories: list[str] | None = None, device=None) -> LMRun:
    """``run`` (a copy) fine-tuned on the question-and-answer text of ``pairs``.

    The characters of the format are added first (``add_characters``); then ``n_steps`` of
    ``train_lm`` on ``qa_corpus(pairs, stories=stories)`` at a peak learning rate ``lr`` (lower
    than training from scratch, so the facts of the stories survive; stories mixed in between the
    pairs help too).
    """
    base = add_characters(run, seed=seed)
    data = LMData.from_text(qa_corpus(pairs, seed=seed, stories=stories), tokenizer=base.tokenizer)
    tc = LMTrainConfig(lr=lr, warmup=min(20, max(n_steps // 5, 1)), eval_every=max(n_steps // 5, 1))
    return train_lm(base.config, data, n_steps, model=copy.deepcopy(base.model), seed=seed, progress=progress,
                    train_config=tc, device=device, desc="chat fine-tune")


def ask(run: LMRun, pairs: list[QA], max_new_tokens: int = 60) -> list[str]:
    """The greedy answer (first line after "A:") to each pair's question."""
    from coursekit.prompting import complete
    return complete(run, [p.prompt for p in pairs], max_new_tokens, temperature=0.0, stop="\n")


def answer_accuracy(run: LMRun, pairs: list[QA]) -> float:
    """Share of ``pairs`` whose greedy answer states the fact."""
    if not pairs:
        raise ValueError("answer_accuracy needs at least one question")
    return sum(answer_correct(a, p) for a, p in zip(ask(run, pairs), pairs)) / len(pairs)
