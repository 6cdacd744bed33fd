"""Checks of chapter 01 (generative vs discriminative; a Markov-chain text model).

Mirrors ``exercises/01_generative_vs_discriminative.ipynb``: ``bigram_probs``,
``sample_categorical``, ``log_likelihood`` and ``bayes_posterior``. The references are
written here with plain loops, independently of ``coursekit.models.markov``.
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (as_tensor, call, fail, passed,
                                         require_callable)


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
    joint = log_px_given_y + log_prior                               # (N, C) log p(x, y)
    return torch.exp(joint - torch.logsumexp(joint, dim=1, keepdim=True))


def _show(t: torch.Tensor):
    """A small tensor as nested lists rounded to 4 decimals; a big one as it is."""
    if t.numel() > 36:
        return t
    rounded = torch.round(t.detach().cpu().double() * 1e4) / 1e4
    return str(rounded.tolist())


def _rounded(p: torch.Tensor) -> list[float]:
    return [round(v, 4) for v in p.tolist()]


def _number(check: str, value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    fail(check, f"{what} should be one number", "a float (or a 0-d tensor)",
         f"{type(value).__name__}: {value!r}"[:200], "add up the log-probabilities into one number")


# -- checks ------------------------------------------------------------------------------

def check_bigram_probs(bigram_probs) -> None:
    """``bigram_probs(text, vocab, alpha)``: (V, V) with P[i, j] = p(vocab[j] | vocab[i])."""
    name = "check_bigram_probs"
    require_callable(name, bigram_probs, "bigram_probs", n_args=3)
    cases = [
        ("abracadabra", list("abcdr"), 0.0),
        ("abracadabra", list("abcdr"), 1.0),
        ("the cat sat on the mat. ", sorted(set("the cat sat on the mat. ")), 0.5),
        ("aab", list("abz"), 0.1),        # 'z' never appears: its row is uniform
    ]
    for text, vocab, alpha in cases:
        case = f"bigram_probs({text!r}, vocab={''.join(vocab)!r}, alpha={alpha})"
        ref = _bigram_probs(text, vocab, alpha)
        got = call(name, bigram_probs, text, list(vocab), alpha, what=case)
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
        if not torch.allclose(got64.sum(1), torch.ones(V, dtype=torch.float64), atol=1e-5):
            fail(name, case + ": rows should sum to 1", "row sums all 1", _show(got64.sum(1)),
                 "divide each row of counts (plus alpha) by that row's total (plus alpha * V)")
        if alpha > 0 and torch.allclose(got64, _bigram_probs(text, vocab, 0.0), atol=1e-6):
            fail(name, case, _show(ref), _show(got64), "alpha is ignored: add alpha to every "
                 "count and alpha * V to every row's total")
        if not torch.allclose(got64, ref, atol=1e-6):
            fail(name, case, _show(ref), _show(got64),
                 "count each pair (text[t], text[t+1]) into counts[i, j], then "
                 "P = (counts + alpha) / (counts.sum(1, keepdim=True) + alpha * V)")
    passed(name, f"{len(cases)} texts")


def check_sample_categorical(sample_categorical) -> None:
    """``sample_categorical(probs, n, generator)``: (n,) int64 draws by the inverse CDF."""
    name = "check_sample_categorical"
    require_callable(name, sample_categorical, "sample_categorical", n_args=3)

    def draw(probs, n, seed):
        return call(name, sample_categorical, probs.clone(), n,
                    torch.Generator().manual_seed(seed),
                    what=f"sample_categorical(probs={_rounded(probs)}, n={n}, generator)")

    probs = torch.tensor([0.2, 0.5, 0.3])
    # 1. Shape, integer type and range.
    got = as_tensor(name, draw(probs, 10, 0), "sample_categorical(probs, 10, generator)", shape=(10,))
    if got.is_floating_point() or got.dtype == torch.bool:
        fail(name, "the samples should be integer class indices", "dtype int64",
             f"dtype {got.dtype}", "torch.searchsorted returns int64; avoid float arithmetic "
             "on indices, or finish with .long()")
    if got.min() < 0 or got.max() >= len(probs):
        fail(name, "indices for 3 classes must lie in 0..2", "values in {0, 1, 2}", got,
             "if u can be close to 1, clamp the index to len(probs) - 1")
    # 2. A class of probability 0 is never drawn.
    certain = torch.tensor([0.0, 1.0, 0.0])
    got = draw(certain, 50, 1)
    if not torch.equal(torch.as_tensor(got).long(), torch.ones(50, dtype=torch.long)):
        fail(name, "probs = [0, 1, 0]: every draw must be class 1", "50 ones",
             str(torch.as_tensor(got).tolist()),
             "return the first index whose cumulative probability exceeds u")
    # 3. The same seed gives the same draws (the generator is used, not global randomness).
    a, b = draw(probs, 20, 7), draw(probs, 20, 7)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        fail(name, "two calls with generators seeded alike", "identical draws",
             f"{torch.as_tensor(a).tolist()} and {torch.as_tensor(b).tolist()}",
             "pass the generator on: torch.rand(n, generator=generator)")
    # 4. Frequencies match the probabilities (20,000 draws: 0.02 is over 5 standard errors).
    big = torch.as_tensor(draw(probs, 20_000, 3)).long()
    freq = torch.bincount(big, minlength=3).double() / len(big)
    if (freq - probs.double()).abs().max() > 0.02:
        fail(name, "class frequencies of 20,000 draws from probs = [0.2, 0.5, 0.3]",
             _show(probs), _show(freq), "compare u with the cumulative sums torch.cumsum(probs, 0); an "
             "off-by-one in the index shifts every class by one")
    # 5. The draws are the inverse-CDF ones for this generator.
    for p, n, seed in [(probs, 10, 0), (torch.tensor([0.1, 0.1, 0.1, 0.7]), 25, 5)]:
        ref = _sample_categorical(p, n, torch.Generator().manual_seed(seed))
        got = torch.as_tensor(draw(p, n, seed)).long()
        if not torch.equal(got, ref):
            fail(name, f"probs={_rounded(p)}, n={n}, generator seeded with {seed}",
                 str(ref.tolist()), str(got.tolist()),
                 "draw u = torch.rand(n, generator=generator) once, then return, for each u, "
                 "the first index i with cumsum(probs)[i] > u (torch.searchsorted(cdf, u, "
                 "right=True)); torch.multinomial is correct in distribution but draws "
                 "different numbers, so this exercise asks for the inverse CDF")
    passed(name, "shape, range, zero-probability classes, seeding, frequencies, exact draws")


def check_log_likelihood(log_likelihood) -> None:
    """``log_likelihood(text, P, stoi)``: sum_t log P[text[t-1], text[t]] (natural log)."""
    name = "check_log_likelihood"
    require_callable(name, log_likelihood, "log_likelihood", n_args=3)
    vocab = list("ab")
    stoi = {"a": 0, "b": 1}
    P = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    g = torch.Generator().manual_seed(4)
    chars = list("abcde ")
    P_rand = torch.softmax(torch.randn(6, 6, generator=g), dim=1)
    stoi_rand = {c: i for i, c in enumerate(chars)}
    text_rand = "".join(chars[i] for i in torch.randint(0, 6, (400,), generator=g).tolist())
    cases = [
        ("aab", P, stoi), ("abba", P, stoi), ("a", P, stoi), ("bbbbbbbbbb", P, stoi),
        (text_rand, P_rand, stoi_rand),
    ]
    for text, P_, stoi_ in cases:
        case = f"log_likelihood({text if len(text) < 20 else 'a random text of 400 characters'!r}, P, stoi)"
        ref = _log_likelihood(text, P_, stoi_)
        got = _number(name, call(name, log_likelihood, text, P_.clone(), dict(stoi_), what=case),
                      case)
        n_pairs = max(len(text) - 1, 1)
        if math.isclose(got, math.exp(ref), rel_tol=1e-4, abs_tol=1e-12) and abs(ref) > 1e-6:
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "that is the probability itself: sum "
                 "the logs of the probabilities instead of multiplying them (a product underflows to 0)")
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
        if not math.isclose(got, ref, rel_tol=1e-5, abs_tol=1e-6):
            fail(name, case, f"{ref:.6g}", f"{got:.6g}", "add log P[stoi[text[t-1]], "
                 "stoi[text[t]]] for t = 1 .. len(text) - 1; a one-character text has "
                 "log-likelihood 0")
    passed(name, f"{len(cases)} texts")


def check_bayes_posterior(bayes_posterior) -> None:
    """``bayes_posterior(log_px_given_y, log_prior)``: (N, C), (C,) -> p(y | x), (N, C)."""
    name = "check_bayes_posterior"
    require_callable(name, bayes_posterior, "bayes_posterior", n_args=2)
    g = torch.Generator().manual_seed(5)
    cases = {
        "two classes, equal priors": (torch.log(torch.tensor([[0.2, 0.6], [0.3, 0.1]])),
                                      torch.log(torch.tensor([0.5, 0.5]))),
        "two classes, prior 0.9 / 0.1": (torch.log(torch.tensor([[0.2, 0.6], [0.3, 0.1]])),
                                         torch.log(torch.tensor([0.9, 0.1]))),
        "three classes, random": (torch.randn(8, 3, generator=g) * 3,
                                  torch.log_softmax(torch.randn(3, generator=g), 0)),
        "very small densities (log p around -1000)": (
            torch.tensor([[-1000.0, -1001.0], [-1200.0, -1199.0]]), torch.log(torch.tensor([0.5, 0.5]))),
    }
    for case, (log_px, log_prior) in cases.items():
        ref = _bayes_posterior(log_px.double(), log_prior.double())
        got = call(name, bayes_posterior, log_px.clone(), log_prior.clone(),
                   what="bayes_posterior(log_px_given_y, log_prior)")
        got = as_tensor(name, got, case, shape=tuple(log_px.shape), dtype_float=True)
        got64 = got.detach().double().cpu()
        if torch.isnan(got64).any():
            fail(name, case, _show(ref), _show(got64), "exp(-1000) underflows to 0, and 0 / 0 is NaN: stay in "
                 "log space, e.g. torch.softmax(log_px_given_y + log_prior, dim=1)")
        if (got64 <= 0).all() and torch.allclose(got64.exp(), ref, atol=1e-5):
            fail(name, case, _show(ref), _show(got64), "these are log-probabilities: return probabilities "
                 "(apply exp, or use softmax instead of log_softmax)")
        no_prior = torch.softmax(log_px.double(), dim=1)
        if not torch.allclose(ref, no_prior, atol=1e-5) and torch.allclose(got64, no_prior, atol=1e-5):
            fail(name, case, _show(ref), _show(got64), "the prior is missing: Bayes' rule multiplies p(x | y) by "
                 "p(y), i.e. adds log_prior to the log densities")
        if not torch.allclose(got64.sum(1), torch.ones(len(got64), dtype=torch.float64), atol=1e-5):
            fail(name, case + ": each row should sum to 1", "row sums all 1", _show(got64.sum(1)),
                 "normalise over the classes of each example (dim=1), not over the examples")
        if not torch.allclose(got64, ref, atol=1e-5):
            fail(name, case, _show(ref), _show(got64),
                 "p(y | x) = p(x | y) p(y) / sum_c p(x | c) p(c); in logs: "
                 "torch.softmax(log_px_given_y + log_prior, dim=1)")
    passed(name, f"{len(cases)} cases")
