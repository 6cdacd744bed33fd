"""Checks of chapter 01 (generative vs discriminative; a Markov-chain text model).

Mirrors ``exercises/01_generative_vs_discriminative.ipynb``: ``bigram_probs``,
``sample_categorical``, ``log_likelihood`` and ``bayes_posterior``. The references are
written here with plain loops, independently of ``coursekit.models.markov``. Each check
runs fixed cases and random ones drawn from ``seed`` (the solutions' hidden tests pass
``ck.checks.hidden_seed(...)``). ``BANS`` lists what each answer may not use: coursekit's
Markov chain, which is the answer itself, and the torch built-in that would do the job.
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, fail, passed,
                                         require_callable, scan_answer)
from coursekit.checks.forbidden import ban

_CHAIN = "coursekit.models.markov.MarkovChain"

BANS = {
    "check_bigram_probs": [
        ban(_CHAIN, f"{_CHAIN}.fit", f"{_CHAIN}.transition_matrix", f"{_CHAIN}.next_probs",
            reason="the exercise asks you to count the pairs yourself; coursekit's "
                   "MarkovChain (its transition_matrix) is the answer itself"),
    ],
    "check_sample_categorical": [
        ban("torch.multinomial", "torch.Tensor.multinomial",
            "torch.distributions.Categorical", f"{_CHAIN}.sample",
            ops=["aten::multinomial"],
            reason="the exercise asks you to draw by the inverse CDF yourself; "
                   "torch.multinomial (and Categorical, which calls it) does the drawing "
                   "for you, with different numbers"),
    ],
    "check_log_likelihood": [
        ban(_CHAIN, f"{_CHAIN}.log_likelihood", f"{_CHAIN}.log_prob", f"{_CHAIN}.perplexity",
            reason="the exercise asks you to add up the log-probabilities yourself; "
                   "coursekit's MarkovChain.log_likelihood is the answer itself"),
    ],
    "check_bayes_posterior": [
        ban("torch.softmax", "torch.Tensor.softmax", "torch.nn.functional.softmax",
            "torch.special.softmax", "torch.nn.Softmax",
            "torch.log_softmax", "torch.Tensor.log_softmax", "torch.nn.functional.log_softmax",
            "torch.special.log_softmax",
            ops=["aten::_softmax", "aten::_log_softmax"],
            reason="the exercise asks you to derive the stable normalisation yourself; "
                   "softmax is that normalisation, already written"),
        ban("torch.logsumexp", "torch.Tensor.logsumexp", "torch.special.logsumexp",
            ops=["aten::logsumexp"],
            reason="the exercise asks you to derive the stable normalisation yourself; "
                   "logsumexp already contains the trick"),
    ],
}


def _not_itself(check: str, fn, what: str) -> None:
    """Refuse an answer that is one of the banned objects itself (``f = torch.softmax``)."""
    scan_answer(check, lambda *args: fn(*args), BANS[check], what)


# -- references --------------------------------------------------------------------------

def _bigram_probs(text: str, vocab: list[str], alpha: float) -> torch.Tensor:
    stoi = {ch: i for i, ch in enumerate(vocab)}
    V = len(vocab)
    counts = torch.zeros(V, V, dtype=torch.float64)
    for a, b in zip(text, text[1:]):
        counts[stoi[a], stoi[b]] += 1
    return (counts + alpha) / (counts.sum(1, keepdim=True) + alpha * V)


def _sample_categorical(probs: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator)                           # (n,) uniform in [0, 1)
    cdf = torch.cumsum(probs.float(), dim=0)                          # (V,)
    return torch.searchsorted(cdf, u, right=True).clamp(max=len(probs) - 1)


def _log_likelihood(text: str, P: torch.Tensor, stoi: dict[str, int]) -> float:
    return sum(math.log(P[stoi[a], stoi[b]].item()) for a, b in zip(text, text[1:]))


def _bayes_posterior(log_px_given_y: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Bayes' rule with plain loops over rows, in float64 (an oracle, not the exercise)."""
    joint = log_px_given_y.double() + log_prior.double()             # (N, C) log p(x, y)
    out = torch.zeros_like(joint)
    for n, row in enumerate(joint):
        top = max(v for v in row.tolist())
        weights = [math.exp(v - top) for v in row.tolist()]
        total = sum(weights)
        out[n] = torch.tensor([w / total for w in weights], dtype=torch.float64)
    return out


