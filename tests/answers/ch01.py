"""Answer table of chapter 01 (generative vs discriminative, a Markov chain): right answers
written without the checks' references, and the typical mistakes and dodges each check
must refuse."""
from __future__ import annotations

import importlib
import math

import torch
from torch.nn import functional as F

from answers import Case
from coursekit.models import markov
from coursekit.models.markov import MarkovChain

# -- bigram_probs ------------------------------------------------------------------------


def _counts(text, vocab):
    index = {ch: i for i, ch in enumerate(vocab)}
    counts = torch.zeros(len(vocab), len(vocab))
    for a, b in zip(text, text[1:]):
        counts[index[a], index[b]] += 1
    return counts


def bigram_probs(text, vocab, alpha):
    counts = _counts(text, vocab)
    return (counts + alpha) / (counts.sum(1, keepdim=True) + alpha * len(vocab))


def bigram_probs_bincount(text, vocab, alpha):      # independent: one bincount of pair indices
    V = len(vocab)
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    pairs = ids[:-1] * V + ids[1:]                                     # (T-1,)
    counts = torch.bincount(pairs, minlength=V * V).reshape(V, V).double()
    smoothed = counts + alpha
    return smoothed / smoothed.sum(1, keepdim=True)


def bigram_sorted_vocab(text, vocab, alpha):        # rebuilds the index in sorted order
    return bigram_probs(text, sorted(vocab), alpha)


def bigram_alpha_top_only(text, vocab, alpha):
    counts = _counts(text, vocab)
    return (counts + alpha) / (counts.sum(1, keepdim=True) + alpha)


def bigram_package(text, vocab, alpha):
    return MarkovChain(order=1, alpha=alpha).fit(text, vocab=vocab).transition_matrix()


def bigram_getattr(text, vocab, alpha):
    cls = getattr(importlib.import_module("coursekit.models.markov"), "Markov" + "Chain")
    return cls(order=1, alpha=alpha).fit(text, vocab=vocab).transition_matrix()


# -- sample_categorical ----------------------------------------------------------------------


def sample_categorical(probs, n, generator):
    u = torch.rand(n, generator=generator)
    return torch.searchsorted(torch.cumsum(probs, 0), u, right=True).clamp(max=len(probs) - 1)


def sample_by_comparison(probs, n, generator):      # independent: count the cdf values <= u
    u = torch.rand(n, generator=generator)
    return (u[:, None] >= torch.cumsum(probs, 0)[None, :]).sum(1).clamp(max=len(probs) - 1)


def sample_loop(probs, n, generator):               # independent: a Python loop per draw
    out = []
    for u in torch.rand(n, generator=generator).tolist():
        total, i = 0.0, 0
        for i, p in enumerate(probs.tolist()):
            total += p
            if total > u:
                break
        out.append(i)
    return torch.tensor(out, dtype=torch.long)


def sample_multinomial(probs, n, generator):
    return torch.multinomial(probs, n, replacement=True, generator=generator)


def sample_categorical_dist(probs, n, generator):
    return torch.distributions.Categorical(probs=probs).sample((n,))


def sample_multinomial_getattr(probs, n, generator):
    draw = getattr(torch, "multi" + "nomial")
    return draw(probs, n, replacement=True, generator=generator)


def sample_sorted(probs, n, generator):             # right draws, wrong order
    return sample_categorical(probs, n, generator).sort().values


# -- log_likelihood --------------------------------------------------------------------------


def log_likelihood(text, P, stoi):
    return sum(math.log(P[stoi[a], stoi[b]]) for a, b in zip(text, text[1:]))


def log_likelihood_gather(text, P, stoi):           # independent: gather the log-probs
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    logp = torch.log(P.double())
    return logp[ids[:-1]].gather(1, ids[1:, None]).sum()


def log_likelihood_sorted_index(text, P, stoi):     # ignores stoi: its own sorted index
    own = {ch: i for i, ch in enumerate(sorted(stoi))}
    return log_likelihood(text, P, own)


def log_likelihood_transposed(text, P, stoi):
    return sum(math.log(P[stoi[b], stoi[a]]) for a, b in zip(text, text[1:]))


def log_likelihood_package(text, P, stoi):
    chain = MarkovChain(order=1, alpha=0.0)
    chain.fit(text, vocab=sorted(stoi))
    return chain.log_likelihood(text[1:], prompt=text[:1])


def log_likelihood_alias(text, P, stoi, _ll=markov.MarkovChain.log_likelihood):
    chain = MarkovChain(order=1).fit(text, vocab=sorted(stoi))
    return _ll(chain, text[1:], prompt=text[:1])


