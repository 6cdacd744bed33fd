"""Chapter 15's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math

import numpy as np
import torch
from rdkit import Chem

import coursekit.applications.code as CODE
import coursekit.applications.molecules as MOL
from coursekit.models.diffusion import q_sample
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


def pass_at_k(n, c, k):
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got {n}, {c}, {k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_logs(n, c, k):                      # log-space product: the same number, another route
    if c > n or c < 0 or k < 1 or k > n:
        raise ValueError("bad n, c, k")
    if n - c < k:
        return 1.0
    return -math.expm1(sum(math.log1p(-k / i) for i in range(n - c + 1, n + 1)))


def moses_metrics(generated, training):
    def canon(s):
        mol = Chem.MolFromSmiles(s) if s else None
        return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else None
    valid = [m for m in (canon(s) for s in generated) if m]
    unique = set(valid)
    seen = {canon(t) for t in training}
    return {"validity": len(valid) / len(generated),
            "uniqueness": len(unique) / len(valid) if valid else math.nan,
            "novelty": len(unique - seen) / len(unique) if unique else math.nan}


def renoise(x, t_from, t_to, alphas_cumprod, generator):
    if t_to < t_from:
        raise ValueError("t_to must not be below t_from")
    a_from = alphas_cumprod[t_from] if t_from >= 0 else torch.tensor(1.0)
    ratio = alphas_cumprod[t_to] / a_from
    eps = torch.randn(x.shape, generator=generator)
    return torch.sqrt(ratio) * x + torch.sqrt(1 - ratio) * eps


RIGHT = [
    Case("check_pass_at_k", pass_at_k, why="numpy product"),
    Case("check_pass_at_k", pass_at_k_logs, why="sum of logs", kwargs={"seed": 5}),
    Case("check_moses_metrics", moses_metrics, why="sets of canonical SMILES"),
    Case("check_moses_metrics", moses_metrics, why="another seed", kwargs={"seed": 3}),
    Case("check_renoise", renoise, why="ratio of abar"),
    Case("check_renoise", renoise, why="another seed", kwargs={"seed": 6}),
]


# --- wrong answers --------------------------------------------------------------------------

def _guarded(f):
    def answer(n, c, k):
        if not (0 <= c <= n and 1 <= k <= n):
            raise ValueError("bad input")
        return f(n, c, k)
    return answer


def _with_comb(n, c, k):
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError("bad input")
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def _float_binomials(n, c, k):                    # gamma functions in floats: inf / inf for large n
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError("bad input")
    if n - c < k:
        return 1.0
    def binom(a, b):
        return math.gamma(a + 1) / (math.gamma(b + 1) * math.gamma(a - b + 1)) if a < 171 else float("inf")
    return 1 - binom(n - c, k) / binom(n, k)


def _no_check(n, c, k):                            # right numbers, but no error on bad input
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1 - k / i for i in range(n - c + 1, n + 1))


def _extra_factor(n, c, k):
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1 - k / i for i in range(n - c, n + 1))


_package_pass = CODE.pass_at_k


def _moses(empty=False, strings=False, train_raw=False, uniq_gen=False, nov_valid=False, zero=False):
    def answer(generated, training):
        def read(s):
            if not s:
                return "" if empty else None
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                return None
            return s if strings else Chem.MolToSmiles(mol)
        valid = [m for m in map(read, generated) if m is not None]
        unique = set(valid)
        train = set(training) if train_raw else {read(t) for t in training}
        nan = 0.0 if zero else math.nan
        return {"validity": len(valid) / len(generated),
                "uniqueness": (len(unique) / (len(generated) if uniq_gen else len(valid))) if valid else nan,
                "novelty": (len(unique - train) / (len(valid) if nov_valid else len(unique))) if unique else nan}
    return answer


def _sorts_in_place(generated, training):
    generated.sort()
    return moses_metrics(generated, training)


def _rn(from_clean=False, swap=False, last=False, global_rng=False, in_place=False, no_check=False):
    def answer(x, t_from, t_to, alphas_cumprod, generator):
        if t_to < t_from and not no_check:
            raise ValueError("t_to < t_from")
        a_from = alphas_cumprod[t_from] if (t_from >= 0 or last) else torch.tensor(1.0)
        ratio = alphas_cumprod[t_to] if from_clean else alphas_cumprod[t_to] / a_from
        eps = torch.randn(x.shape) if global_rng else torch.randn(x.shape, generator=generator)
        keep, add = (ratio.sqrt(), (1 - ratio).sqrt()) if not swap else ((1 - ratio).sqrt(), ratio.sqrt())
        if in_place:
            return x.mul_(keep).add_(add * eps)
        return keep * x + add * eps
    return answer


def _via_q_sample(x, t_from, t_to, alphas_cumprod, generator):
    if t_to < t_from:
        raise ValueError("t_to < t_from")
    a_from = alphas_cumprod[t_from] if t_from >= 0 else torch.tensor(1.0)
    ratio = (alphas_cumprod[t_to] / a_from).reshape(1)
    return q_sample(x, 0, ratio, torch.randn(x.shape, generator=generator))


WRONG = [
    # pass_at_k
    Case("check_pass_at_k", _guarded(lambda n, c, k: c / n), "pass rate", "c over n"),
    Case("check_pass_at_k", _guarded(lambda n, c, k: 1 - (1 - c / n) ** k), "with replacement", "biased plug-in"),
    Case("check_pass_at_k", _guarded(_extra_factor), "one factor too many", "off by one"),
    Case("check_pass_at_k", _float_binomials, "overflows a float", "float binomials"),
    Case("check_pass_at_k", _guarded(lambda n, c, k: 1 - pass_at_k(n, c, k)), "one minus it", "all fail"),
    Case("check_pass_at_k", _no_check, "ValueError", "no error on bad input"),
    Case("check_pass_at_k", _with_comb, "math.comb", "math.comb"),
    Case("check_pass_at_k", lambda n, c, k: _package_pass(n, c, k), "coursekit.applications.code.pass_at_k",
         "alias of the package's"),
    # moses_metrics
    Case("check_moses_metrics", _moses(empty=True), "empty string", "empty counted valid"),
    Case("check_moses_metrics", _moses(strings=True), "canonical", "strings not molecules"),
    Case("check_moses_metrics", _moses(train_raw=True), "training set too", "raw training strings"),
    Case("check_moses_metrics", _moses(uniq_gen=True), "uniqueness divides", "uniqueness over generated"),
    Case("check_moses_metrics", _moses(nov_valid=True), "novelty divides", "novelty over valid"),
    Case("check_moses_metrics", _moses(zero=True), "nan", "0 for 0/0"),
    Case("check_moses_metrics", _sorts_in_place, "must not change", "sorts the caller's list"),
    Case("check_moses_metrics", lambda g, t: MOL.moses_metrics(g, t), "coursekit.applications.molecules",
         "the package's"),
    # renoise
    Case("check_renoise", _rn(from_clean=True), "already noisy", "noised as if clean"),
    Case("check_renoise", _rn(swap=True), "swapped", "square roots swapped"),
    Case("check_renoise", _rn(last=True), "alphas_cumprod[-1]", "t_from = -1 read as the last step"),
    Case("check_renoise", _rn(global_rng=True), "generator you are given", "global random stream"),
    Case("check_renoise", _rn(in_place=True), "must not change", "in place"),
    Case("check_renoise", _rn(no_check=True), "ValueError", "no error going down"),
    Case("check_renoise", _via_q_sample, "coursekit.models.diffusion.q_sample", "q_sample"),
]
