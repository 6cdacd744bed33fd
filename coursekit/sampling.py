"""Decoding a language model: from next-token logits to text.

Each rule is a small function on a (B, V) tensor of logits, so a lesson can show them one
at a time and :func:`generate` can chain them:

1. ``apply_repetition_penalty``: make tokens already in the text less likely
   ("CTRL", Keskar et al., 2019).
2. ``apply_temperature``: divide the logits by T (T < 1 sharper, T > 1 flatter).
3. ``top_k_filter``: keep the k most likely tokens ("Hierarchical Neural Story
   Generation", Fan, Lewis and Dauphin, 2018).
4. ``top_p_filter``: keep the smallest set of most likely tokens whose probability adds up
   to p ("The Curious Case of Neural Text Degeneration", Holtzman et al., 2019).
5. ``next_token``: the most likely token when T = 0 (greedy), else a draw.

:func:`generate` runs any model with the GPT interface (``model(idx, cache=...)`` ->
``(logits, loss)``, ``model.config.block_size`` and ``model.new_cache()``) with a
key-value cache, so each new token costs one position of work instead of the whole
context. ``coursekit.models.gpt.GPT.generate`` calls it.

    out = generate(model, prompt, 200, temperature=0.8, top_p=0.9,
                   generator=torch.Generator().manual_seed(0))      # (B, T0 + 200)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits divided by ``temperature`` (> 0): (B, V) -> (B, V)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use next_token), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to -inf: (B, V) -> (B, V).

    Ties with the k-th value are kept, so a row may keep more than k tokens.
    """
    if k < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]   # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the fewest most likely tokens whose probabilities sum to >= p.

    1. sort each row's probabilities in decreasing order;
    2. a token is kept when the mass of the tokens *before* it is still below p (so the
       most likely token is always kept, and the token that crosses p is kept too);
    3. the others get -inf.

    Args:
        logits: (B, V); p: in (0, 1].
    Returns:
        (B, V) logits with the tokens outside the nucleus at -inf.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    probs = F.softmax(logits, dim=-1)                                    # (B, V)
    sorted_probs, order = probs.sort(dim=-1, descending=True)            # (B, V) each
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs             # (B, V)
    keep_sorted = mass_before < p                                        # (B, V)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocab order
    return logits.masked_fill(~keep, NEG_INF)


def apply_repetition_penalty(logits: torch.Tensor, idx: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make every token that already occurs in ``idx`` less likely (Keskar et al., 2019).

    A positive logit is divided by ``penalty``, a negative one multiplied by it, so with
    penalty > 1 a seen token always loses probability.

    Args:
        logits: (B, V) next-token logits; idx: (B, T) the text so far; penalty: >= 1.
    Returns:
        (B, V) penalised logits.
    """
    if penalty < 1:
        raise ValueError(f"repetition_penalty must be >= 1, got {penalty}")
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)  # (B, V)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row: greedy when ``temperature == 0``, else a filtered draw.

    Args:
        logits: (B, V) next-token logits.
        temperature: 0 for greedy (argmax), else > 0.
        top_k, top_p: optional filters, applied after the temperature.
        generator: a torch.Generator for reproducible draws.
    Returns:
        (B, 1) int64 token ids.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)                       # (B, 1)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)                                    # (B, V)
    return torch.multinomial(probs, 1, generator=generator)             # (B, 1)


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             repetition_penalty: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
    """Continue each sequence of ``idx`` by ``max_new_tokens`` tokens.

    1. Run the model once on the prompt (its last ``block_size`` tokens), filling the cache.
    2. Pick the next token from the last position's logits (``next_token``).
    3. Feed only that token, at the next position, with the cache holding the keys and
       values of everything before it; repeat from 2.
    When the text outgrows ``block_size`` every position would shift, so the cache is
    rebuilt from the last ``block_size`` tokens at each further step: the tokens are then
    exactly those of generation without a cache (``use_cache=False``), only slower.

    Args:
        model: a GPT-like model (see the module docstring).
        idx: (B, T0) prompt token ids, T0 >= 1.
        max_new_tokens: tokens to add.
        temperature, top_k, top_p, repetition_penalty: decoding rules (see above).
        generator: for reproducible draws.
        use_cache: False recomputes the whole context at every step (the slow way).
    Returns:
        (B, T0 + max_new_tokens) token ids: the prompt, then the new tokens.
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T0) with T0 >= 1 token ids, got shape {tuple(idx.shape)}")
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache() if use_cache else None
        logits = model(idx[:, -block_size:], cache=cache)[0][:, -1]            # (B, V)
        for step in range(max_new_tokens):
            if repetition_penalty is not None:
                logits = apply_repetition_penalty(logits, idx, repetition_penalty)
            nxt = next_token(logits, temperature, top_k, top_p, generator)      # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)                                  # (B, T + 1)
            if step == max_new_tokens - 1:
                break
            if cache is not None and cache.length < block_size:
                logits = model(nxt, cache=cache)[0][:, -1]                      # one position
            else:
                cache = model.new_cache() if use_cache else None
                logits = model(idx[:, -block_size:], cache=cache)[0][:, -1]     # whole window
    finally:
        model.train(was_training)
    return idx