# -- bayes_posterior ---------------------------------------------------------------------------


def bayes_shifted(log_px_given_y, log_prior):       # the stable form, written by hand
    joint = log_px_given_y + log_prior
    weights = torch.exp(joint - joint.max(dim=1, keepdim=True).values)
    return weights / weights.sum(dim=1, keepdim=True)


def bayes_pairwise(log_px_given_y, log_prior):      # independent: 1 / sum_c' exp(joint_c' - joint_c)
    joint = (log_px_given_y + log_prior).double()
    diff = (joint[:, None, :] - joint[:, :, None]).nan_to_num(nan=0.0)   # (N, C, C)
    return (1 / torch.exp(diff.clamp(max=700)).sum(-1)).float()


def bayes_softmax(log_px_given_y, log_prior):
    return torch.softmax(log_px_given_y + log_prior, dim=1)


def bayes_method_softmax(log_px_given_y, log_prior):
    return (log_px_given_y + log_prior).softmax(1)


def bayes_logsumexp(log_px_given_y, log_prior):
    joint = log_px_given_y + log_prior
    return torch.exp(joint - torch.logsumexp(joint, dim=1, keepdim=True))


def bayes_getattr(log_px_given_y, log_prior):
    return getattr(F, "soft" + "max")(log_px_given_y + log_prior, dim=1)


def bayes_naive(log_px_given_y, log_prior):
    w = (log_px_given_y + log_prior).exp()
    return w / w.sum(1, keepdim=True)


def bayes_no_prior(log_px_given_y, log_prior):
    return bayes_shifted(log_px_given_y, torch.zeros_like(log_prior))


def bayes_wrong_dim(log_px_given_y, log_prior):
    joint = log_px_given_y + log_prior
    w = torch.exp(joint - joint.max(dim=0, keepdim=True).values)
    return w / w.sum(dim=0, keepdim=True)


def bayes_global_max(log_px_given_y, log_prior):    # one shift for all rows
    joint = log_px_given_y + log_prior
    w = torch.exp(joint - joint.max())
    return w / w.sum(dim=1, keepdim=True)


def bayes_mean_shift(log_px_given_y, log_prior):    # shifts by the mean: overflows
    joint = log_px_given_y + log_prior
    w = torch.exp(joint - joint.mean(dim=1, keepdim=True))
    return w / w.sum(dim=1, keepdim=True)


def bayes_log(log_px_given_y, log_prior):
    joint = log_px_given_y + log_prior
    m = joint.max(dim=1, keepdim=True).values
    return joint - m - torch.log(torch.exp(joint - m).sum(1, keepdim=True))


def bayes_in_place(log_px_given_y, log_prior):
    log_px_given_y += log_prior
    log_px_given_y -= log_px_given_y.max(dim=1, keepdim=True).values
    w = log_px_given_y.exp()
    return w / w.sum(dim=1, keepdim=True)


RIGHT = [
    Case("check_bigram_probs", bigram_probs),
    Case("check_bigram_probs", bigram_probs_bincount, why="bincount", kwargs={"seed": 3}),
    Case("check_sample_categorical", sample_categorical),
    Case("check_sample_categorical", sample_by_comparison, why="comparison"),
    Case("check_sample_categorical", sample_loop, why="loop", kwargs={"seed": 11}),
    Case("check_log_likelihood", log_likelihood),
    Case("check_log_likelihood", log_likelihood_gather, why="gather", kwargs={"seed": 5}),
    Case("check_bayes_posterior", bayes_shifted),
    Case("check_bayes_posterior", bayes_pairwise, why="pairwise", kwargs={"seed": 9}),
]