def _show(t: torch.Tensor):
    """A small tensor as nested lists rounded to 4 decimals; a big one as it is."""
    if t.numel() > 36:
        return t
    rounded = torch.round(t.detach().cpu().double() * 1e4) / 1e4
    return str(rounded.tolist())


def _rounded(p: torch.Tensor) -> list[float]:
    return [round(v, 4) for v in p.tolist()]


def _random_text(g: torch.Generator, chars: str, n: int) -> str:
    return "".join(chars[i] for i in torch.randint(0, len(chars), (n,), generator=g).tolist())


# -- checks ------------------------------------------------------------------------------

def check_bigram_probs(bigram_probs, seed: int = 0) -> None:
    """``bigram_probs(text, vocab, alpha)``: (V, V) with P[i, j] = p(vocab[j] | vocab[i])."""
    name = "check_bigram_probs"
    bans = BANS[name]
    require_callable(name, bigram_probs, "bigram_probs", n_args=3)
    _not_itself(name, bigram_probs, "bigram_probs")
    g = torch.Generator().manual_seed(seed)
    rand_alpha = round(0.05 + torch.rand((), generator=g).item(), 3)
    cases = [
        ("abracadabra", list("abcdr"), 0.0),
        ("abracadabra", list("abcdr"), 1.0),
        ("abracadabra", list("rdcba"), 0.5),   # vocab not in sorted order
        ("the cat sat on the mat. ", sorted(set("the cat sat on the mat. ")), 0.5),
        ("aab", list("abz"), 0.1),             # 'z' never appears: its row is uniform
        (_random_text(g, "xyz w", 300), list("wxyz "), rand_alpha),
    ]
    for text, vocab, alpha in cases:
        shown = repr(text) if len(text) < 30 else f"a random text of {len(text)} characters (seed {seed})"
        case = f"bigram_probs({shown}, vocab={''.join(vocab)!r}, alpha={alpha})"
        ref = _bigram_probs(text, vocab, alpha)
        got = call(name, bigram_probs, text, list(vocab), alpha, what=case, bans=bans)
        V = len(vocab)
        got = as_tensor(name, got, case, shape=(V, V), dtype_float=True)
        got64 = got.detach().double().cpu()
        if torch.isnan(got64).any():
            fail(name, case, _show(ref), _show(got64), "NaN means 0 / 0: with alpha = 0 a character that is "
                 "never followed by anything has an empty row; with alpha > 0 add alpha * V "
                 "to every row's total")
        if torch.allclose(got64, ref.T, atol=1e-6) and not torch.allclose(ref, ref.T, atol=1e-6):
            fail(name, case, _show(ref), _show(got64), "the matrix is transposed: row i is the current "
                 "character vocab[i], column j the next one vocab[j]")
        if vocab != sorted(vocab):
            resorted = _bigram_probs(text, sorted(vocab), alpha)
            if torch.allclose(got64, resorted, atol=1e-6) and not torch.allclose(ref, resorted, atol=1e-6):
                fail(name, case, _show(ref), _show(got64), "row and column i belong to vocab[i] in "
                     "the order you are given: build the index from vocab, do not sort it")
        if not torch.allclose(got64.sum(1), torch.ones(V, dtype=torch.float64), atol=1e-5):
            fail(name, case + ": rows should sum to 1", "row sums all 1", _show(got64.sum(1)),
                 "divide each row of counts (plus alpha) by that row's total (plus alpha * V)")
        if alpha > 0 and torch.allclose(got64, _bigram_probs(text, vocab, 0.0).nan_to_num(), atol=1e-6):
            fail(name, case, _show(ref), _show(got64), "alpha is ignored: add alpha to every "
                 "count and alpha * V to every row's total")
        if not torch.allclose(got64, ref, atol=1e-6):
            fail(name, case, _show(ref), _show(got64),
                 "N(i, j) counts the adjacent pairs (text[t], text[t+1]) equal to "
                 "(vocab[i], vocab[j]); P[i, j] is N(i, j) + alpha over row i's total "
                 "plus alpha times V (equation above the exercise)")
    passed(name, f"{len(cases)} texts, vocabularies in any order, alpha = 0 to {max(c[2] for c in cases)}")


