"""Checks for chapter 09, Pre-training (``exercises/09_pretraining.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id) -> (inputs, targets)``:
  BERT's masked-LM pairs from given uniform draws (80% mask, 10% random, 10% kept; -100
  wherever nothing is asked)
* ``kaplan_flops(cfg, n_tokens) -> float``: training compute 6 N D with N the
  non-embedding parameters of a ``GPTConfig``, counted from the config
* ``fit_power_law(sizes, losses) -> (a, alpha, c)``: L(N) = a N^-alpha + c, with a grid
  over the irreducible loss c and a straight-line fit in log-log space
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (as_number, as_tensor, call, expect_close, fail, passed,
                                         require_callable, seeded)
from coursekit.checks.forbidden import ban
from coursekit.models.gpt import GPTConfig

IGNORE = -100

# ---------------------------------------------------------------------------------------
# What an answer may not use: coursekit's own versions, and ready-made curve fitting
# ---------------------------------------------------------------------------------------
BANS = {
    "check_mask_for_mlm": [
        ban("coursekit.models.mlm.mask_tokens",
            reason="coursekit's mask_tokens is the lesson's version with its own random draws; "
            "build the pairs from the draws you are given")],
    "check_kaplan_flops": [
        ban("coursekit.scaling.non_embedding_params", "coursekit.scaling.training_flops",
            reason="these are the lesson's answers; count the parameters from the config yourself"),
        ban("coursekit.models.gpt.GPT", "coursekit.models.GPT",
            reason="count from the config, without building the model: the point is to know where "
            "the parameters are (and a GPT-2-sized config would need gigabytes to build)")],
    "check_fit_power_law": [
        ban("coursekit.scaling.fit_power_law", "coursekit.scaling.PowerLaw",
            reason="coursekit's fit_power_law is the lesson's answer; write the grid and the "
            "line fit yourself"),
        ban("scipy.optimize.curve_fit", "scipy.optimize.least_squares", "scipy.optimize.minimize",
            "scipy.optimize.leastsq",
            reason="a general optimiser hides the idea: for a fixed c the law is a straight line "
            "in log-log space, so a grid over c and a line fit are enough")],
}


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.models.mlm and coursekit.scaling)
# ---------------------------------------------------------------------------------------
def _mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id):
    inputs, targets = ids.clone(), torch.full_like(ids, IGNORE)
    flat = zip(ids.flatten().tolist(), u_choose.flatten().tolist(), u_kind.flatten().tolist(),
               random_ids.flatten().tolist())
    out_in, out_t = [], []
    for token, uc, uk, r in flat:
        if uc < rate:
            out_t.append(token)
            out_in.append(mask_id if uk < 0.8 else r if uk < 0.9 else token)
        else:
            out_t.append(IGNORE)
            out_in.append(token)
    inputs = torch.tensor(out_in, dtype=torch.int64).view(ids.shape)
    targets = torch.tensor(out_t, dtype=torch.int64).view(ids.shape)
    return inputs, targets


def _non_embedding(cfg: GPTConfig) -> int:
    C, b = cfg.n_embd, 1 if cfg.bias else 0
    norm = (C + b * C) if cfg.layer_norm else 0                 # one LayerNorm: gain (and bias)
    attention = (C * 3 * C + b * 3 * C) + (C * C + b * C)       # W_QKV and W_O
    mlp = (C * 4 * C + b * 4 * C) + (4 * C * C + b * C)         # C -> 4C -> C
    return cfg.n_layer * (2 * norm + attention + mlp) + norm   # the blocks and the final LayerNorm


def _fit(sizes, losses, n_grid: int = 4000):
    x = [math.log(n) for n in sizes]
    best = None
    top = min(losses)
    for i in range(n_grid):
        c = top * i / n_grid
        y = [math.log(v - c) for v in losses]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
        a = math.exp(my - slope * mx)
        err = sum((a * n ** slope + c - v) ** 2 for n, v in zip(sizes, losses))
        if best is None or err < best[0]:
            best = (err, a, -slope, c)
    return best[1:]


def _sse(law, sizes, losses) -> float:
    a, alpha, c = law
    return sum((a * n ** -alpha + c - v) ** 2 for n, v in zip(sizes, losses))


_gen = seeded


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------
def check_mask_for_mlm(mask_for_mlm, seed: int = 0) -> None:
    """``mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id) -> (inputs, targets)``."""
    name = "check_mask_for_mlm"
    require_callable(name, mask_for_mlm, "mask_for_mlm", n_args=6)
    g = _gen(seed)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    cases = [
        ("6 tokens, one of each kind: masked (u_kind 0.1), random (0.85), kept (0.95), and three "
         "not chosen", ids, torch.tensor([[0.05, 0.9, 0.1, 0.5, 0.12, 0.3]]),
         torch.tensor([[0.1, 0.1, 0.85, 0.5, 0.95, 0.2]]), torch.tensor([[1, 2, 3, 4, 1, 2]]), 0.15, 99),
        ("u_choose exactly equal to the rate is not chosen (chosen when u_choose < rate)", ids,
         torch.tensor([[0.15, 0.1, 0.5, 0.15, 0.6, 0.0]]), torch.tensor([[0.5, 0.5, 0.5, 0.8, 0.9, 0.79]]),
         torch.tensor([[0, 0, 0, 0, 0, 0]]), 0.15, 3),
        ("rate = 0: nothing is chosen", ids, torch.rand(1, 6, generator=g), torch.rand(1, 6, generator=g),
         torch.randint(0, 11, (1, 6), generator=g), 0.0, 11),
        ("rate = 1: every position is chosen", ids, torch.rand(1, 6, generator=g),
         torch.rand(1, 6, generator=g), torch.randint(0, 11, (1, 6), generator=g), 1.0, 11),
    ]
    for B, T, V, rate in ((4, 32, 65, 0.15), (3, 50, 30, 0.4), (8, 128, 66, 0.15)):
        cases.append((f"a random batch of {B} x {T} tokens, rate {rate}, mask id {V}",
                      torch.randint(0, V, (B, T), generator=g), torch.rand(B, T, generator=g),
                      torch.rand(B, T, generator=g), torch.randint(0, V, (B, T), generator=g), rate, V))
    for case, ids_, uc, uk, rnd, rate, mask_id in cases:
        got = call(name, mask_for_mlm, ids_.clone(), uc.clone(), uk.clone(), rnd.clone(), rate, mask_id,
                   what="mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id)", bans=BANS[name])
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, case, "a pair (inputs, targets)", got,
                 "return two tensors of the shape of ids: the model's input and the labels")
        inputs = as_tensor(name, got[0], "inputs", shape=tuple(ids_.shape))
        targets = as_tensor(name, got[1], "targets", shape=tuple(ids_.shape))
        for what, t in (("inputs", inputs), ("targets", targets)):
            if t.is_floating_point():
                fail(name, case, f"{what} as integer token ids", f"dtype {t.dtype}",
                     "token ids and labels are integers (int64): build them with torch.where on ids")
        ref_in, ref_t = _mask_for_mlm(ids_, uc, uk, rnd, rate, mask_id)
        chosen = uc < rate
        if not torch.equal(targets.long(), ref_t):
            if torch.equal(targets.long(), torch.where(uc <= rate, ids_, IGNORE)):
                hint = ("the chosen positions are those with u_choose < rate, strictly: a draw equal to "
                        "the rate is not chosen (so that rate = 0 chooses nothing)")
            elif torch.equal(targets.long(), ids_):
                hint = ("every position has a label: the loss would ask for tokens the model can see. "
                        "Positions that were not chosen get the label -100, which cross-entropy ignores")
            elif torch.equal(targets.long()[chosen], ref_t[chosen]) and not (targets.long()[~chosen] == IGNORE).all():
                hint = ("positions that were not chosen must carry the label -100 (F.cross_entropy's "
                        "ignore_index), not 0 or their token")
            elif (targets.long() != IGNORE).sum() != chosen.sum():
                hint = ("the chosen positions are those with u_choose < rate (strictly); the number of "
                        "labels that are not -100 should equal the number chosen")
            elif torch.equal(targets.long()[chosen], inputs.long()[chosen]):
                hint = "the target is the original token (from ids), not what the input shows after masking"
            else:
                hint = "the label of a chosen position is its original token; every other label is -100"
            fail(name, f"targets for {case}", ref_t, targets, hint)
        if not torch.equal(inputs.long(), ref_in):
            if (inputs.long()[~chosen] != ids_[~chosen]).any():
                hint = ("a position that was not chosen must be left as it is: u_kind only matters at "
                        "chosen positions")
            elif (inputs.long()[chosen] == mask_id).all() and not (ref_in[chosen] == mask_id).all():
                hint = ("BERT does not mask every chosen position: 80% (u_kind < 0.8) get the mask "
                        "token, 10% (0.8 <= u_kind < 0.9) the random token, and 10% keep their own")
            else:
                hint = ("at a chosen position: u_kind < 0.8 gives mask_id, 0.8 <= u_kind < 0.9 gives "
                        "random_ids at that position, and u_kind >= 0.9 keeps the token")
            fail(name, f"inputs for {case}", ref_in, inputs, hint)
    passed(name, f"masked-LM pairs on {len(cases)} cases: -100 where nothing is asked, 80/10/10 replacement")


_CONFIGS = [
    ("the story model (3 blocks x 96, 65 characters)", GPTConfig(n_layer=3, n_head=4, n_embd=96, block_size=128)),
    ("a 2-block, width-32 model of the scaling sweep", GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64)),
    ("the same sizes with a 50,257-token vocabulary and 1,024 positions (N must not change)",
     GPTConfig(vocab_size=50257, n_layer=2, n_head=2, n_embd=32, block_size=1024)),
    ("GPT-2 small's sizes (12 blocks x 768)", GPTConfig(vocab_size=50257, block_size=1024, n_layer=12,
                                                     n_head=12, n_embd=768)),
    ("no biases (bias=False)", GPTConfig(n_layer=4, n_head=4, n_embd=64, bias=False)),
    ("no LayerNorms (layer_norm=False)", GPTConfig(n_layer=3, n_head=2, n_embd=48, layer_norm=False)),
    ("GPT-2 XL's sizes (48 blocks x 1600)", GPTConfig(vocab_size=50257, block_size=1024, n_layer=48,
                                                   n_head=25, n_embd=1600)),
]


def check_kaplan_flops(kaplan_flops, seed: int = 0) -> None:
    """``kaplan_flops(cfg, n_tokens)``: 6 x (non-embedding parameters of cfg) x n_tokens."""
    name = "check_kaplan_flops"
    require_callable(name, kaplan_flops, "kaplan_flops", n_args=2)
    g = _gen(seed)
    cases = [(case, cfg, int(n)) for (case, cfg), n in
             zip(_CONFIGS, [1_000_000, 300_000, 300_000, 10**9, 2_000_000, 777, 10**10])]
    for _ in range(3):
        L = int(torch.randint(1, 9, (1,), generator=g))
        H = int(torch.randint(1, 5, (1,), generator=g))
        C = H * int(torch.randint(4, 40, (1,), generator=g))
        cfg = GPTConfig(vocab_size=int(torch.randint(10, 500, (1,), generator=g)), n_layer=L, n_head=H,
                        n_embd=C, block_size=int(torch.randint(8, 256, (1,), generator=g)),
                        bias=bool(torch.randint(0, 2, (1,), generator=g)))
        cases.append((f"a random config ({L} blocks x {C}, bias={cfg.bias})", cfg,
                      int(torch.randint(1000, 10**7, (1,), generator=g))))
    for case, cfg, n_tokens in cases:
        got = call(name, kaplan_flops, cfg, n_tokens, what="kaplan_flops(cfg, n_tokens)", bans=BANS[name])
        got = as_number(name, got, "kaplan_flops(cfg, n_tokens)")
        N = _non_embedding(cfg)
        ref = 6.0 * N * n_tokens
        if abs(got - ref) <= 1e-9 * ref:
            continue
        emb = cfg.vocab_size * cfg.n_embd + (cfg.block_size * cfg.n_embd if cfg.pos_emb == "learned" else 0)
        approx = 12 * cfg.n_layer * cfg.n_embd ** 2
        if abs(got - 2 * N * n_tokens) <= 1e-6 * ref:
            hint = ("2 N D is the forward pass only; training also runs the backward pass, about twice "
                    "the forward's cost: 6 N D in all")
        elif abs(got - 6.0 * (N + emb) * n_tokens) <= 1e-6 * ref or \
                abs(got - 6.0 * (N + cfg.vocab_size * cfg.n_embd) * n_tokens) <= 1e-6 * ref:
            hint = ("the embeddings are left out of N (Kaplan et al. count non-embedding parameters): "
                    "the token and position tables, and the output layer that shares the token table")
        elif abs(got - 6.0 * approx * n_tokens) <= 1e-6 * ref:
            hint = ("12 n_layer d^2 is the usual approximation; count exactly: every weight matrix, "
                    "every bias when cfg.bias, and the LayerNorms' gains (and biases) in each block and "
                    "the final one, when cfg.layer_norm")
        elif got and abs(got / (6.0 * n_tokens) - round(got / (6.0 * n_tokens))) < 1e-6:
            hint = (f"your N is {got / (6.0 * n_tokens):,.0f}, the right one {N:,}; per block: W_QKV "
                    "(C x 3C), W_O (C x C), the MLP's C x 4C and 4C x C, their biases when cfg.bias, and "
                    "two LayerNorms; then the final LayerNorm")
        else:
            hint = "the answer is 6 x N x n_tokens, with N the non-embedding parameters of the config"
        fail(name, f"the training FLOPs of {case} on {n_tokens:,} tokens", f"{ref:.6g} (N = {N:,})",
             f"{got:.6g}", hint)
    passed(name, f"6 N D with N the non-embedding parameters, on {len(cases)} configs")


def _law_cases(g: torch.Generator):
    """(description, sizes, losses, true law or None, held-out size)."""
    sizes = [2_000, 8_000, 32_000, 128_000]
    out = [("an exact law L = 5 N^-0.3 + 0.8 at N = 2k, 8k, 32k, 128k", sizes,
            [5 * n ** -0.3 + 0.8 for n in sizes], (5.0, 0.3, 0.8), 1_000_000),
           ("an exact law with no irreducible loss, L = 20 N^-0.5 (c = 0)", sizes,
            [20 * n ** -0.5 for n in sizes], (20.0, 0.5, 0.0), 1_000_000),
           ("an exact law at 5 unevenly spaced sizes, L = 2 N^-0.15 + 1.1", [500, 900, 4000, 20_000, 60_000],
            [2 * n ** -0.15 + 1.1 for n in [500, 900, 4000, 20_000, 60_000]], (2.0, 0.15, 1.1), 500_000)]
    for i in range(3):
        a = float(torch.empty(1).uniform_(2, 30, generator=g))
        alpha = float(torch.empty(1).uniform_(0.1, 0.6, generator=g))
        c = float(torch.empty(1).uniform_(0.3, 1.5, generator=g))
        k = 4 + i
        n = [int(1000 * 3 ** j) for j in range(k)]
        noise = 1 + 0.01 * torch.randn(k, generator=g)
        loss = [(a * s ** -alpha + c) * float(e) for s, e in zip(n, noise)]
        out.append((f"{k} noisy points (1% noise) around L = {a:.2f} N^-{alpha:.3f} + {c:.3f}", n, loss, None,
                    n[-1] * 4))
    return out


def check_fit_power_law(fit_power_law, seed: int = 0) -> None:
    """``fit_power_law(sizes, losses) -> (a, alpha, c)`` for L(N) = a N^-alpha + c."""
    name = "check_fit_power_law"
    require_callable(name, fit_power_law, "fit_power_law", n_args=2)
    for case, sizes, losses, truth, held_out in _law_cases(_gen(seed)):
        got = call(name, fit_power_law, list(sizes), list(losses), what="fit_power_law(sizes, losses)",
                   bans=BANS[name])
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            fail(name, case, "a tuple (a, alpha, c)", got, "return the three numbers of the law")
        a, alpha, c = (as_number(name, v, f"the {w} of the fit") for v, w in zip(got, ("a", "alpha", "c")))
        ref = _fit(sizes, losses)
        if not all(math.isfinite(v) for v in (a, alpha, c)):
            fail(name, case, f"finite numbers, e.g. {tuple(round(v, 4) for v in ref)}", (a, alpha, c),
                 "log(L - c) is only defined for c below the smallest loss: try c from 0 up to just "
                 "under min(losses)")
        if alpha < 0:
            fail(name, f"the exponent for {case}", f"alpha > 0 (about {ref[1]:.4f})", alpha,
                 "the law is a N^-alpha: the slope of log(L - c) against log N is -alpha, so alpha is "
                 "minus the fitted slope")
        if not 0 <= c < min(losses):
            fail(name, f"the irreducible loss c for {case}", f"0 <= c < {min(losses):.4f} (about {ref[2]:.4f})",
                 c, "c is the loss no model size removes: it lies between 0 and the smallest loss measured")
        pred, ref_pred = a * held_out ** -alpha + c, ref[0] * held_out ** -ref[1] + ref[2]
        if truth is not None:
            true_pred = truth[0] * held_out ** -truth[1] + truth[2]
            tol = 0.01 * abs(true_pred - truth[2]) + 2e-3
            if abs(pred - true_pred) > tol:
                flat = _fit_no_c(sizes, losses)
                if truth[2] > 0 and abs(pred - (flat[0] * held_out ** -flat[1])) < 2e-3:
                    hint = ("this is a pure power law (c = 0): without the irreducible loss the line in "
                            "log-log space bends and the extrapolation to a larger model goes wrong; "
                            "search over c too")
                else:
                    hint = ("for each c on a fine grid (at least 1,000 values from 0 to just under the "
                            "smallest loss) fit log(L - c) = log a - alpha log N by least squares, and keep "
                            "the c whose curve has the smallest squared error in L")
                fail(name, f"the predicted loss at N = {held_out:,} for {case}",
                     f"{true_pred:.4f} (the true law: a = {truth[0]}, alpha = {truth[1]}, c = {truth[2]})",
                     f"{pred:.4f} from a = {a:.4g}, alpha = {alpha:.4g}, c = {c:.4g}", hint)
        err, ref_err = _sse((a, alpha, c), sizes, losses), _sse(ref, sizes, losses)
        if err > 1.05 * ref_err + 1e-7:
            fail(name, f"the squared error of the fit for {case}",
                 f"at most about {ref_err:.3g} (a = {ref[0]:.4g}, alpha = {ref[1]:.4f}, c = {ref[2]:.4f}; "
                 f"predicts {ref_pred:.4f} at N = {held_out:,})",
                 f"{err:.3g} (a = {a:.4g}, alpha = {alpha:.4f}, c = {c:.4f})",
                 "pick c by the squared error of the curve in L itself (not of the line in log space), "
                 "on a fine grid of c")
    passed(name, "L(N) = a N^-alpha + c recovered on exact laws and fitted as well as the reference on noisy ones")


def _fit_no_c(sizes, losses):
    x = [math.log(n) for n in sizes]
    y = [math.log(v) for v in losses]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return math.exp(my - slope * mx), -slope