WRONG = [
    Case("check_bigram_probs", lambda t, v, a: bigram_probs(t, v, a).T, "transposed", "transposed"),
    Case("check_bigram_probs", lambda t, v, a: _counts(t, v) + a, "rows should sum to 1", "counts"),
    Case("check_bigram_probs", lambda t, v, a: bigram_probs(t, v, 0.0), "alpha is ignored",
         "alpha ignored"),
    Case("check_bigram_probs", bigram_alpha_top_only, "rows should sum to 1", "alpha on top only"),
    Case("check_bigram_probs",
         lambda t, v, a: (_counts(t, v) + a) / (_counts(t, v) + a).sum(0, keepdim=True),
         "rows should sum to 1", "columns normalised"),
    Case("check_bigram_probs", bigram_sorted_vocab, "do not sort it", "sorted vocab"),
    Case("check_bigram_probs", lambda t, v, a: bigram_probs(t, v, a).tolist(), "torch.Tensor",
         "a list"),
    Case("check_bigram_probs", lambda t, v, a: bigram_probs(t, v, a)[:-1], "wrong shape",
         "a row short"),
    Case("check_bigram_probs", bigram_package, "coursekit.models.markov.MarkovChain", "package"),
    Case("check_bigram_probs", bigram_getattr, "MarkovChain", "getattr package"),
    Case("check_sample_categorical", sample_multinomial, "torch.multinomial", "multinomial"),
    Case("check_sample_categorical", sample_categorical_dist, "torch.distributions.Categorical",
         "Categorical"),
    Case("check_sample_categorical", sample_multinomial_getattr, "reached torch.multinomial",
         "getattr multinomial"),
    Case("check_sample_categorical",
         lambda p, n, g: torch.ops.aten.multinomial(p, n, True, generator=g),
         "aten.multinomial", "aten op"),
    Case("check_sample_categorical", lambda p, n, g: sample_categorical(p, n, None), "seeded alike",
         "generator ignored"),
    Case("check_sample_categorical", lambda p, n, g: sample_categorical(p, n, g).float(), "integer",
         "floats"),
    Case("check_sample_categorical", lambda p, n, g: p.argmax().repeat(n), "frequencies", "argmax"),
    Case("check_sample_categorical",
         lambda p, n, g: (sample_categorical(p, n, g) + 1).clamp(max=len(p) - 1), "probs = [0, 1, 0]",
         "off by one"),
    Case("check_sample_categorical", lambda p, n, g: sample_categorical(p, n, g)[:-1], "wrong shape",
         "one short"),
    Case("check_sample_categorical",
         lambda p, n, g: torch.searchsorted(torch.cumsum(p, 0), torch.rand(n, generator=g) * 1.5),
         "in 0..2", "out of range"),
    Case("check_sample_categorical", sample_sorted, "wrong order", "sorted draws"),
    Case("check_log_likelihood",
         lambda t, P, s: math.prod(P[s[a], s[b]].item() for a, b in zip(t, t[1:])),
         "probability itself", "product"),
    Case("check_log_likelihood", lambda t, P, s: log_likelihood(t, P, s) / max(len(t) - 1, 1),
         "mean per character", "mean"),
    Case("check_log_likelihood", lambda t, P, s: log_likelihood(t, P, s) / math.log(10),
         "natural log", "log10"),
    Case("check_log_likelihood",
         lambda t, P, s: sum(math.log(P[s[t[i - 1]], s[t[i]]]) for i in range(len(t))),
         "first character", "wraps around"),
    Case("check_log_likelihood", lambda t, P, s: -log_likelihood(t, P, s), "sign is flipped",
         "negated"),
    Case("check_log_likelihood", log_likelihood_transposed, "wrong way round", "transposed"),
    Case("check_log_likelihood", log_likelihood_sorted_index, "stoi", "stoi ignored"),
    Case("check_log_likelihood", lambda t, P, s: torch.zeros(2), "one number", "a vector"),
    Case("check_log_likelihood", log_likelihood_package, "coursekit.models.markov.MarkovChain",
         "package"),
    Case("check_log_likelihood", log_likelihood_alias, "MarkovChain", "alias"),
    Case("check_bayes_posterior", bayes_softmax, "torch.softmax", "softmax"),
    Case("check_bayes_posterior", bayes_method_softmax, ".softmax()", "softmax method"),
    Case("check_bayes_posterior", bayes_getattr, "reached torch.nn.functional.softmax",
         "getattr softmax"),
    Case("check_bayes_posterior", lambda lp, pr: torch.ops.aten._softmax(lp + pr, 1, False),
         "aten._softmax", "aten op"),
    Case("check_bayes_posterior", bayes_logsumexp, "torch.logsumexp", "logsumexp"),
    Case("check_bayes_posterior", bayes_naive, "overflows", "naive exp"),
    Case("check_bayes_posterior", bayes_no_prior, "prior is missing", "no prior"),
    Case("check_bayes_posterior", bayes_wrong_dim, "each row should sum to 1", "dim 0"),
    Case("check_bayes_posterior", bayes_global_max, "per row", "global max"),
    Case("check_bayes_posterior", bayes_mean_shift, "overflows", "mean shift"),
    Case("check_bayes_posterior", bayes_log, "log-probabilities", "log posterior"),
    Case("check_bayes_posterior", bayes_in_place, "changed its inputs", "in place"),
    Case("check_bayes_posterior", lambda lp, pr: bayes_shifted(lp, pr)[:, 1], "wrong shape",
         "one column"),
]