def check_sample_categorical(sample_categorical, seed: int = 0) -> None:
    """``sample_categorical(probs, n, generator)``: (n,) int64 draws by the inverse CDF."""
    name = "check_sample_categorical"
    bans = BANS[name]
    require_callable(name, sample_categorical, "sample_categorical", n_args=3)
    _not_itself(name, sample_categorical, "sample_categorical")

    def draw(probs, n, s):
        return call(name, sample_categorical, probs.clone(), n,
                    torch.Generator().manual_seed(s),
                    what=f"sample_categorical(probs={_rounded(probs)}, n={n}, generator)",
                    bans=bans)

    probs = torch.tensor([0.2, 0.5, 0.3])
    # 1. Shape, integer type and range.
    got = as_tensor(name, draw(probs, 10, seed), "sample_categorical(probs, 10, generator)",
                    shape=(10,))
    if got.is_floating_point() or got.dtype == torch.bool:
        fail(name, "the samples should be integer class indices", "dtype int64",
             f"dtype {got.dtype}", "class indices are whole numbers: avoid float arithmetic "
             "on them, or convert the result to int64 at the end")
    if got.min() < 0 or got.max() >= len(probs):
        fail(name, "indices for 3 classes must lie in 0..2", "values in {0, 1, 2}", got,
             "if u can be close to 1, no index may go past len(probs) - 1")
    # 2. A class of probability 0 is never drawn.
    certain = torch.tensor([0.0, 1.0, 0.0])
    got = draw(certain, 50, seed + 1)
    if not torch.equal(torch.as_tensor(got).long(), torch.ones(50, dtype=torch.long)):
        fail(name, "probs = [0, 1, 0]: every draw must be class 1", "50 ones",
             str(torch.as_tensor(got).tolist()),
             "return the first index whose cumulative probability exceeds u")
    # 3. The same seed gives the same draws (the generator is used, not global randomness).
    a, b = draw(probs, 20, seed + 7), draw(probs, 20, seed + 7)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        fail(name, "two calls with generators seeded alike", "identical draws",
             f"{torch.as_tensor(a).tolist()} and {torch.as_tensor(b).tolist()}",
             "draw u from the generator you are given, not from torch's global one")
    # 4. Frequencies match the probabilities (20,000 draws: 0.02 is over 5 standard errors).
    big = torch.as_tensor(draw(probs, 20_000, seed + 3)).long()
    freq = torch.bincount(big, minlength=3).double() / len(big)
    if (freq - probs.double()).abs().max() > 0.02:
        fail(name, "class frequencies of 20,000 draws from probs = [0.2, 0.5, 0.3]",
             _show(probs), _show(freq), "compare u with the cumulative sums of probs; an "
             "off-by-one in the index shifts every class by one")
    # 5. The draws are the inverse-CDF ones for this generator, for several probs and n.
    g = torch.Generator().manual_seed(seed)
    rand_probs = torch.softmax(2 * torch.randn(7, generator=g), 0)
    for p, n, s in [(probs, 10, seed), (torch.tensor([0.1, 0.1, 0.1, 0.7]), 25, seed + 5),
                    (torch.tensor([0.5, 0.0, 0.5]), 30, seed + 6), (rand_probs, 40, seed + 8),
                    (torch.tensor([1.0]), 3, seed + 9)]:
        ref = _sample_categorical(p, n, torch.Generator().manual_seed(s))
        got = as_tensor(name, draw(p, n, s), f"sample_categorical(probs, {n}, generator)",
                        shape=(n,)).long()
        if not torch.equal(got, ref):
            hint = ("draw all n uniform numbers u from the generator first, then for each u "
                    "return the first index i with cdf[i] > u, where cdf holds the "
                    "cumulative sums of probs")
            if torch.equal(got, ref.flip(0)) or torch.equal(got.sort().values, ref.sort().values):
                hint = "the right draws in the wrong order: keep draw i for u[i]"
            fail(name, f"probs={_rounded(p)}, n={n}, generator seeded with {s}",
                 str(ref.tolist()), str(got.tolist()), hint)
    passed(name, "shape, range, zero-probability classes, seeding, frequencies, exact draws")


