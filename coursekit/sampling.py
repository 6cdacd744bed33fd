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

:func:`beam_search` keeps the ``beam_width`` most likely continuations instead of one
("If beam search is the answer, what was the question?", Meister, Cotterell and Vieira,
2020, on what it finds and why that text is dull).

:func:`generate` runs any model with the GPT interface (``model(idx, cache=...)`` ->
``(logits, loss)``, ``model.config.block_size`` and ``model.new_cache()``) with a
key-value cache, so each new token costs one position of work instead of the whole
context. ``coursekit.models.gpt.GPT.generate`` calls it.

    out = generate(model, prompt, 200, temperature=0.8, top_p=0.9,
                   generator=torch.Generator().manual_seed(0))      # (B, T0 + 200)
    best, logp = beam_search(model, prompt, 50, beam_width=4)      # (B, T0 + 50), (B,)
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
             generator: torch.Generator | None = None, use_cache: bool = True,
             logits_processor=None) -> torch.Tensor:
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
        logits_processor: optional ``f(idx (B, T), logits (B, V)) -> logits (B, V)`` applied
            first at every step, e.g. a text watermark's green-list bias (lesson 17).
    Returns:
        (B, T0 + max_new_tokens) token ids: the prompt, then the new tokens.
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T0) with T0 >= 1 token ids, got shape {tuple(idx.shape)}")
    block_size = model.config.block_size
    use_cache = use_cache and getattr(model, "supports_cache", True)
    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache() if use_cache else None
        logits = model(idx[:, -block_size:], cache=cache)[0][:, -1]            # (B, V)
        for step in range(max_new_tokens):
            if logits_processor is not None:
                logits = logits_processor(idx, logits)
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


def _reorder_cache(cache, rows: torch.Tensor) -> None:
    """Keep the cached keys and values of ``rows`` (a (R,) index), in that order, in place."""
    cache.layers = [None if kv is None else (kv[0][rows], kv[1][rows]) for kv in cache.layers]


@torch.no_grad()
def beam_search(model, idx: torch.Tensor, max_new_tokens: int, beam_width: int = 4,
                use_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The continuation of ``max_new_tokens`` tokens with the highest log-probability, approximately.

    Exact search would score all V^n continuations; beam search keeps only the
    ``beam_width`` best prefixes after every token:

    1. score every one-token extension of every kept prefix:
       log p(prefix) + log p(token | prefix);
    2. keep the ``beam_width`` best of those W x V candidates (the first step starts from
       the prompt alone, so its candidates are its V extensions);
    3. repeat; finally return the best kept sequence and its log-probability.
    With ``beam_width=1`` this is greedy decoding; as the width grows it approaches the
    most likely sequence (equal to it once the width reaches V^(n-1)).
    All continuations have the same length, so no length penalty is needed here.

    Args:
        model: a GPT-like model (see the module docstring).
        idx: (B, T0) prompt token ids; each row is searched on its own.
        max_new_tokens: tokens to add.
        beam_width: prefixes kept per row (W >= 1).
        use_cache: keep the keys and values of the beams (reordered as beams are chosen).
    Returns:
        (B, T0 + max_new_tokens) token ids of the best beam per row, and (B,) its
        log-probability (natural log) given the prompt.
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T0) with T0 >= 1 token ids, got shape {tuple(idx.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    B, block_size = idx.shape[0], model.config.block_size
    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache() if use_cache else None
        logits = model(idx[:, -block_size:], cache=cache)[0][:, -1]                # (B, V)
        seqs = idx                                                                  # (B*W, T): W = 1 at first
        scores = torch.zeros(B, 1, device=idx.device)                               # (B, W) log p(prefix)
        for step in range(max_new_tokens):
            V = logits.shape[-1]
            W = scores.shape[1]
            # 1. every extension of every beam: (B, W, V)
            cand = scores[:, :, None] + F.log_softmax(logits.float(), dim=-1).view(B, W, V)
            # 2. keep the best beam_width of the W x V candidates of each row
            k = min(beam_width, W * V)
            scores, flat = cand.view(B, W * V).topk(k, dim=-1)                     # (B, k) each
            beam, token = flat // V, flat % V                                      # which prefix, which token
            rows = (torch.arange(B, device=idx.device)[:, None] * W + beam).view(-1)   # (B*k,)
            seqs = torch.cat([seqs[rows], token.view(-1, 1)], dim=1)               # (B*k, T + 1)
            if step == max_new_tokens - 1:
                break
            # 3. the next logits of the kept beams (cache rows follow their prefixes)
            if cache is not None and cache.length < block_size:
                _reorder_cache(cache, rows)
                logits = model(token.view(-1, 1), cache=cache)[0][:, -1]           # (B*k, V)
            else:
                cache = model.new_cache() if use_cache else None
                logits = model(seqs[:, -block_size:], cache=cache)[0][:, -1]
        W = scores.shape[1]
        best = scores.argmax(dim=-1)                                               # (B,)
        out = seqs.view(B, W, -1)[torch.arange(B, device=idx.device), best]        # (B, T0 + n)
        return out, scores.gather(1, best[:, None])[:, 0]
    finally:
        model.train(was_training)
