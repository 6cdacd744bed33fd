"""Chapter 16's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F
import torch.nn.utils.prune

import coursekit.compress as CP
from answers import Case
from coursekit.compress import distillation_loss as _package_kd
from coursekit.compress import magnitude_prune as _package_prune
from coursekit.compress import quantize_rows as _package_quant
from coursekit.retrieval import bm25_scores as _package_bm25

# --- right answers (another coding than the checks' references) ---------------------------


def bm25_scores(query, docs, k1, b):                   # plain Python, Counter per document
    N = len(docs)
    avgdl = sum(map(len, docs)) / N
    counts = [Counter(d) for d in docs]
    out = []
    for d, c in zip(docs, counts):
        total = 0.0
        for t in set(query):
            tf = c[t]
            if tf == 0:
                continue
            n = sum(1 for cc in counts if cc[t])
            total += math.log(1 + (N - n + 0.5) / (n + 0.5)) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(total)
    return torch.tensor(out)


def bm25_vectorised(query, docs, k1, b):               # a term-count matrix
    terms = sorted(set(query))
    tf = torch.tensor([[d.count(t) for t in terms] for d in docs], dtype=torch.float64)     # (N, T)
    if not terms:
        return torch.zeros(len(docs))
    N = len(docs)
    n = (tf > 0).sum(0)                                                                     # (T,)
    idf = torch.log1p((N - n + 0.5) / (n + 0.5))                                            # (T,)
    dl = torch.tensor([len(d) for d in docs], dtype=torch.float64)[:, None]                 # (N, 1)
    denom = tf + k1 * (1 - b + b * dl / dl.mean())
    part = torch.where(tf > 0, tf * (k1 + 1) / denom.clamp_min(1e-300), torch.zeros_like(tf))
    return (part * idf).sum(1)


def quantize_rows(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    amax = torch.max(weight.abs(), dim=1).values[:, None]                                   # (out, 1)
    scale = amax / qmax
    scale[amax == 0] = 1.0
    return torch.round(weight * (1 / scale)).clamp(-qmax, qmax).to(torch.int8), scale


def quantize_rows_loop(weight, bits):                   # row by row
    qmax = 2 ** (bits - 1) - 1
    qs, scales = [], []
    for row in weight:
        m = row.abs().max().item()
        s = m / qmax if m > 0 else 1.0
        qs.append(torch.clamp(torch.round(row / s), -qmax, qmax))
        scales.append(s)
    return torch.stack(qs).to(torch.int8), torch.tensor(scales, dtype=torch.float32)[:, None]


def magnitude_prune(weight, share):
    k = int(round(share * weight.numel()))
    flat = weight.flatten().clone()
    flat[torch.argsort(flat.abs())[:k]] = 0
    return flat.view_as(weight)


def magnitude_prune_mask(weight, share):                # keep the numel - k largest
    n = weight.numel()
    keep = n - int(round(share * n))
    mask = torch.zeros(n, dtype=torch.bool)
    if keep:
        mask[weight.abs().flatten().topk(keep).indices] = True
    return weight * mask.view_as(weight)


def distillation_loss(student_logits, teacher_logits, T):
    V = student_logits.shape[-1]
    log_q = F.log_softmax(student_logits.reshape(-1, V) / T, -1)
    log_p = F.log_softmax(teacher_logits.reshape(-1, V) / T, -1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean") * T * T


def distillation_loss_probs(student_logits, teacher_logits, T):   # entropy form: H(p, q) - H(p)
    p = torch.softmax(teacher_logits / T, -1)
    cross = -(p * torch.log_softmax(student_logits / T, -1)).sum(-1)
    ent = -(p * torch.log_softmax(teacher_logits / T, -1)).sum(-1)
    return (T ** 2) * (cross - ent).mean()


RIGHT = [
    Case("check_bm25_scores", bm25_scores, why="plain loops"),
    Case("check_bm25_scores", bm25_vectorised, why="term-count matrix", kwargs={"seed": 5}),
    Case("check_quantize_rows", quantize_rows, why="multiply by the inverse scale"),
    Case("check_quantize_rows", quantize_rows_loop, why="row by row", kwargs={"seed": 2}),
    Case("check_magnitude_prune", magnitude_prune, why="argsort"),
    Case("check_magnitude_prune", magnitude_prune_mask, why="keep mask", kwargs={"seed": 3}),
    Case("check_distillation_loss", distillation_loss, why="kl_div batchmean"),
    Case("check_distillation_loss", distillation_loss_probs, why="cross-entropy minus entropy", kwargs={"seed": 4}),
]


# --- wrong answers --------------------------------------------------------------------------

def _bm25_variant(query, docs, k1, b, *, plus_one=True, norm=True, sat=True, distinct=True):
    N = len(docs)
    avgdl = sum(map(len, docs)) / N
    out = []
    for d in docs:
        total = 0.0
        for t in (set(query) if distinct else query):
            tf = d.count(t)
            n = sum(t in dd for dd in docs)
            idf = math.log((1 if plus_one else 0) + (N - n + 0.5) / (n + 0.5))
            if not tf:
                continue
            if not sat:
                total += idf * tf
            else:
                total += idf * tf * (k1 + 1) / (tf + k1 * ((1 - b + b * len(d) / avgdl) if norm else 1))
        out.append(total)
    return torch.tensor(out)


def _bm25_sorts_query(query, docs, k1, b):
    query.sort()
    return bm25_scores(query, docs, k1, b)


def _quant_global(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    s = weight.abs().max() / qmax
    return torch.round(weight / s).clamp(-qmax, qmax).to(torch.int8), s.expand(weight.shape[0], 1).clone()


def _quant_qmax(weight, bits, qmax):
    amax = weight.abs().amax(1, keepdim=True)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.round(weight / scale).clamp(-qmax, qmax).to(torch.int8), scale


def _quant_trunc(weight, bits):
    q, s = quantize_rows(weight, bits)
    return torch.trunc(weight / s).to(torch.int8), s


def _quant_float(weight, bits):
    q, s = quantize_rows(weight, bits)
    return q.float(), s


def _quant_torch(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(1) / qmax
    qt = torch.quantize_per_channel(weight, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
    return qt.int_repr(), scale[:, None]


def _prune_key(weight, share, key):
    k = int(round(share * weight.numel()))
    flat = weight.flatten().clone()
    order = torch.argsort(-flat.abs() if key == "largest" else flat)
    flat[order[:k]] = 0
    return flat.view_as(weight)


def _prune_rows(weight, share):
    rows = weight.reshape(weight.shape[0], -1) if weight.dim() > 1 else weight[None]
    return torch.stack([magnitude_prune(r, share) for r in rows]).reshape(weight.shape)


def _prune_in_place(weight, share):
    k = int(round(share * weight.numel()))
    weight.view(-1)[torch.argsort(weight.abs().flatten())[:k]] = 0
    return weight


def _prune_torch(weight, share):
    module = torch.nn.Linear(1, 1)
    module.weight = torch.nn.Parameter(weight.clone())
    torch.nn.utils.prune.l1_unstructured(module, "weight", amount=int(round(share * weight.numel())))
    return module.weight.detach()


def _kd_variant(s, t, T, *, square=True, swap=False, soften_teacher=True, reduce="mean"):
    V = s.shape[-1]
    ls = F.log_softmax(s.reshape(-1, V) / T, -1)
    lt = F.log_softmax(t.reshape(-1, V) / (T if soften_teacher else 1.0), -1)
    kl = (ls.exp() * (ls - lt)).sum(-1) if swap else (lt.exp() * (lt - ls)).sum(-1)
    kl = kl.mean() if reduce == "mean" else kl.sum()
    return kl * (T * T if square else 1.0)


def _kd_detached(s, t, T):
    return distillation_loss(s.detach(), t, T)


WRONG = [
    Case("check_bm25_scores", lambda q, d, k1, b: _bm25_variant(q, d, k1, b, norm=False), "document length",
         "no length normalisation"),
    Case("check_bm25_scores", lambda q, d, k1, b: _bm25_variant(q, d, k1, b, plus_one=False), "1 + inside the log",
         "idf without 1 +"),
    Case("check_bm25_scores", lambda q, d, k1, b: _bm25_variant(q, d, k1, b, sat=False), "must saturate",
         "raw tf"),
    Case("check_bm25_scores", lambda q, d, k1, b: _bm25_variant(q, d, k1, b, distinct=False), "counts once",
         "repeated query terms"),
    Case("check_bm25_scores", _bm25_sorts_query, "must not change", "sorts the query in place"),
    Case("check_bm25_scores", lambda q, d, k1, b: _package_bm25(q, d, k1, b), "coursekit.retrieval.bm25_scores",
         "the package's bm25"),
    Case("check_quantize_rows", _quant_global, "one scale for the whole matrix", "global scale"),
    Case("check_quantize_rows", lambda w, bits: _quant_qmax(w, bits, 2 ** (bits - 1)), "2^(bits-1) - 1",
         "qmax 128"),
    Case("check_quantize_rows", lambda w, bits: _quant_qmax(w, bits, 127), "2^(bits-1) - 1", "ignores bits"),
    Case("check_quantize_rows", _quant_trunc, "truncated", "truncation"),
    Case("check_quantize_rows", _quant_float, "torch.int8", "float q"),
    Case("check_quantize_rows", _quant_torch, "torch.quantize_per_channel", "torch's quantiser"),
    Case("check_quantize_rows", lambda w, bits: _package_quant(w, bits), "coursekit.compress.quantize_rows",
         "the package's quantize_rows"),
    Case("check_magnitude_prune", lambda w, s: _prune_key(w, s, "largest"), "largest weights were removed",
         "prunes the largest"),
    Case("check_magnitude_prune", lambda w, s: _prune_key(w, s, "signed"), "most negative", "signed value"),
    Case("check_magnitude_prune", _prune_rows, "each row was pruned on its own", "per row"),
    Case("check_magnitude_prune", _prune_in_place, "must not change", "in place"),
    Case("check_magnitude_prune", _prune_torch, "torch.nn.utils.prune", "torch's l1_unstructured"),
    Case("check_magnitude_prune", lambda w, s: _package_prune(w, s), "coursekit.compress.magnitude_prune",
         "the package's pruning"),
    Case("check_magnitude_prune", lambda w, s: getattr(CP, "prune" + "_model")(torch.nn.Linear(1, 1), s),
         "coursekit.compress", "alias of prune_model"),
    Case("check_distillation_loss", lambda s, t, T: _kd_variant(s, t, T, square=False), "T^2 factor",
         "no T squared"),
    Case("check_distillation_loss", lambda s, t, T: _kd_variant(s, t, T, swap=True), "wrong way round",
         "KL swapped"),
    Case("check_distillation_loss", lambda s, t, T: _kd_variant(s, t, T, soften_teacher=False),
         "soften the teacher", "teacher at T = 1"),
    Case("check_distillation_loss", lambda s, t, T: _kd_variant(s, t, T, reduce="sum"), "average over positions",
         "sum over positions"),
    Case("check_distillation_loss", _kd_detached, "differentiable", "student detached"),
    Case("check_distillation_loss", lambda s, t, T: _package_kd(s, t, T), "coursekit.compress.distillation_loss",
         "the package's loss"),
]
