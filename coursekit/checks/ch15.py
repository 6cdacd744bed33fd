"""Checks for chapter 15, Applications (``exercises/15_applications.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``pass_at_k(n, c, k) -> float``: the unbiased estimator of Chen et al. (2021),
  1 - C(n - c, k) / C(n, k), exact for large n (a product, no binomial coefficients);
  ValueError unless 0 <= c <= n and 1 <= k <= n
* ``moses_metrics(generated, training) -> dict``: validity, uniqueness and novelty of
  generated SMILES as MOSES defines them (Polykovskiy et al., 2020), NaN for 0 / 0
* ``renoise(x, t_from, t_to, alphas_cumprod, generator) -> (B, C, H, W)``: a draw from
  q(x_{t_to} | x_{t_from}), the jump back up the noise schedule of RePaint's resampling
  (Lugmayr et al., 2022); ``t_from = -1`` is the clean image
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, diagnose, fail, matches, passed,
                                         require_callable)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use
# ---------------------------------------------------------------------------------------
BANS = {
    "check_pass_at_k": [
        ban("coursekit.applications.code.pass_at_k",
            reason="coursekit's pass_at_k is the lesson's answer; write the estimator yourself"),
        ban("math.comb", "math.perm", "math.factorial", "scipy.special.comb", "scipy.special.binom",
            "scipy.special.factorial",
            reason="the exercise is the product form: 1 - C(n-c, k) / C(n, k) as a product of (1 - k / i), "
                   "which needs no binomial coefficient"),
    ],
    "check_moses_metrics": [
        ban("coursekit.applications.molecules.moses_metrics", "coursekit.applications.molecules.canonical",
            reason="coursekit's moses_metrics and canonical are the answer; read the molecules with RDKit "
                   "(Chem.MolFromSmiles, Chem.MolToSmiles) yourself"),
    ],
    "check_renoise": [
        ban("coursekit.models.diffusion.q_sample",
            reason="q_sample noises a clean x0; write the jump from t_from to t_to from the equations"),
    ],
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------
# check_pass_at_k
# ---------------------------------------------------------------------------------------
def _pass_exact(n: int, c: int, k: int) -> float:
    """The reference, in exact rational arithmetic."""
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def _prod(lo: int, hi: int, k: int) -> float:
    """1 - prod_{i = lo}^{hi} (1 - k / i), the product form with the given bounds (exactly)."""
    p = Fraction(1)
    for i in range(max(lo, 1), hi + 1):
        p *= 1 - Fraction(k, i)
    return float(1 - p)


def check_pass_at_k(pass_at_k, seed: int = 0) -> None:
    """``pass_at_k(n, c, k)``: 1 - C(n - c, k) / C(n, k), exact for large n, ValueError on bad input."""
    name = "check_pass_at_k"
    require_callable(name, pass_at_k, "pass_at_k", n_args=3)
    rng = random.Random(seed)
    cases = [("n = 10 samples, c = 3 pass, k = 1", 10, 3, 1),
             ("n = 10, c = 3, k = 5", 10, 3, 5),
             ("n = 10, c = 0: nothing passed", 10, 0, 3),
             ("n = 5, c = 3, k = 3: fewer than k samples fail", 5, 3, 3),
             ("n = 200, c = 2, k = 10", 200, 2, 10),
             ("n = 20, c = 1, k = 20: all samples drawn", 20, 1, 20),
             ("n = 1, c = 1, k = 1", 1, 1, 1),
             ("n = 2,000, c = 5, k = 100 (large n)", 2000, 5, 100),
             ("n = 100,000, c = 40, k = 1,000 (binomials far beyond a float)", 100_000, 40, 1000)]
    for _ in range(6):
        n = rng.randint(1, 400)
        c, k = rng.randint(0, n), rng.randint(1, n)
        cases.append((f"n = {n}, c = {c}, k = {k} (random)", n, c, k))
    for case, n, c, k in cases:
        got = call(name, pass_at_k, n, c, k, what=f"pass_at_k({n}, {c}, {k})", bans=BANS[name])
        got = as_number(name, got, f"pass_at_k({n}, {c}, {k})")
        ref = _pass_exact(n, c, k)
        if not math.isfinite(got):
            fail(name, case, ref, got, "C(n, k) for large n overflows a float (inf / inf = nan): multiply the "
                 "factors (1 - k / i) for i from n - c + 1 to n instead of dividing two binomials")
        if abs(got - ref) > 1e-9 * max(1.0, abs(ref)):
            hint = diagnose(torch.tensor(got, dtype=torch.float64), [
                (torch.tensor(c / n, dtype=torch.float64), "c / n is the pass rate, i.e. pass@1 only; pass@k asks "
                 "whether any of k samples passes"),
                (torch.tensor(1 - (1 - c / n) ** k, dtype=torch.float64), "1 - (1 - c/n)^k draws the k samples with "
                 "replacement and is biased; the unbiased estimator draws k of the n without replacement"),
                (torch.tensor(_prod(n - c, n, k), dtype=torch.float64), "one factor too many: the product runs over "
                 "i = n - c + 1, ..., n (c factors)"),
                (torch.tensor(_prod(n - c + 1, n - 1, k), dtype=torch.float64), "one factor too few: the product "
                 "runs over i = n - c + 1, ..., n (c factors, the last one i = n)"),
                (torch.tensor(_prod(n - c + 2, n, k), dtype=torch.float64), "one factor too few: the product runs "
                 "over i = n - c + 1, ..., n (c factors, the first one i = n - c + 1)"),
                (torch.tensor(1 - ref, dtype=torch.float64), "this is C(n-c, k) / C(n, k), the chance that all k "
                 "fail; pass@k is one minus it"),
            ], "pass@k = 1 - C(n - c, k) / C(n, k) (Chen et al., 2021, eq. 1); it is 1 when n - c < k",
               right=torch.tensor(ref, dtype=torch.float64), atol=1e-9)
            fail(name, case, ref, got, hint)
    for bad, why in [((5, 6, 1), "c > n"), ((5, 2, 0), "k = 0"), ((5, 2, 6), "k > n"), ((5, -1, 2), "c < 0")]:
        try:
            got = call(name, pass_at_k, *bad, what=f"pass_at_k{bad}", bans=BANS[name])
        except Exception as err:            # CheckFailure wraps what the answer raised
            cause = err.__cause__
            if isinstance(cause, ValueError):
                continue
            if cause is None:
                raise
            fail(name, f"pass_at_k{bad} ({why})", "a ValueError that says what is wrong",
                 f"{type(cause).__name__}: {cause}", "check 0 <= c <= n and 1 <= k <= n first and raise "
                 "ValueError(...) naming the numbers")
        fail(name, f"pass_at_k{bad} ({why})", "a ValueError that says what is wrong", f"the value {got!r}",
             "check 0 <= c <= n and 1 <= k <= n first and raise ValueError(...) naming the numbers")
    passed(name, f"{len(cases)} cases up to n = 100,000, and ValueError on 4 bad inputs")


# ---------------------------------------------------------------------------------------
# check_moses_metrics
# ---------------------------------------------------------------------------------------
_SPELLINGS = [["CCO", "OCC", "C(O)C"], ["c1ccccc1", "C1=CC=CC=C1", "c1ccccc1"], ["CCN", "NCC"],
              ["CC(=O)O", "OC(C)=O", "O=C(O)C"], ["C1CCCCC1", "C1CCCCC1"], ["CC(C)C", "C(C)(C)C"],
              ["c1ccncc1", "n1ccccc1"], ["CCCl", "ClCC"], ["O=C=O", "C(=O)=O"], ["CN(C)C", "N(C)(C)C"]]
_INVALID = ["", "C1CC", "C(C", "XYZ", "c1cccc1", "CC)C", "C%", "[Zz]"]


def _canon(smiles: str):
    from rdkit import Chem
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None or mol.GetNumAtoms() == 0 else Chem.MolToSmiles(mol)


def _moses(generated, training, *, canonical=True, empty_ok=False, uniq_over="valid", nov_over="unique",
           canon_train=True) -> dict:
    from rdkit import Chem
    def read(s):
        if not canonical:
            if not s:
                return None if not empty_ok else s
            return s if Chem.MolFromSmiles(s) is not None else None
        if not s and empty_ok:
            return ""
        return _canon(s)
    valid = [v for v in map(read, generated) if v is not None]
    unique = set(valid)
    train = {_canon(t) for t in training} if canon_train else set(training)
    nan = float("nan")
    return {"validity": len(valid) / len(generated),
            "uniqueness": len(unique) / ({"valid": len(valid), "generated": len(generated)}[uniq_over] or nan),
            "novelty": len(unique - train) / ({"unique": len(unique), "valid": len(valid)}[nov_over] or nan)}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (not math.isnan(a) and not math.isnan(b) and abs(a - b) < 1e-9)


def check_moses_metrics(moses_metrics, seed: int = 0) -> None:
    """``moses_metrics(generated, training)``: {"validity", "uniqueness", "novelty"} as MOSES defines them."""
    from coursekit.data.smiles import quiet_rdkit
    name = "check_moses_metrics"
    require_callable(name, moses_metrics, "moses_metrics", n_args=2)
    quiet_rdkit()
    rng = random.Random(seed)
    cases = [("two spellings of ethanol, two of benzene, an empty string and two non-molecules",
              ["CCO", "OCC", "C1CC", "", "c1ccccc1", "C1=CC=CC=C1", "CCN", "XYZ"], ["OCC", "CCCC"]),
             ("nothing valid: uniqueness and novelty divide by zero (NaN)", ["C1CC", "", "XYZ"], ["CCO"]),
             ("every molecule in the training set, written another way", ["OCC", "NCC", "NCC"], ["CCO", "CCN"]),
             ("all new, all distinct", ["CCCl", "O=C=O", "CN(C)C"], ["CCO"])]
    for i in range(4):
        pool = rng.sample(_SPELLINGS, 6)
        generated = [rng.choice(rng.choice(pool)) for _ in range(rng.randint(5, 14))]
        generated += rng.sample(_INVALID, rng.randint(0, 3))
        rng.shuffle(generated)
        training = [rng.choice(s) for s in rng.sample(pool, 3)] + ["CCCC"]
        cases.append((f"random case {i + 1}: {len(generated)} strings", generated, training))
    for case, generated, training in cases:
        g_in, t_in = list(generated), list(training)
        got = call(name, moses_metrics, g_in, t_in, what="moses_metrics(generated, training)", bans=BANS[name])
        if g_in != generated or t_in != training:
            fail(name, case + ": the lists must not change", "generated and training as they were",
                 "they were changed", "work on copies or new lists; the caller still needs them")
        if not isinstance(got, dict) or set(got) != {"validity", "uniqueness", "novelty"}:
            fail(name, case, "a dict with the keys 'validity', 'uniqueness', 'novelty'",
                 f"{type(got).__name__}: {got!r}"[:200], "return {'validity': ..., 'uniqueness': ..., 'novelty': ...}")
        ref = _moses(generated, training)
        for key in ("validity", "uniqueness", "novelty"):
            value = as_number(name, got[key], f"the {key}")
            if _same(value, ref[key]):
                continue
            if math.isnan(ref[key]):
                fail(name, f"{case}, the {key}", "nan (nothing to divide by)", value,
                     "with no valid molecule the share is 0 / 0: return float('nan'), not 0 or 1")
            wrong = [(_moses(generated, training, empty_ok=True), "an empty string is not a molecule: RDKit "
                      "reads '' as a molecule with no atoms, MOSES counts it invalid"),
                     (_moses(generated, training, canonical=False), "count distinct molecules, not distinct "
                      "strings: compare RDKit's canonical SMILES (CCO and OCC are one molecule)"),
                     (_moses(generated, training, canon_train=False), "canonicalise the training set too, or a "
                      "molecule written another way there looks new"),
                     (_moses(generated, training, uniq_over="generated"), "uniqueness divides by the number of "
                      "valid molecules, not by all generated strings"),
                     (_moses(generated, training, nov_over="valid"), "novelty divides by the number of distinct "
                      "valid molecules, not by all valid ones")]
            hint = next((h for w, h in wrong if _same(value, w[key]) and not _same(w[key], ref[key])),
                        f"{key}: validity = valid / generated, uniqueness = distinct canonical / valid, "
                        "novelty = distinct not in training / distinct")
            fail(name, f"{case}, the {key}", ref[key], value, hint)
    passed(name, f"{len(cases)} cases: spellings of one molecule, empty and broken strings, 0 / 0")


# ---------------------------------------------------------------------------------------
# check_renoise
# ---------------------------------------------------------------------------------------
def _renoise(x, t_from, t_to, abar, seed, *, from_clean=False, swap=False, last=False):
    eps = torch.randn(x.shape, generator=_gen(seed)).double()
    a_to = abar[t_to].double()
    a_from = abar[t_from].double() if (t_from >= 0 or last) else torch.tensor(1.0, dtype=torch.float64)
    ratio = a_to if from_clean else a_to / a_from
    if swap:
        return ((1 - ratio).sqrt() * x.double() + ratio.sqrt() * eps).to(x.dtype)
    return (ratio.sqrt() * x.double() + (1 - ratio).sqrt() * eps).to(x.dtype)


def _cosine_abar(T: int) -> torch.Tensor:
    s = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((s + 0.008) / 1.008 * torch.pi / 2) ** 2
    return (f[1:] / f[0]).float()                                             # (T,)


def check_renoise(renoise, seed: int = 0) -> None:
    """``renoise(x, t_from, t_to, alphas_cumprod, generator)``: a draw of x_{t_to} given x_{t_from}."""
    name = "check_renoise"
    require_callable(name, renoise, "renoise", n_args=5)
    g = _gen(seed)
    cos, lin = _cosine_abar(50), torch.cumprod(1 - torch.linspace(1e-4, 0.05, 100), 0)
    r = random.Random(seed)
    cases = [("t_from = 10 -> t_to = 20, 4 grey 8x8 images", (4, 1, 8, 8), 10, 20, cos),
             ("t_from = -1 (the clean image) -> t_to = 5", (3, 1, 8, 8), -1, 5, cos),
             ("t_from = 30 -> t_to = 31, one step back", (2, 1, 8, 8), 30, 31, cos),
             ("t_from = t_to = 12: nothing to add", (2, 1, 4, 4), 12, 12, cos),
             ("t_from = 0 -> t_to = 99 on a linear schedule, colour 4x4", (3, 3, 4, 4), 0, 99, lin),
             ("t_from = -1 -> t_to = 40 on a linear schedule", (5, 1, 8, 8), -1, 40, lin)]
    t1 = r.randint(-1, 80)
    cases.append((f"t_from = {t1} -> t_to = {t1 + 15} (random)", (2, 1, 8, 8), t1, t1 + 15, lin))
    for case, shape, t_from, t_to, abar in cases:
        x = torch.randn(shape, generator=g)
        noise_seed = r.randint(0, 2**31 - 2)
        x_in = x.clone()
        got = call(name, renoise, x_in, t_from, t_to, abar.clone(), _gen(noise_seed),
                   what="renoise(x, t_from, t_to, alphas_cumprod, generator)", bans=BANS[name])
        if not torch.equal(x_in, x):
            fail(name, case + ": x must not change", "x as it was", "it was changed in place",
                 "build a new tensor; avoid in-place operations such as mul_ or +=")
        got = as_tensor(name, got, "x at t_to", shape=shape, dtype_float=True)
        ref = _renoise(x, t_from, t_to, abar, noise_seed)
        if torch.isnan(got).any():
            fail(name, case, ref, got, "NaN: 1 - abar_to / abar_from is negative, so abar_from is too small. "
                 + ("t_from = -1 means the clean image, abar = 1; alphas_cumprod[-1] is the last (noisiest) step"
                    if t_from == -1 else "abar_from is alphas_cumprod[t_from]"))
        if not matches(got, ref, atol=1e-5):
            hint = diagnose(got, [
                (_renoise(x, t_from, t_to, abar, noise_seed, from_clean=True), "x is already noisy at t_from: "
                 "scale by the ratio abar[t_to] / abar[t_from], not by abar[t_to] alone"),
                (_renoise(x, t_from, t_to, abar, noise_seed, swap=True), "the square roots are swapped: the "
                 "signal keeps sqrt(ratio), the new noise gets sqrt(1 - ratio)"),
                (_renoise(x, t_from, t_to, abar, noise_seed, last=True), "t_from = -1 means the clean image, "
                 "abar = 1; alphas_cumprod[-1] is the last (noisiest) step"),
            ], "x_to = sqrt(abar_to / abar_from) x + sqrt(1 - abar_to / abar_from) eps, with "
               "eps = torch.randn(x.shape, generator=generator) drawn once from the generator you are given "
               "(DDPM eq. 2 over several steps)", right=ref)
            fail(name, case, ref, got, hint)
    x = torch.randn(2, 1, 4, 4, generator=g)
    try:
        got = call(name, renoise, x, 20, 10, cos, _gen(0), what="renoise(x, 20, 10, ...)", bans=BANS[name])
    except Exception as err:
        if isinstance(err.__cause__, ValueError):
            passed(name, f"{len(cases)} cases: from noisy and clean images, two schedules, one step and many; "
                         "ValueError when t_to < t_from")
            return
        raise
    fail(name, "t_from = 20 -> t_to = 10 (going down the schedule)", "a ValueError: renoise only adds noise",
         f"a {type(got).__name__}", "raise ValueError when t_to < t_from")
