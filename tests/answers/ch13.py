"""Chapter 13's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

from collections import Counter

import torch

import coursekit.evaluate as E
import coursekit.sampling as S
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


def sample_from_probs(probs, u):
    cdf = probs.cumsum(dim=-1)                                           # (B, V)
    above = (cdf > u[:, None]) & (probs > 0)                             # (B, V)
    last = (probs > 0).long().cumsum(-1).argmax(-1)                      # the last token with p > 0
    first = above.long().argmax(-1)                                      # first True
    return torch.where(above.any(-1), first, last)


def typical_filter(logits, mass):
    logp = torch.log_softmax(logits, dim=-1)                             # (B, V)
    entropy = -(logp.exp() * logp).sum(-1, keepdim=True)                 # (B, 1)
    order = (-logp - entropy).abs().argsort(dim=-1)                      # most typical first
    p_sorted = logp.exp().gather(-1, order)
    keep_sorted = (p_sorted.cumsum(-1) - p_sorted) < mass
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def distinct_n(texts, n):
    counts = Counter()
    for text in texts:
        w = text.split()
        counts.update(zip(*(w[i:] for i in range(n))))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def beam_search_lp(next_logprobs, prompt, max_new, beam_width, eos, alpha):
    import heapq
    start = tuple(prompt.tolist())
    beams, done = [(0.0, start)], []
    for _ in range(max_new):
        if not beams:
            break
        lp = next_logprobs(torch.tensor([b for _, b in beams])).double().tolist()
        ext = [(s + row[v], b + (v,)) for (s, b), row in zip(beams, lp) for v in range(len(row))]
        top = heapq.nlargest(beam_width, ext, key=lambda e: e[0])
        done += [e for e in top if e[1][-1] == eos]
        beams = [e for e in top if e[1][-1] != eos]
    done += beams
    n0 = len(start)
    norm = [(s / (len(b) - n0) ** alpha, b) for s, b in done]
    score, best = max(norm, key=lambda e: e[0])
    return torch.tensor(best[n0:]), score


RIGHT = [
    Case("check_sample_from_probs", sample_from_probs, why="vectorised"),
    Case("check_sample_from_probs", sample_from_probs, why="another seed", kwargs={"seed": 5}),
    Case("check_typical_filter", typical_filter, why="argsort and scatter"),
    Case("check_typical_filter", typical_filter, why="another seed", kwargs={"seed": 3}),
    Case("check_beam_search_lp", beam_search_lp, why="heapq over tuples"),
    Case("check_beam_search_lp", beam_search_lp, why="another seed", kwargs={"seed": 4}),
    Case("check_distinct_n", distinct_n, why="Counter of zipped words"),
    Case("check_distinct_n", distinct_n, why="another seed", kwargs={"seed": 9}),
]


# --- wrong answers --------------------------------------------------------------------------

def _ge(probs, u):                      # >= instead of >: boundaries and zero-probability tokens
    return (probs.cumsum(-1) < u[:, None]).sum(-1).clamp(max=probs.shape[1] - 1)


def _off_by_one(probs, u):
    return ((probs.cumsum(-1) <= u[:, None]).sum(-1) - 1).clamp(min=0)


_draw = torch.multinomial


def _multinomial_seeded(probs, u):
    return _draw(probs, 1, generator=torch.Generator().manual_seed(int(1000 * u[0])))[:, 0]


def _getattr_multinomial(probs, u):
    return getattr(torch, "multi" + "nomial")(probs, 1)[:, 0]


def _categorical(probs, u):
    return torch.distributions.Categorical(probs=probs).sample()


def _next_token(probs, u):
    return S.next_token(probs.log())[:, 0]


def _top_p_order(logits, mass):         # sorts by probability: top-p, not typical
    p = torch.softmax(logits, -1)
    order = p.argsort(-1, descending=True)
    ps = p.gather(-1, order)
    keep = torch.zeros_like(ps, dtype=torch.bool).scatter(-1, order, (ps.cumsum(-1) - ps) < mass)
    return logits.masked_fill(~keep, float("-inf"))


def _no_abs(logits, mass):
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1, keepdim=True)
    order = (-logp - entropy).argsort(-1)
    ps = logp.exp().gather(-1, order)
    keep = torch.zeros_like(ps, dtype=torch.bool).scatter(-1, order, (ps.cumsum(-1) - ps) < mass)
    return logits.masked_fill(~keep, float("-inf"))


def _drops_crossing(logits, mass):      # keeps only while the mass *including* the token is below
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1, keepdim=True)
    order = (-logp - entropy).abs().argsort(-1)
    ps = logp.exp().gather(-1, order)
    keep = torch.zeros_like(ps, dtype=torch.bool).scatter(-1, order, ps.cumsum(-1) < mass)
    return logits.masked_fill(~keep, float("-inf"))


def _renormalised(logits, mass):
    return torch.log_softmax(typical_filter(logits, mass), -1)


def _via_top_p(logits, mass):
    return S.top_p_filter(logits, mass)


_alias_top_p = S.top_p_filter


def _topk_dodge(logits, mass):
    k = max(1, int(mass * logits.shape[-1]))
    kth = torch.topk(logits, k, -1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _per_text(texts, n):
    ratios = [distinct_n([t], n) for t in texts if len(t.split()) >= n]
    return sum(ratios) / len(ratios) if ratios else 0.0


def _chars(texts, n):
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _count_only(texts, n):
    return float(len({g for t in texts for g in zip(*(t.split()[i:] for i in range(n)))}))


def _nan_when_empty(texts, n):
    grams = [g for t in texts for g in zip(*(t.split()[i:] for i in range(n)))]
    return len(set(grams)) / len(grams) if grams else float("nan")


def _split_on_space(texts, n):          # " " keeps empty words and newlines inside words
    grams = [tuple(w[i:i + n]) for t in texts for w in [t.split(" ")] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


_coursekit_distinct = E.distinct_n


def _beam(next_logprobs, prompt, max_new, beam_width, eos, alpha, *, stop_at_eos=True, keep_finished=True,
          length=lambda b, n0: len(b) - n0, power=True):
    """A configurable beam search: each switch turned off is one typical mistake."""
    start = tuple(prompt.tolist())
    beams, done = [(0.0, start)], []
    for _ in range(max_new):
        if not beams:
            break
        lp = next_logprobs(torch.tensor([b for _, b in beams])).double().tolist()
        ext = sorted(((s + row[v], b + (v,)) for (s, b), row in zip(beams, lp) for v in range(len(row))),
                     key=lambda e: -e[0])[:beam_width]
        if stop_at_eos:
            done += [e for e in ext if e[1][-1] == eos]
            ext = [e for e in ext if e[1][-1] != eos]
        beams = ext
    done = (done if keep_finished else []) + beams
    n0 = len(start)
    pick = max(done, key=lambda e: e[0] / length(e[1], n0) ** alpha if power else e[0])
    score = pick[0] / length(pick[1], n0) ** alpha if power else pick[0]
    return torch.tensor(pick[1][n0:]), score


_sampling_beam = S.beam_search


def _coursekit_beam(next_logprobs, prompt, max_new, beam_width, eos, alpha):
    class Wrapped(torch.nn.Module):
        config = type("C", (), {"block_size": 64})

        def new_cache(self):
            return None

        def forward(self, idx, cache=None):
            return next_logprobs(idx)[:, None].expand(-1, idx.shape[1], -1), None
    out, score = _sampling_beam(Wrapped(), prompt[None], max_new, beam_width=beam_width, use_cache=False)
    return out[0, len(prompt):], score.item()


WRONG = [
    # sample_from_probs
    Case("check_sample_from_probs", lambda probs, u: probs.argmax(-1), "greedy", "argmax"),
    Case("check_sample_from_probs", _ge, "greater than", ">= u"),
    Case("check_sample_from_probs", _off_by_one, "off by one", "index before"),
    Case("check_sample_from_probs", lambda probs, u: (probs.cumsum(-1) > u[:, None]).float().argmax(-1).float(),
         "integer token ids", "float ids"),
    Case("check_sample_from_probs", lambda probs, u: (probs.cumsum(-1) > u[0]).long().argmax(-1),
         "cumulative sum", "first u for every row"),
    Case("check_sample_from_probs", _multinomial_seeded, "torch.multinomial", "multinomial alias"),
    Case("check_sample_from_probs", _getattr_multinomial, "torch.multinomial", "getattr multinomial"),
    Case("check_sample_from_probs", _categorical, "Categorical", "Categorical"),
    Case("check_sample_from_probs", _next_token, "next_token", "coursekit's next_token"),
    # typical_filter
    Case("check_typical_filter", _top_p_order, "top-p", "sorted by probability"),
    Case("check_typical_filter", _no_abs, "absolute value", "no abs"),
    Case("check_typical_filter", _drops_crossing, "crosses", "drops the crossing token"),
    Case("check_typical_filter", _renormalised, "no renormalising", "log-softmax of the kept"),
    Case("check_typical_filter", _via_top_p, "coursekit.sampling.top_p_filter", "coursekit's top_p_filter"),
    Case("check_typical_filter", lambda logits, mass: _alias_top_p(logits, mass),
         "coursekit.sampling.top_p_filter", "alias of top_p_filter"),
    Case("check_typical_filter", lambda logits, mass: getattr(S, "top_" + "k_filter")(logits, 3),
         "top_k_filter", "getattr top_k_filter"),
    Case("check_typical_filter", _topk_dodge, "torch.topk", "torch.topk"),
    # beam_search_lp
    Case("check_beam_search_lp", lambda *a: _beam(*a, power=False), "raw log-probability", "no length penalty"),
    Case("check_beam_search_lp", lambda *a: _beam(*a, length=lambda b, n0: len(b)), "not the prompt",
         "length counts the prompt"),
    Case("check_beam_search_lp", lambda *a: _beam(*a, stop_at_eos=False), "end token", "extends finished beams"),
    Case("check_beam_search_lp", lambda *a: _beam(*a, keep_finished=False), "finished beams",
         "forgets finished beams"),
    Case("check_beam_search_lp", _coursekit_beam, "coursekit.sampling.beam_search", "coursekit's beam_search"),
    Case("check_beam_search_lp", lambda *a: getattr(S, "beam" + "_search")(*a), "coursekit.sampling.beam_search",
         "getattr beam_search"),
    # distinct_n
    Case("check_distinct_n", _per_text, "pool the n-grams", "average per text"),
    Case("check_distinct_n", _chars, "character n-grams", "characters"),
    Case("check_distinct_n", _count_only, "divide the number", "count only"),
    Case("check_distinct_n", _nan_when_empty, "not 0 / 0", "nan when empty"),
    Case("check_distinct_n", _split_on_space, "largest difference", "split(' ')"),
    Case("check_distinct_n", lambda texts, n: _coursekit_distinct(texts, n), "coursekit.evaluate.distinct_n",
         "alias of coursekit's"),
    Case("check_distinct_n", lambda texts, n: getattr(E, "distinct" + "_n")(texts, n),
         "coursekit.evaluate.distinct_n", "getattr coursekit's"),
]
