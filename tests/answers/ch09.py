"""Chapter 09's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math

import numpy as np
import torch

import coursekit.models.mlm as M
import coursekit.scaling as S
from answers import Case
from coursekit.models.gpt import GPT

# --- right answers (another coding than the checks' references) ---------------------------


def mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id):
    chosen = u_choose < rate                                             # (B, T)
    masked = torch.full_like(ids, mask_id)
    replaced = torch.where(u_kind < 0.8, masked, torch.where(u_kind < 0.9, random_ids, ids))
    return torch.where(chosen, replaced, ids), ids.masked_fill(~chosen, -100)


def kaplan_flops(cfg, n_tokens):
    C, L = cfg.n_embd, cfg.n_layer
    weights = L * 12 * C * C                                             # QKV, O, two MLP matrices
    biases = L * (3 * C + C + 4 * C + C) if cfg.bias else 0
    norms = (2 * L + 1) * C * (2 if cfg.bias else 1) if cfg.layer_norm else 0
    return 6 * (weights + biases + norms) * n_tokens


def fit_power_law(sizes, losses):
    n, L = np.asarray(sizes, float), np.asarray(losses, float)
    best = (math.inf, None)
    for c in np.linspace(0, L.min(), 3001)[:-1]:
        slope, intercept = np.polyfit(np.log(n), np.log(L - c), 1)
        err = ((np.exp(intercept) * n ** slope + c - L) ** 2).sum()
        if err < best[0]:
            best = (err, (float(np.exp(intercept)), float(-slope), float(c)))
    return best[1]


RIGHT = [
    Case("check_mask_for_mlm", mask_for_mlm, why="nested torch.where"),
    Case("check_mask_for_mlm", mask_for_mlm, why="another seed", kwargs={"seed": 5}),
    Case("check_kaplan_flops", kaplan_flops, why="formula by parts"),
    Case("check_kaplan_flops", kaplan_flops, why="another seed", kwargs={"seed": 3}),
    Case("check_fit_power_law", fit_power_law, why="numpy polyfit per c"),
    Case("check_fit_power_law", fit_power_law, why="another seed", kwargs={"seed": 4}),
]


# --- wrong answers --------------------------------------------------------------------------

def _labels_everywhere(ids, u_choose, u_kind, random_ids, rate, mask_id):
    inputs, _ = mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id)
    return inputs, ids.clone()


def _zero_labels(ids, u_choose, u_kind, random_ids, rate, mask_id):
    inputs, _ = mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id)
    return inputs, ids.masked_fill(~(u_choose < rate), 0)


def _le_rate(ids, u_choose, u_kind, random_ids, rate, mask_id):
    chosen = u_choose <= rate
    replaced = torch.where(u_kind < 0.8, torch.full_like(ids, mask_id), torch.where(u_kind < 0.9, random_ids, ids))
    return torch.where(chosen, replaced, ids), ids.masked_fill(~chosen, -100)


def _all_masked(ids, u_choose, u_kind, random_ids, rate, mask_id):
    chosen = u_choose < rate
    return ids.masked_fill(chosen, mask_id), ids.masked_fill(~chosen, -100)


def _kind_everywhere(ids, u_choose, u_kind, random_ids, rate, mask_id):   # u_kind applied to all positions
    replaced = torch.where(u_kind < 0.8, torch.full_like(ids, mask_id), torch.where(u_kind < 0.9, random_ids, ids))
    return replaced, ids.masked_fill(~(u_choose < rate), -100)


def _swapped_random_kept(ids, u_choose, u_kind, random_ids, rate, mask_id):
    chosen = u_choose < rate
    replaced = torch.where(u_kind < 0.8, torch.full_like(ids, mask_id), torch.where(u_kind < 0.9, ids, random_ids))
    return torch.where(chosen, replaced, ids), ids.masked_fill(~chosen, -100)


def _targets_from_inputs(ids, u_choose, u_kind, random_ids, rate, mask_id):
    inputs, _ = mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id)
    return inputs, inputs.masked_fill(~(u_choose < rate), -100)


def _float_labels(ids, u_choose, u_kind, random_ids, rate, mask_id):
    inputs, targets = mask_for_mlm(ids, u_choose, u_kind, random_ids, rate, mask_id)
    return inputs, targets.float()


def _coursekit_mask(ids, u_choose, u_kind, random_ids, rate, mask_id):
    return M.mask_tokens(ids, mask_id, mask_id + 1, rate)


_alias_mask = M.mask_tokens


def _count(cfg, *, bias=True, norms=True):
    C, L = cfg.n_embd, cfg.n_layer
    n = L * 12 * C * C
    if bias and cfg.bias:
        n += L * 9 * C
    if norms and cfg.layer_norm:
        n += (2 * L + 1) * C * (2 if cfg.bias else 1)
    return n


def _forward_only(cfg, n_tokens):
    return 2 * _count(cfg) * n_tokens


def _with_embeddings(cfg, n_tokens):
    return 6 * (_count(cfg) + cfg.vocab_size * cfg.n_embd + cfg.block_size * cfg.n_embd) * n_tokens


def _approximation(cfg, n_tokens):
    return 6 * 12 * cfg.n_layer * cfg.n_embd ** 2 * n_tokens


def _ignores_bias_flag(cfg, n_tokens):          # always counts biases
    C, L = cfg.n_embd, cfg.n_layer
    return 6 * (L * (12 * C * C + 13 * C) + 2 * C) * n_tokens


def _forgets_final_norm(cfg, n_tokens):
    C = cfg.n_embd
    return 6 * (_count(cfg) - (C * (2 if cfg.bias else 1) if cfg.layer_norm else 0)) * n_tokens


def _builds_the_model(cfg, n_tokens):
    model = GPT(cfg)
    return 6 * (model.num_params() - model.tok_emb.weight.numel() - model.pos_emb.weight.numel()) * n_tokens


def _coursekit_flops(cfg, n_tokens):
    return S.training_flops(_count(cfg), n_tokens)


def _no_c(sizes, losses):
    slope, intercept = np.polyfit(np.log(sizes), np.log(losses), 1)
    return float(np.exp(intercept)), float(-slope), 0.0


def _c_at_min(sizes, losses):                   # c = the smallest loss: log(0)
    c = min(losses)
    with np.errstate(divide="ignore"):
        slope, intercept = np.polyfit(np.log(sizes), np.log(np.asarray(losses) - c + 0.0), 1)
    return float(np.exp(intercept)), float(-slope), float(c)


def _slope_as_alpha(sizes, losses):
    a, alpha, c = fit_power_law(sizes, losses)
    return a, -alpha, c


def _coarse_log_space(sizes, losses):           # picks c by the residual of the line in log space, coarse grid
    n, L = np.asarray(sizes, float), np.asarray(losses, float)
    best = (math.inf, None)
    for c in np.linspace(0, L.min(), 11)[:-1]:
        coef, res, *_ = np.polyfit(np.log(n), np.log(L - c), 1, full=True)
        err = float(res[0]) if len(res) else 0.0
        if err < best[0]:
            best = (err, (float(np.exp(coef[1])), float(-coef[0]), float(c)))
    return best[1]


def _curve_fit(sizes, losses):
    from scipy.optimize import curve_fit
    p, _ = curve_fit(lambda n, a, alpha, c: a * n ** -alpha + c, np.asarray(sizes, float),
                     np.asarray(losses, float), p0=(5, 0.3, 0.5), maxfev=20000)
    return tuple(float(v) for v in p)


def _coursekit_fit(sizes, losses):
    law = S.fit_power_law(sizes, losses)
    return law.a, law.alpha, law.c


WRONG = [
    # mask_for_mlm
    Case("check_mask_for_mlm", _labels_everywhere, "-100", "labels at every position"),
    Case("check_mask_for_mlm", _zero_labels, "ignore_index", "label 0 where not chosen"),
    Case("check_mask_for_mlm", _le_rate, "strictly", "u_choose <= rate"),
    Case("check_mask_for_mlm", _all_masked, "80%", "every chosen position masked"),
    Case("check_mask_for_mlm", _kind_everywhere, "not chosen must be left", "replaces unchosen positions"),
    Case("check_mask_for_mlm", _swapped_random_kept, "0.8 <= u_kind < 0.9", "random and kept swapped"),
    Case("check_mask_for_mlm", _targets_from_inputs, "original token", "targets from the masked input"),
    Case("check_mask_for_mlm", _float_labels, "integer", "float labels"),
    Case("check_mask_for_mlm", _coursekit_mask, "coursekit.models.mlm.mask_tokens", "coursekit's mask_tokens"),
    Case("check_mask_for_mlm", lambda ids, uc, uk, r, rate, m: _alias_mask(ids, m, m + 1, rate),
         "coursekit.models.mlm.mask_tokens", "alias of mask_tokens"),
    # kaplan_flops
    Case("check_kaplan_flops", _forward_only, "backward", "2ND"),
    Case("check_kaplan_flops", _with_embeddings, "embeddings are left out", "embeddings counted"),
    Case("check_kaplan_flops", _approximation, "12 n_layer d^2", "the approximation"),
    Case("check_kaplan_flops", _ignores_bias_flag, "your N is", "biases always counted"),
    Case("check_kaplan_flops", _forgets_final_norm, "final LayerNorm", "final LayerNorm forgotten"),
    Case("check_kaplan_flops", _builds_the_model, "coursekit.models.gpt.GPT", "builds the GPT"),
    Case("check_kaplan_flops", _coursekit_flops, "coursekit.scaling", "coursekit's training_flops"),
    # fit_power_law
    Case("check_fit_power_law", _no_c, "pure power law", "no irreducible term"),
    Case("check_fit_power_law", _c_at_min, "finite numbers", "c at the smallest loss"),
    Case("check_fit_power_law", _slope_as_alpha, "alpha > 0", "slope returned as alpha"),
    Case("check_fit_power_law", _coarse_log_space, "fine grid", "coarse grid in log space"),
    Case("check_fit_power_law", _curve_fit, "scipy.optimize.curve_fit", "scipy's curve_fit"),
    Case("check_fit_power_law", _coursekit_fit, "coursekit.scaling.fit_power_law", "coursekit's fit"),
]
