"""Checks for chapter 17, Ethics and responsible development (``exercises/17_ethics.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``rate_at_fpr(null_scores, scores, fpr) -> (threshold, rate)``: a detector's threshold
  calibrated on negatives (the (floor(fpr N) + 1)-th largest of their scores, so at most a
  share fpr of them lies strictly above it) and the share of positives strictly above it
* ``watermark_z(tokens, green, gamma, start) -> float``: the detector's one-sided z for one
  text (T,), scoring tokens from ``start`` on, each distinct (previous, token) pair once
  (Kirchenbauer et al. 2023; the distinct-pair rule as in Fernandez et al. 2023)
* ``exposure(scores, secret_index) -> float``: log2(N) - log2(rank of the secret) among N
  candidates scored by the model's log-likelihood (Carlini et al. 2019), ties counting
  against the secret
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, diagnose, expect_close, fail, passed,
                                         require_callable, seeded)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use
# ---------------------------------------------------------------------------------------
_W = "coursekit.watermark."
_PACKAGE_WATERMARK = ban(_W + "Watermark.processor", _W + "Watermark.greens", _W + "Watermark.z_score",
                         _W + "Watermark.detect", _W + "z_score",
                         reason="coursekit's watermark is the lesson's answer; write the step yourself")
BANS = {
    "check_rate_at_fpr": [
        ban("coursekit.detect.rate_at_fpr", reason="coursekit's rate_at_fpr is the lesson's answer; "
            "calibrate the threshold yourself"),
    ],
    "check_watermark_z": [_PACKAGE_WATERMARK],
    "check_exposure": [
        ban("coursekit.memorise.exposure", "coursekit.memorise.secret_exposures",
            reason="coursekit's exposure is the lesson's answer; rank the secret yourself"),
    ],
}

_gen = seeded


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.watermark and coursekit.memorise)
# ---------------------------------------------------------------------------------------
def _z(tokens: torch.Tensor, green: torch.Tensor, gamma: float, start: int, distinct: bool = True,
       own_row: bool = False) -> float:
    pairs = [(int(tokens[i - 1]), int(tokens[i])) for i in range(start, len(tokens))]
    if distinct:
        pairs = sorted(set(pairs))
    n = len(pairs)
    hits = sum(bool(green[b, a] if own_row else green[a, b]) for a, b in pairs)
    return (hits - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def _exposure(scores: torch.Tensor, k: int, ties_for: bool = False, zero_based: bool = False,
              ascending: bool = False, log=math.log2) -> float:
    s = scores.double()
    mine = s[k]
    if ascending:
        better = (s < mine) if ties_for else (s <= mine)
    else:
        better = (s > mine) if ties_for else (s >= mine)
    rank = int(better.sum()) - (0 if ties_for else 1) + (0 if zero_based else 1)
    if rank <= 0:
        return float("inf")
    return log(len(s)) - log(rank)


def _table(V: int, gamma: float, g: torch.Generator) -> torch.Tensor:
    """A random (V, V) green table: each row has round(gamma V) green tokens."""
    k = round(gamma * V)
    rows = torch.argsort(torch.rand(V, V, generator=g), dim=1)[:, :k]
    table = torch.zeros(V, V, dtype=torch.bool)
    table.scatter_(1, rows, True)
    return table


# ---------------------------------------------------------------------------------------
# check_rate_at_fpr
# ---------------------------------------------------------------------------------------
def check_rate_at_fpr(rate_at_fpr, seed: int = 0) -> None:
    """``rate_at_fpr(null_scores, scores, fpr)``: (threshold, detection rate) calibrated on the negatives."""
    name = "check_rate_at_fpr"
    require_callable(name, rate_at_fpr, "rate_at_fpr", n_args=3)
    g = _gen(seed)
    cases = [("10 negatives 1..10, fpr 0.2: two may pass", torch.arange(1.0, 11.0),
              torch.tensor([8.0, 8.5, 9.0, 9.5, 10.0, 12.0]), 0.2),
             ("100 negatives, fpr 0.01 (fpr N = 1 exactly)", torch.randn(100, generator=g),
              torch.randn(50, generator=g) + 2.0, 0.01),
             ("positives that tie with the threshold do not pass", torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]),
              torch.tensor([3.0, 3.0, 3.0, 3.5, 5.0]), 0.2),
             ("fpr 0: nothing above the largest negative", torch.tensor([0.3, 2.0, -1.0, 0.5]),
              torch.tensor([1.0, 2.0, 2.5, 3.0]), 0.0),
             ("1,000 negatives, fpr 0.05 (a detector's probabilities)", torch.rand(1000, generator=g),
              torch.rand(300, generator=g) ** 0.3, 0.05)]
    for n, fpr in [(237, 0.01), (64, 0.1), (2000, 0.013)]:
        cases.append((f"{n} negatives, fpr {fpr}", torch.randn(n, generator=g),
                      torch.randn(n // 2, generator=g) + 1.5, fpr))
    for case, null, pos, fpr in cases:
        ins = (null.clone(), pos.clone(), fpr)
        got = call(name, rate_at_fpr, *ins, what="rate_at_fpr(null_scores, scores, fpr)", bans=BANS[name])
        if not (torch.equal(ins[0], null) and torch.equal(ins[1], pos)):
            fail(name, case + ": the scores must not change", "the scores as they were", "they were changed",
                 "do not sort in place (x.sort() returns a new tensor; x.sort_() or numpy's .sort() do not)")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, case, "a pair (threshold, detection rate)", repr(got)[:80],
                 "return two numbers: the threshold and the share of scores above it")
        thr = as_number(name, got[0], "the threshold")
        rate = as_number(name, got[1], "the detection rate")
        ref_thr, ref_rate = _at_fpr(null, pos, fpr)
        if not math.isclose(thr, ref_thr, rel_tol=1e-6, abs_tol=1e-6):
            q = torch.quantile(null.double(), 1 - fpr).item()
            hint = ("torch.quantile interpolates between scores; the threshold must be one of the negatives' "
                    "scores: the (floor(fpr N) + 1)-th largest" if math.isclose(thr, q, abs_tol=1e-6) else
                    "that threshold comes from the positives; calibrate it on the negatives (null_scores)"
                    if math.isclose(thr, _at_fpr(pos, null, fpr)[0], abs_tol=1e-6) else
                    "that threshold lets a share fpr of the negatives pass from the bottom: count from the "
                    "largest score down" if math.isclose(thr, _at_fpr(-null, pos, fpr)[0] * -1, abs_tol=1e-6) else
                    "the (floor(fpr N))-th largest lets too few negatives pass when fpr N is a whole number: "
                    "take the (floor(fpr N) + 1)-th largest" if math.isclose(thr, _at_fpr(null, pos, fpr, k_off=-1)[0],
                                                                          abs_tol=1e-6) else
                    "sort the negatives' scores from largest down and take the one at position floor(fpr N) "
                    "(counting from 0): at most fpr N negatives lie strictly above it")
            fail(name, case + ": the threshold", ref_thr, thr, hint)
        if not math.isclose(rate, ref_rate, abs_tol=1e-6):
            hint = ("a score equal to the threshold does not pass: count scores strictly above it"
                    if math.isclose(rate, (pos.double() >= ref_thr).double().mean().item(), abs_tol=1e-6) else
                    "the detection rate is measured on the positives (scores), not on the negatives"
                    if math.isclose(rate, (null.double() > ref_thr).double().mean().item(), abs_tol=1e-6) else
                    "the rate is the share of scores strictly above the threshold (a number in [0, 1])")
            fail(name, case + ": the detection rate", ref_rate, rate, hint)
    passed(name, f"thresholds from the negatives' order and rates above them, on {len(cases)} cases")


def _at_fpr(null: torch.Tensor, pos: torch.Tensor, fpr: float, k_off: int = 0) -> tuple[float, float]:
    ordered = sorted(null.double().tolist(), reverse=True)
    k = math.floor(fpr * len(ordered)) + k_off
    if k < 0:
        return float("nan"), float("nan")
    thr = ordered[k]
    return thr, sum(1 for p in pos.double().tolist() if p > thr) / len(pos)


# ---------------------------------------------------------------------------------------
# check_watermark_z
# ---------------------------------------------------------------------------------------
def check_watermark_z(watermark_z, seed: int = 0) -> None:
    """``watermark_z(tokens, green, gamma, start)``: the one-sided z over distinct (previous, token) pairs."""
    name = "check_watermark_z"
    require_callable(name, watermark_z, "watermark_z", n_args=4)
    g = _gen(seed)
    green4 = torch.tensor([[True, False, True, False], [False, False, True, True],
                           [True, True, False, False], [False, True, False, True]])
    cases = [("a short text 0 2 1 3 1, start 1, gamma 0.5", torch.tensor([0, 2, 1, 3, 1]), green4, 0.5, 1),
             ("the same text scored from start 3", torch.tensor([0, 2, 1, 3, 1]), green4, 0.5, 3),
             ("a text that repeats one pair (0 2 0 2 0 2 0 3)", torch.tensor([0, 2, 0, 2, 0, 2, 0, 3]),
              green4, 0.5, 1)]
    for V, T, gamma in [(13, 60, 0.25), (40, 120, 0.5), (6, 80, 0.5)]:
        green = _table(V, gamma, g)
        tokens = torch.randint(0, V, (T,), generator=g)
        cases.append((f"{T} random tokens over {V}, gamma {gamma}, start 5", tokens, green, gamma, 5))
    # a watermarked-looking text: every token green after its predecessor
    V, gamma = 30, 0.25
    green = _table(V, gamma, g)
    toks = [int(torch.randint(0, V, (1,), generator=g))]
    for _ in range(70):
        options = torch.nonzero(green[toks[-1]]).flatten()
        toks.append(int(options[torch.randint(0, len(options), (1,), generator=g)]))
    cases.append(("a text whose every token is green (71 tokens over 30, gamma 0.25), start 1",
                  torch.tensor(toks), green, gamma, 1))
    for case, tokens, green, gamma, start in cases:
        ins = (tokens.clone(), green.clone(), gamma, start)
        got = call(name, watermark_z, *ins, what="watermark_z(tokens, green, gamma, start)", bans=BANS[name])
        got = as_number(name, got, "the z-score")
        ref = _z(tokens, green, gamma, start)
        n_distinct = len({(int(tokens[i - 1]), int(tokens[i])) for i in range(start, len(tokens))})
        hits = ref * math.sqrt(n_distinct * gamma * (1 - gamma)) + gamma * n_distinct
        wrong = [
            (_z(tokens, green, gamma, start, distinct=False),
             "a (previous, token) pair that repeats is green or red every time: count each distinct pair once"),
            (_z(tokens, green, gamma, start, own_row=True),
             "the list that judges token t is the one its previous token seeds: green[previous, token], "
             "not green[token, previous]"),
            (_z(tokens, green, gamma, 1) if start != 1 else float("nan"),
             "score only the tokens from start on (the prompt before it was not written by the model)"),
            ((hits - gamma * n_distinct) / math.sqrt(n_distinct * gamma),
             "the variance of a count of n tokens, each green with chance gamma, is n gamma (1 - gamma)"),
            ((hits - gamma * n_distinct) / (n_distinct * gamma * (1 - gamma)),
             "divide by the standard deviation, the square root of n gamma (1 - gamma)"),
            (hits / n_distinct, "that is the green share; the detector needs the z-score of the count"),
        ]
        hint = diagnose(torch.tensor(got), [(torch.tensor(v), h) for v, h in wrong
                                            if not math.isnan(v)],
                        "z = (greens - gamma n) / sqrt(n gamma (1 - gamma)) over the n distinct "
                        "(previous, token) pairs from start on", right=torch.tensor(ref))
        expect_close(name, case, torch.tensor(got), torch.tensor(ref), atol=1e-4, hint=hint, what="the z-score")
    passed(name, f"distinct pairs, the previous token's list, start and the z formula, on {len(cases)} texts")


# ---------------------------------------------------------------------------------------
# check_exposure
# ---------------------------------------------------------------------------------------
def check_exposure(exposure, seed: int = 0) -> None:
    """``exposure(scores, secret_index)``: log2 N - log2 rank, rank 1 = the most likely, ties against."""
    name = "check_exposure"
    require_callable(name, exposure, "exposure", n_args=2)
    g = _gen(seed)
    cases = [("the secret is the most likely of 8 candidates", torch.tensor([-3.0, -9, -4, -7, -5, -8, -6, -10]), 0),
             ("the secret is the least likely of 4", torch.tensor([-1.0, -2, -3, -9]), 3),
             ("the secret ties with two others for first place among 16",
              torch.tensor([-2.0, -2.0, -5, -6, -2.0] + [-7.0 - i for i in range(11)]), 4),
             ("the secret sits in the middle of 1,000 random scores", torch.randn(1000, generator=g), 0)]
    for n in (64, 255, 4096):
        scores = -10 * torch.rand(n, generator=g)
        k = int(torch.randint(0, n, (1,), generator=g))
        cases.append((f"{n} candidates, the secret at index {k}", scores, k))
    k = int(torch.randint(0, 200, (1,), generator=g))
    scores = -5 * torch.rand(200, generator=g)
    scores[k] = scores.max() + 1.0
    cases.append((f"200 candidates, the secret (index {k}) ahead of all", scores, k))
    for case, scores, k in cases:
        ins = (scores.clone(), k)
        got = call(name, exposure, *ins, what="exposure(scores, secret_index)", bans=BANS[name])
        if not torch.equal(ins[0], scores):
            fail(name, case + ": scores must not change", "the scores as they were", "they were changed",
                 "do not sort in place: use torch.sort / sorted, which return new objects")
        got = as_number(name, got, "the exposure")
        ref = _exposure(scores, k)
        wrong = [
            (_exposure(scores, k, ties_for=True),
             "a candidate that ties with the secret ranks ahead of it (ties count against the secret)"),
            (_exposure(scores, k, zero_based=True),
             "ranks start at 1 (the most likely candidate): log2(N) - log2(1) = log2(N) bits at best"),
            (_exposure(scores, k, ascending=True),
             "higher log-likelihood means more likely: rank 1 is the largest score"),
            (_exposure(scores, k, log=math.log),
             "exposure is in bits: use log base 2"),
            (math.log2(len(scores) - 1) - math.log2(max(1, int((scores >= scores[k]).sum()))),
             "N counts every candidate, the secret too"),
        ]
        wrong = [(v, h) for v, h in wrong if math.isfinite(v)]
        if not math.isfinite(got) or got > math.log2(len(scores)) + 1e-9:
            fail(name, case, ref, got, "ranks start at 1 (the most likely candidate): the most exposure "
                 f"N candidates allow is log2(N) = {math.log2(len(scores)):.4g} bits, and a rank of 0 gives log2(0)")
        hint = diagnose(torch.tensor(got), [(torch.tensor(v), h) for v, h in wrong],
                        "rank = 1 + the number of other candidates scoring at least the secret's score; "
                        "exposure = log2(N) - log2(rank)", right=torch.tensor(ref))
        expect_close(name, case, torch.tensor(got), torch.tensor(ref), atol=1e-6, hint=hint, what="the exposure")
    passed(name, f"rank from the top, ties against the secret, bits, on {len(cases)} cases")