def check_log_likelihood(log_likelihood, seed: int = 0) -> None:
    """``log_likelihood(text, P, stoi)``: sum_t log P[text[t-1], text[t]] (natural log)."""
    name = "check_log_likelihood"
    bans = BANS[name]
    require_callable(name, log_likelihood, "log_likelihood", n_args=3)
    _not_itself(name, log_likelihood, "log_likelihood")
    stoi = {"a": 0, "b": 1}
    P = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    swapped = {"a": 1, "b": 0}                      # the same characters, indexed the other way
    g = torch.Generator().manual_seed(seed)
    chars = list("abcde ")
    P_rand = torch.softmax(torch.randn(6, 6, generator=g), dim=1)
    perm = torch.randperm(6, generator=g).tolist()
    stoi_rand = {c: perm[i] for i, c in enumerate(chars)}   # an index order of its own
    text_rand = _random_text(g, "".join(chars), 400)
    cases = [
        ("aab", P, stoi), ("abba", P, stoi), ("abba", P, swapped), ("a", P, stoi),
        ("bbbbbbbbbb", P, stoi), (text_rand, P_rand, stoi_rand),
    ]
    for text, P_, stoi_ in cases:
        shown = repr(text) if len(text) < 20 else f"a random text of 400 characters (seed {seed})"
        case = f"log_likelihood({shown}, P, stoi={stoi_ if len(stoi_) < 4 else 'a shuffled index'})"
        ref = _log_likelihood(text, P_, stoi_)
        got = as_number(name, call(name, log_likelihood, text, P_.clone(), dict(stoi_),
                                   what=case, bans=bans), case)
        n_pairs = max(len(text) - 1, 1)
        if math.isclose(got, math.exp(ref), rel_tol=1e-4, abs_tol=1e-12) and abs(ref) > 1e-6:
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "that is the probability itself: sum "
                 "the logs of the probabilities instead of multiplying them (a product underflows to 0)")
        if math.isclose(got, -ref, rel_tol=1e-4) and abs(ref) > 1e-6:
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "the sign is flipped: a log-likelihood "
                 "is a sum of logs of probabilities, so it is at most 0")
        if math.isclose(got, ref / n_pairs, rel_tol=1e-4) and len(text) > 2:
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "that is the mean per character: return the sum")
        for base in (10, 2):
            if math.isclose(got, ref / math.log(base), rel_tol=1e-4) and abs(ref) > 1e-6:
                fail(name, case, f"{ref:.6g}", f"{got:.6g}",
                     f"use the natural log (torch.log or math.log), not log{base}")
        if len(text) > 1 and math.isclose(
                got, ref + math.log(P_[stoi_[text[-1]], stoi_[text[0]]].item()), rel_tol=1e-4):
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "the first character has no previous "
                 "one: start at t = 1 (an index of -1 wraps around to the last character)")
        transposed = _log_likelihood(text, P_.T, stoi_) if len(text) > 1 else ref
        if math.isclose(got, transposed, rel_tol=1e-5) and not math.isclose(ref, transposed, rel_tol=1e-5):
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "P is indexed the wrong way round: the "
                 "row is the previous character, the column the next one")
        if not math.isclose(got, ref, rel_tol=1e-5, abs_tol=1e-6):
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "one term per adjacent pair: the log "
                 "of P at (the index of the previous character, the index of the next one), "
                 "indices from stoi; a one-character text has log-likelihood 0")
    passed(name, f"{len(cases)} texts, including a shuffled stoi")


