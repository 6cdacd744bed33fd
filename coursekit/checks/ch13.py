"""Checks for chapter 13, Sampling and decoding (``exercises/13_sampling.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``sample_from_probs(probs, u) -> (B,) int64``: inverse-CDF sampling, the first token
  whose cumulative probability is greater than u
* ``typical_filter(logits, mass) -> (B, V)``: locally typical sampling's filter
  (Meister, Pimentel, Wiher and Cotterell, 2022)
* ``distinct_n(texts, n) -> float``: distinct word n-grams over all word n-grams
* ``beam_search_lp(next_logprobs, prompt, max_new, beam_width, eos, alpha) -> (tokens, score)``:
  beam search with an end token and a length penalty (Wu et al., 2016, in its simplest form)
"""
from __future__ import annotations

import math
import random

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, expect_close, fail, passed,
                                        require_callable, seeded)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use: the draw itself, and coursekit's own decoding rules
# ---------------------------------------------------------------------------------------
_S = "coursekit.sampling."
_MULTINOMIAL = ban("torch.multinomial", "torch.Tensor.multinomial", "torch.Tensor.multinomial_",
                   ops=["aten::multinomial"],
                   reason="torch.multinomial draws the token for you; the exercise is to turn the "
                   "uniform number u into a token yourself")