def check_bayes_posterior(bayes_posterior, seed: int = 0) -> None:
    """``bayes_posterior(log_px_given_y, log_prior)``: (N, C), (C,) -> p(y | x), (N, C),
    computed without softmax or logsumexp, finite however large or small the logs are."""
    name = "check_bayes_posterior"
    bans = BANS[name]
    require_callable(name, bayes_posterior, "bayes_posterior", n_args=2)
    _not_itself(name, bayes_posterior, "bayes_posterior")
    g = torch.Generator().manual_seed(seed)
    half = torch.log(torch.tensor([0.5, 0.5]))
    C = 3 + int(torch.randint(0, 4, (), generator=g))
    cases = {
        "two classes, equal priors": (torch.log(torch.tensor([[0.2, 0.6], [0.3, 0.1]])), half),
        "two classes, prior 0.9 / 0.1": (torch.log(torch.tensor([[0.2, 0.6], [0.3, 0.1]])),
                                         torch.log(torch.tensor([0.9, 0.1]))),
        f"{C} classes, random log densities and prior (seed {seed})":
            (torch.randn(8, C, generator=g) * 3, torch.log_softmax(torch.randn(C, generator=g), 0)),
        "one point, five classes, one of prior 0 (log prior -inf)":
            (torch.tensor([[-1.0, -2.0, 0.5, -0.3, -4.0]]),
             torch.log(torch.tensor([0.3, 0.2, 0.0, 0.25, 0.25]))),
        "very small densities (log p around -1000)": (
            torch.tensor([[-1000.0, -1001.0], [-1200.0, -1199.0]]), half),
        "very large densities (log p around +800, a very peaked density)": (
            torch.tensor([[800.0, 799.0], [700.0, 702.0]]), half),
        "rows at very different scales (log p around -1000 and +1000)": (
            torch.tensor([[-1000.0, -1002.0, -999.0], [1000.0, 1001.0, 998.0]]),
            torch.log(torch.tensor([0.2, 0.3, 0.5]))),
    }
    for case, (log_px, log_prior) in cases.items():
        ref = _bayes_posterior(log_px, log_prior)
        a, b = log_px.clone(), log_prior.clone()
        got = call(name, bayes_posterior, a, b,
                   what="bayes_posterior(log_px_given_y, log_prior)", bans=bans)
        if not (torch.equal(a, log_px) and torch.equal(b, log_prior)):
            fail(name, f"{case}: your function changed its inputs", "the inputs left as they were",
                 "modified inputs", "build new tensors (x = x - m, not x -= m)")
        got = as_tensor(name, got, case, shape=tuple(log_px.shape), dtype_float=True)
        got64 = got.detach().double().cpu()
        if not torch.isfinite(got64).all():
            fail(name, case, _show(ref), _show(got64), "exp of a log around -1000 underflows to "
                 "0 and one around +800 overflows to inf, so the fraction becomes 0/0 or "
                 "inf/inf: multiply top and bottom of Bayes' rule by the same number, chosen "
                 "per row so that the largest term becomes exp(0) = 1")
        if (got64 <= 0).all() and torch.allclose(got64.exp(), ref, atol=1e-5):
            fail(name, case, _show(ref), _show(got64), "these are log-probabilities: return "
                 "probabilities p(y | x)")
        no_prior = _bayes_posterior(log_px, torch.zeros_like(log_prior))
        if not torch.allclose(ref, no_prior, atol=1e-5) and torch.allclose(got64, no_prior, atol=1e-5):
            fail(name, case, _show(ref), _show(got64), "the prior is missing: Bayes' rule multiplies p(x | y) by "
                 "p(y), i.e. adds log_prior to the log densities")
        if not torch.allclose(got64.sum(1), torch.ones(len(got64), dtype=torch.float64), atol=1e-5):
            fail(name, case + ": each row should sum to 1", "row sums all 1", _show(got64.sum(1)),
                 "normalise over the classes of each example (dim=1), not over the examples")
        if not torch.allclose(got64, ref, atol=1e-5):
            fail(name, case, _show(ref), _show(got64),
                 "p(y = c | x) is p(x | c) p(c) divided by the sum of p(x | c') p(c') over "
                 "all classes c'; the number you divide top and bottom by must be chosen per "
                 "row (each example), from the largest log-joint of that row")
    passed(name, f"{len(cases)} cases, from log p = -1000 to +1000, without softmax")