BANS = {
    "check_sample_from_probs": [
        _MULTINOMIAL,
        ban("torch.distributions.Categorical", "torch.distributions.categorical.Categorical",
            "torch.distributions.OneHotCategorical",
            reason="a Categorical distribution samples for you; use the cumulative probabilities"),
        ban(_S + "next_token", _S + "generate",
            reason="coursekit's decoding draws with torch.multinomial; write the inverse CDF yourself")],
    "check_typical_filter": [
        ban(_S + "top_p_filter", _S + "top_k_filter",
            reason="coursekit's filters are the lesson's answers to other questions; order the "
            "tokens by how typical they are and cut the mass yourself"),
        ban("torch.topk", "torch.Tensor.topk", ops=["aten::topk"],
            reason="the set is cut by probability mass, not by a count: sort and accumulate instead")],
    "check_beam_search_lp": [
        ban(_S + "beam_search", _S + "generate", _S + "_reorder_cache",
            reason="coursekit's beam search has no end token or length penalty; write the search yourself")],
    "check_distinct_n": [
        ban("coursekit.evaluate.distinct_n", "coursekit.evaluate.ngrams", "coursekit.evaluate.self_similarity",
            reason="coursekit's distinct_n is the answer; count the n-grams yourself")],
}


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.sampling and coursekit.evaluate)
# ---------------------------------------------------------------------------------------
def _sample_from_probs(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    out = []
    for row, threshold in zip(probs.double().tolist(), u.double().tolist()):
        running, pick = 0.0, None
        for i, p in enumerate(row):
            running += p
            if running > threshold and p > 0:
                pick = i
                break
        if pick is None:                                  # rounding: u above the float total
            pick = max(i for i, p in enumerate(row) if p > 0)
        out.append(pick)
    return torch.tensor(out, dtype=torch.int64)


def _typical_filter(logits: torch.Tensor, mass: float) -> torch.Tensor:
    out = logits.clone()
    for b, row in enumerate(logits.double()):
        logp = row - torch.logsumexp(row, 0)
        p = logp.exp()
        entropy = -(p * logp).sum()
        distance = (-logp - entropy).abs().tolist()
        order = sorted(range(len(distance)), key=lambda i: distance[i])
        before = 0.0
        for i in order:
            if before >= mass:
                out[b, i] = float("-inf")
            before += p[i].item()
    return out


def _distinct_n(texts: list[str], n: int) -> float:
    total, seen = 0, set()
    for text in texts:
        words = text.split()
        for i in range(len(words) - n + 1):
            seen.add(" ".join(words[i:i + n]))
            total += 1
    return len(seen) / total if total else 0.0


_gen = seeded


def _random_probs(g: torch.Generator, B: int, V: int, zeros: bool = True) -> torch.Tensor:
    p = torch.rand(B, V, generator=g) ** 3
    if zeros:
        p[torch.rand(B, V, generator=g) < 0.3] = 0.0
        p[:, 0] += 1e-3                                   # no row all zero
    return p / p.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
def check_sample_from_probs(sample_from_probs, seed: int = 0) -> None:
    """``sample_from_probs(probs, u)``: for each row, the first token whose cumulative probability exceeds u."""
    name = "check_sample_from_probs"
    require_callable(name, sample_from_probs, "sample_from_probs", n_args=2)
    g = _gen(seed)
    fixed = torch.tensor([[0.125, 0.25, 0.125, 0.5]])
    cases = [("probs = [0.125, 0.25, 0.125, 0.5] and u from 0 to 0.99 (one row per u)",
              fixed.expand(8, -1), torch.tensor([0.0, 0.1, 0.125, 0.3, 0.375, 0.4, 0.6, 0.99])),
             ("probs = [0.25, 0, 0.75]: a token of probability 0 is never drawn",
              torch.tensor([[0.25, 0.0, 0.75]] * 3), torch.tensor([0.2, 0.25, 0.5])),
             ("a batch of 6 random rows of 10 tokens, some of probability 0",
              _random_probs(g, 6, 10), torch.rand(6, generator=g)),
             ("a batch of 50 random rows of 65 tokens (a character vocabulary)",
              _random_probs(g, 50, 65, zeros=False), torch.rand(50, generator=g))]
    for case, probs, u in cases:
        got = call(name, sample_from_probs, probs.clone(), u.clone(),
                   what="sample_from_probs(probs, u)", bans=BANS[name])
        got = as_tensor(name, got, "the drawn tokens", shape=(len(u),))
        if got.is_floating_point():
            fail(name, case, "integer token ids (int64)", f"dtype {got.dtype}",
                 "the answer is a position in the vocabulary: return a LongTensor of indices")
        ref = _sample_from_probs(probs, u)
        if not torch.equal(got.long(), ref):
            cdf = probs.double().cumsum(-1)
            at_or_above = (cdf < u.double()[:, None]).sum(-1)
            if torch.equal(got.long(), probs.argmax(-1)):
                hint = "this is the most likely token (greedy); the draw must depend on u"
            elif torch.equal(got.long(), at_or_above.clamp(max=probs.shape[1] - 1)):
                hint = ("a token is drawn when its cumulative probability is *greater than* u; with "
                        ">= a u that lands exactly on a boundary picks the token before it, and a "
                        "token of probability 0 can be picked")
            elif ((got.long() - ref).abs() <= 1).all():
                hint = "off by one: the token drawn is the first index where the running sum exceeds u"
            else:
                hint = ("add the probabilities of each row from the first token on (a cumulative sum "
                        "along the vocabulary) and take the first token where the sum exceeds that row's u")
            fail(name, case, ref, got, hint)
    passed(name, "inverse-CDF draws on 4 cases, zero-probability tokens never drawn")


def check_typical_filter(typical_filter, seed: int = 0) -> None:
    """``typical_filter(logits, mass)``: keep the most typical tokens up to ``mass``, others to -inf."""
    name = "check_typical_filter"
    require_callable(name, typical_filter, "typical_filter", n_args=2)
    g = _gen(seed)
    cases = [("logits = log [0.5, 0.3, 0.15, 0.05], mass = 0.5",
              torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log(), 0.5),
             ("the same logits, mass = 0.9", torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log(), 0.9),
             ("3 random rows of 12 tokens, mass = 0.6", 2.5 * torch.randn(3, 12, generator=g), 0.6),
             ("a peaked row and a flat row, mass = 0.3",
              torch.stack([8 * torch.randn(9, generator=g), 0.1 * torch.randn(9, generator=g)]), 0.3),
             ("8 random rows of 65 tokens, mass = 0.95", 3 * torch.randn(8, 65, generator=g), 0.95),
             ("mass = 1.0 keeps every token", torch.randn(2, 7, generator=g), 1.0)]
    for case, logits, mass in cases:
        got = call(name, typical_filter, logits.clone(), mass,
                   what="typical_filter(logits, mass)", bans=BANS[name])
        got = as_tensor(name, got, "the filtered logits", shape=tuple(logits.shape), dtype_float=True)
        ref = _typical_filter(logits, mass)
        kept_ref, kept_got = torch.isfinite(ref), torch.isfinite(got)
        if not torch.equal(kept_got, kept_ref):
            probs = torch.softmax(logits.double(), -1)
            by_prob = torch.zeros_like(kept_ref)
            for b in range(len(probs)):
                order = probs[b].argsort(descending=True)
                before = probs[b][order].cumsum(0) - probs[b][order]
                by_prob[b, order] = before < mass
            if torch.equal(kept_got, by_prob) and not torch.equal(by_prob, kept_ref):
                hint = ("this keeps the most *likely* tokens (top-p); typical sampling orders tokens by "
                        "|-log p - H|, how close their surprise is to the entropy H (without the absolute "
                        "value, sorting by -log p - H is the same as sorting by probability)")
            elif (kept_got & ~kept_ref).any():
                hint = ("too many tokens kept: stop as soon as the kept tokens' probability reaches "
                        "the mass (keep a token only while the mass *before* it is below `mass`)")
            else:
                hint = ("too few tokens kept: the token whose probability crosses `mass` is kept too; "
                        "also check the distance uses the absolute value |-log p - H|")
            fail(name, f"which tokens are kept for {case}", kept_ref.int(), kept_got.int(), hint)
        expect_close(name, f"the kept logits for {case}", torch.where(kept_got, got, 0.0),
                     torch.where(kept_ref, ref, 0.0), atol=1e-5,
                     hint="leave the kept logits as they were (no softmax, no renormalising); "
                          "set only the others to -inf", what="the filtered logits")
    passed(name, "the most typical tokens up to the mass are kept, on 6 cases")


def _sentences(rng: random.Random, n_texts: int) -> list[str]:
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home", "Anna", "smiled."]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 14))) for _ in range(n_texts)]


def check_distinct_n(distinct_n, seed: int = 0) -> None:
    """``distinct_n(texts, n)``: distinct word n-grams / all word n-grams, pooled over the texts."""
    name = "check_distinct_n"
    require_callable(name, distinct_n, "distinct_n", n_args=2)
    rng = random.Random(seed)
    cases = [("['the cat sat', 'the cat ran'], n = 1", ["the cat sat", "the cat ran"], 1),
             ("['the cat sat', 'the cat ran'], n = 2", ["the cat sat", "the cat ran"], 2),
             ("['a a a a'] (one text repeating itself), n = 2", ["a a a a"], 2),
             ("['the dog', 'the  dog\\n'] (extra spaces and a newline are not words), n = 2",
              ["the dog", "the  dog\n"], 2),
             ("['one', 'two'] (no text has 3 words), n = 3", ["one", "two"], 3),
             ("['the cat sat on the mat', 'on the mat the cat sat'], n = 3",
              ["the cat sat on the mat", "on the mat the cat sat"], 3),
             ("6 random texts, n = 2", _sentences(rng, 6), 2),
             ("10 random texts, n = 3", _sentences(rng, 10), 3)]
    for case, texts, n in cases:
        got = call(name, distinct_n, list(texts), n, what="distinct_n(texts, n)", bans=BANS[name])
        got = as_number(name, got, "distinct_n(texts, n)")
        ref = _distinct_n(texts, n)
        if math.isnan(got):
            fail(name, f"distinct_n for {case}", ref, got,
                 "with no n-gram at all (texts shorter than n words) return 0.0, not 0 / 0")
        per_text = [_distinct_n([t], n) for t in texts if len(t.split()) >= n]
        chars = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
        hint = ("collect the n-grams (tuples of n consecutive words) of every text in one list; "
                "the answer is the number of different ones over the number of all of them")
        if per_text and abs(got - sum(per_text) / len(per_text)) < 1e-9 and abs(got - ref) > 1e-9:
            hint = ("this averages a ratio per text; pool the n-grams of all texts first, so that an "
                    "n-gram repeated across samples counts as repeated")
        elif chars and abs(got - len(set(chars)) / len(chars)) < 1e-9 and abs(got - ref) > 1e-9:
            hint = "these are character n-grams; split each text into words (str.split()) first"
        elif abs(got - len({g for t in texts for g in _grams(t, n)})) < 1e-9 and abs(got - ref) > 1e-9:
            hint = "divide the number of distinct n-grams by the number of all n-grams"
        expect_close(name, f"distinct_n for {case}", torch.tensor(got), torch.tensor(ref), atol=1e-9,
                     hint=hint)
    passed(name, "distinct-n pooled over the texts, on word n-grams, on 8 cases")


def _grams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


# --- beam search with an end token and a length penalty -----------------------------------

def _beam_search_lp(next_logprobs, prompt, max_new, beam_width, eos, alpha):
    live = [(prompt.tolist(), 0.0)]
    finished = []
    for _ in range(max_new):
        if not live:
            break
        logp = next_logprobs(torch.tensor([seq for seq, _ in live])).double()    # (N, V)
        candidates = [(seq + [v], score + logp[i, v].item())
                      for i, (seq, score) in enumerate(live) for v in range(logp.shape[1])]
        candidates.sort(key=lambda c: -c[1])
        live = []
        for seq, score in candidates[:beam_width]:
            (finished if seq[-1] == eos else live).append((seq, score))
    finished += live
    n0 = len(prompt)
    best = max(finished, key=lambda c: c[1] / (len(c[0]) - n0) ** alpha)
    return best[0][n0:], best[1] / (len(best[0]) - n0) ** alpha


class _BigramModel:
    """A toy language model: log-probabilities of the next token given the last one."""

    def __init__(self, V: int, eos: int, g: torch.Generator, eos_bias: float):
        logits = 2.0 * torch.randn(V, V, generator=g)
        logits[:, eos] += eos_bias                       # how eager the model is to stop
        self.table = torch.log_softmax(logits, dim=-1)   # (V, V)
        self.calls = 0

    def __call__(self, seqs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[torch.as_tensor(seqs)[:, -1]].clone()    # (N, V)


def check_beam_search_lp(beam_search_lp, seed: int = 0) -> None:
    """``beam_search_lp``: beam search that stops beams at ``eos`` and ranks them by score / length^alpha."""
    name = "check_beam_search_lp"
    require_callable(name, beam_search_lp, "beam_search_lp", n_args=6)
    g = _gen(seed)
    cases = [("V = 5, width 2, alpha = 0 (no penalty)", 5, 2, 4, 0.0, 1.0),
             ("V = 5, width 2, alpha = 1 (mean log-probability)", 5, 2, 4, 1.0, 1.0),
             ("V = 6, width 3, alpha = 0.6", 6, 3, 6, 0.6, 0.5),
             ("V = 4, width 1 (greedy with an end token), alpha = 0.6", 4, 1, 5, 0.6, 1.0),
             ("V = 7, width 5, alpha = 1, a model eager to stop", 7, 5, 6, 1.0, 2.5),
             ("V = 6, width 4, alpha = 0.8, a model that rarely stops", 6, 4, 5, 0.8, -2.0)]
    for case, V, width, max_new, alpha, eos_bias in cases:
        for trial in range(3):
            eos = int(torch.randint(0, V, (), generator=g))
            model = _BigramModel(V, eos, g, eos_bias)
            prompt = torch.randint(0, V, (int(torch.randint(1, 4, (), generator=g)),), generator=g)
            prompt[prompt == eos] = (eos + 1) % V
            what = f"{case}, eos = {eos}, prompt {prompt.tolist()}, max_new = {max_new}"
            got = call(name, beam_search_lp, model, prompt.clone(), max_new, width, eos, alpha,
                       what="beam_search_lp(next_logprobs, prompt, max_new, beam_width, eos, alpha)",
                       bans=BANS[name])
            if not isinstance(got, tuple) or len(got) != 2:
                fail(name, what, "a pair (tokens, score)", got,
                     "return the best hypothesis's new tokens and its length-normalised score")
            tokens, score = got
            tokens = as_tensor(name, torch.as_tensor(tokens) if isinstance(tokens, list) else tokens,
                               "the tokens", shape=(-1,))
            score = as_number(name, score, "the score")
            ref_tokens, ref_score = _beam_search_lp(model, prompt, max_new, width, eos, alpha)
            if (tokens.tolist() != ref_tokens or abs(score - ref_score) > 1e-4) and not _tied_best(
                    model, prompt, tokens.tolist(), score, ref_score, max_new, eos, alpha):
                hint = _beam_hint(model, prompt, max_new, width, eos, alpha, tokens.tolist(), score,
                                  ref_tokens)
                fail(name, what, f"tokens {ref_tokens}, score {ref_score:.5f}",
                     f"tokens {tokens.tolist()}, score {score:.5f}", hint)
    passed(name, "end tokens, length penalties and widths agree with the reference on 18 searches")


def _raw_score(model, prompt, tokens) -> float:
    """The test model's log-probability of ``tokens`` after ``prompt`` (0 for no tokens)."""
    full = prompt.tolist() + tokens
    return sum(model.table[full[i - 1], full[i]].item() for i in range(len(prompt), len(full)))


def _tied_best(model, prompt, tokens, score, ref_score, max_new, eos, alpha) -> bool:
    """A different hypothesis with exactly the best score is also right.

    The test model is a bigram table, so two orderings of the same transitions (a cycle walked
    from another start) have the same log-probability: the search may return either."""
    if not tokens or len(tokens) > max_new or eos in tokens[:-1]:
        return False
    if tokens[-1] != eos and len(tokens) != max_new:
        return False
    if any(not 0 <= t < model.table.shape[0] for t in tokens):
        return False
    true = _raw_score(model, prompt, tokens) / len(tokens) ** alpha
    return abs(true - ref_score) < 1e-6 and abs(score - ref_score) < 1e-4


def _beam_hint(model, prompt, max_new, width, eos, alpha, tokens, score, ref_tokens) -> str:
    full = prompt.tolist() + tokens
    raw = _raw_score(model, prompt, tokens)
    if tokens and abs(score - raw) < 1e-4 and alpha > 0:
        return ("the score is the raw log-probability: divide it by the number of new tokens "
                "(the end token included) to the power alpha")
    if tokens and alpha > 0 and abs(score - raw / len(full) ** alpha) < 1e-4:
        return "the length counts only the new tokens (the end token included), not the prompt"
    if eos in tokens[:-1]:
        return ("a beam that produced the end token is finished: set it aside and do not extend it "
                "further")
    if ref_tokens and ref_tokens[-1] == eos and (not tokens or tokens[-1] != eos):
        return ("keep the finished beams (those ending in the end token) as candidates for the answer; "
                "the best hypothesis may be a short one")
    return ("each step: extend every live beam by every token, keep the beam_width best extensions by "
            "total log-probability, set aside those that end in eos; at the end rank all finished beams "
            "by score / length ** alpha")
