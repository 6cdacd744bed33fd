"""Checks for chapter 16, Challenges and limitations (``exercises/16_challenges.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``bm25_scores(query, docs, k1, b) -> (N,)``: Okapi BM25 with the idf
  ln(1 + (N - n + 0.5) / (n + 0.5)), each distinct query term counted once
  (Robertson and Zaragoza, 2009)
* ``quantize_rows(weight, bits) -> (q (out, in) int8, scale (out, 1))``: symmetric per-row
  quantisation, scale = max |w| of the row / (2^(bits-1) - 1), round to nearest
* ``magnitude_prune(weight, share) -> weight``: the round(share * numel) smallest |w| set to 0
* ``distillation_loss(student_logits, teacher_logits, T) -> 0-d``:
  T^2 KL(softmax(teacher / T) || softmax(student / T)), averaged over positions
  (Hinton, Vinyals and Dean, 2015)
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (as_tensor, call, diagnose, expect_close, fail, passed,
                                         require_callable)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use
# ---------------------------------------------------------------------------------------
_R = "coursekit.retrieval."
_C = "coursekit.compress."
BANS = {
    "check_bm25_scores": [
        ban(_R + "bm25_scores", _R + "BM25", reason="coursekit's BM25 is the lesson's answer; write the sum yourself"),
    ],
    "check_quantize_rows": [
        ban(_C + "quantize_rows", _C + "Int8Linear", _C + "quantize_weights",
            reason="coursekit's quantize_rows is the answer; compute the scales and the rounding yourself"),
        ban("torch.quantize_per_channel", "torch.quantize_per_tensor", "torch.fake_quantize_per_channel_affine",
            ops=["aten::quantize_per_channel", "aten::fake_quantize_per_channel_affine"],
            reason="torch's quantisers do the rounding for you; write scale, round and clamp"),
    ],
    "check_magnitude_prune": [
        ban(_C + "magnitude_prune", _C + "prune_model",
            reason="coursekit's magnitude_prune is the answer; pick the weights yourself"),
        ban("torch.nn.utils.prune.l1_unstructured", "torch.nn.utils.prune.L1Unstructured",
            "torch.nn.utils.prune.global_unstructured",
            reason="torch's pruning utilities choose the weights for you; sort by magnitude yourself"),
    ],
    "check_distillation_loss": [
        ban(_C + "distillation_loss", _C + "distill",
            reason="coursekit's distillation_loss is the answer; write the softened KL yourself"),
    ],
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.retrieval and coursekit.compress)
# ---------------------------------------------------------------------------------------
def _bm25(query, docs, k1, b, *, idf_plus_one=True, normalise=True, saturate=True, distinct=True):
    N = len(docs)
    avgdl = sum(len(d) for d in docs) / N
    terms = list(dict.fromkeys(query)) if distinct else list(query)
    out = []
    for d in docs:
        s = 0.0
        for t in terms:
            tf = d.count(t)
            n = sum(t in doc for doc in docs)
            idf = math.log((1 if idf_plus_one else 0) + (N - n + 0.5) / (n + 0.5))
            if not saturate:
                s += idf * tf
                continue
            norm = k1 * ((1 - b + b * len(d) / avgdl) if normalise else 1.0)
            s += idf * tf * (k1 + 1) / (tf + norm) if tf else 0.0
        out.append(s)
    return torch.tensor(out, dtype=torch.float64)


def _quant(w, bits, *, qmax=None, per_row=True, rounding="round"):
    qmax = qmax or 2 ** (bits - 1) - 1
    w = w.double()
    amax = w.abs().amax(1, keepdim=True) if per_row else w.abs().max().expand(w.shape[0], 1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    r = w / scale
    r = torch.round(r) if rounding == "round" else torch.trunc(r)
    return r.clamp(-qmax, qmax), scale


def _prune(w, share, key="abs"):
    k = int(round(share * w.numel()))
    flat = w.reshape(-1)
    val = flat.abs() if key == "abs" else (-flat.abs() if key == "largest" else flat)
    out = flat.clone()
    out[torch.sort(val, stable=True).indices[:k]] = 0
    return out.reshape(w.shape)


def _kd(s, t, T, *, square=True, swap=False, teacher_T=True, reduce="mean"):
    V = s.shape[-1]
    ls = torch.log_softmax(s.reshape(-1, V).double() / T, -1)
    lt = torch.log_softmax(t.reshape(-1, V).double() / (T if teacher_T else 1.0), -1)
    kl = (ls.exp() * (ls - lt)).sum(-1) if swap else (lt.exp() * (lt - ls)).sum(-1)
    kl = kl.mean() if reduce == "mean" else kl.sum()
    return kl * (T * T if square else 1.0)


# ---------------------------------------------------------------------------------------
# check_bm25_scores
# ---------------------------------------------------------------------------------------
_VOCAB = ["town", "known", "for", "bells", "bridge", "cheese", "ashford", "mill", "river", "the"]


def _random_docs(g, n_docs, max_len):
    docs = []
    for _ in range(n_docs):
        length = int(torch.randint(1, max_len + 1, (1,), generator=g))
        docs.append([_VOCAB[i] for i in torch.randint(0, len(_VOCAB), (length,), generator=g).tolist()])
    return docs


def check_bm25_scores(bm25_scores, seed: int = 0) -> None:
    """``bm25_scores(query, docs, k1, b)``: one BM25 score per tokenised document."""
    name = "check_bm25_scores"
    require_callable(name, bm25_scores, "bm25_scores", n_args=4)
    g = _gen(seed)
    docs3 = [["ashford", "is", "known", "for", "bells"], ["mill", "is", "known", "for", "cheese", "and", "bells",
                                                          "and", "bells", "and", "more", "bells"],
             ["the", "river"]]
    cases = [("query ['ashford', 'bells'] on 3 documents, k1 = 1.5, b = 0.75", ["ashford", "bells"], docs3, 1.5, 0.75),
             ("b = 0: no length normalisation", ["bells"], docs3, 1.2, 0.0),
             ("b = 1: full length normalisation", ["bells", "river"], docs3, 1.2, 1.0),
             ("k1 = 0: a term counts once, however often it appears", ["bells", "known"], docs3, 0.0, 0.75),
             ("a query term that appears twice counts once", ["bells", "bells", "mill"], docs3, 1.5, 0.75),
             ("a term in no document adds nothing", ["castle", "river"], docs3, 1.5, 0.75)]
    for i in range(4):
        docs = _random_docs(g, int(torch.randint(3, 9, (1,), generator=g)), 12)
        query = [_VOCAB[j] for j in torch.randint(0, len(_VOCAB), (int(torch.randint(1, 5, (1,), generator=g)),),
                                                  generator=g).tolist()]
        k1 = round(0.5 + 1.5 * torch.rand(1, generator=g).item(), 3)
        b = round(torch.rand(1, generator=g).item(), 3)
        cases.append((f"random case {i + 1}: query {query}, {len(docs)} documents, k1 = {k1}, b = {b}",
                      query, docs, k1, b))
    for case, query, docs, k1, b in cases:
        q_in, d_in = list(query), [list(d) for d in docs]
        got = call(name, bm25_scores, q_in, d_in, k1, b, what="bm25_scores(query, docs, k1, b)", bans=BANS[name])
        if q_in != query or d_in != docs:
            fail(name, case + ": the inputs must not change", "query and docs as they were", "they were changed",
                 "read the lists; do not sort, pop or append to them")
        ref = _bm25(query, docs, k1, b)
        hint = diagnose(got, [
            (_bm25(query, docs, k1, b, normalise=False), "the document length is missing: divide by "
             "tf + k1 (1 - b + b |d| / avgdl), so that a long document is not favoured"),
            (_bm25(query, docs, k1, b, idf_plus_one=False), "the idf needs the 1 + inside the log: "
             "ln(1 + (N - n + 0.5) / (n + 0.5)) stays positive for a term in most documents"),
            (_bm25(query, docs, k1, b, saturate=False), "the term count must saturate: "
             "tf (k1 + 1) / (tf + k1 (...)) instead of the raw count tf"),
            (_bm25(query, docs, k1, b, distinct=False), "a query term that appears twice counts once: "
             "loop over the distinct terms of the query"),
        ], "score = sum over distinct query terms of idf(t) tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))",
            right=ref)
        expect_close(name, case, got, ref, atol=1e-6, hint=hint, what="the scores")
    passed(name, "idf, saturation, length normalisation, k1 = 0, b = 0 and 1, repeated terms, on 10 cases")


# ---------------------------------------------------------------------------------------
# check_quantize_rows
# ---------------------------------------------------------------------------------------
def check_quantize_rows(quantize_rows, seed: int = 0) -> None:
    """``quantize_rows(weight, bits)``: (int8 q, (out, 1) scales), one symmetric scale per row."""
    name = "check_quantize_rows"
    require_callable(name, quantize_rows, "quantize_rows", n_args=2)
    g = _gen(seed)
    small = torch.tensor([[0.5, -1.0, 0.25], [2.0, 0.1, -0.7]])
    zero_row = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.3, -0.2, 0.05, 0.1]])
    scaled = torch.randn(6, 10, generator=g) * torch.logspace(-2, 1, 6)[:, None]      # rows of very different sizes
    cases = [("a 2 x 3 matrix, 8 bits", small, 8),
             ("a row of zeros gets scale 1 and q = 0 (8 bits)", zero_row, 8),
             ("rows whose sizes differ 1000-fold (8 bits)", scaled, 8),
             ("4 bits (qmax = 7)", torch.randn(5, 7, generator=g), 4),
             ("2 bits (qmax = 1)", torch.randn(3, 9, generator=g), 2),
             ("a 16 x 32 matrix, 8 bits", torch.randn(16, 32, generator=g) * 0.05, 8),
             ("a 8 x 24 matrix, 6 bits", torch.randn(8, 24, generator=g) * 3, 6)]
    for case, w, bits in cases:
        w_in = w.clone()
        got = call(name, quantize_rows, w_in, bits, what="quantize_rows(weight, bits)", bans=BANS[name])
        if not torch.equal(w_in, w):
            fail(name, case + ": weight must not change", "the weight as it was", "it was changed in place",
                 "divide into a new tensor; avoid in-place operations such as div_")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            fail(name, case, "a pair (q, scale)", type(got).__name__, "return q, scale")
        q, scale = got
        q = as_tensor(name, q, "q", shape=tuple(w.shape))
        scale = as_tensor(name, scale, "scale", shape=(w.shape[0], 1))
        if q.dtype != torch.int8:
            fail(name, case + ": the dtype of q", "torch.int8 (one byte a weight)", f"{q.dtype}",
                 "convert the rounded values with .to(torch.int8): that is where the memory is saved")
        ref_q, ref_scale = _quant(w, bits)
        g_s = _quant(w, bits, per_row=False)[1]
        hint = diagnose(scale, [
            (g_s, "one scale for the whole matrix: each row needs its own, max |w| of the row / qmax"),
            (_quant(w, bits, qmax=2 ** (bits - 1))[1], "qmax is 2^(bits-1) - 1 (127 for 8 bits), so that the "
             "range is symmetric: -127 .. 127"),
            (_quant(w, bits, qmax=2 ** bits - 1)[1], "the scale is symmetric: max |w| / (2^(bits-1) - 1); "
             "2^bits - 1 levels would need an offset (zero point) as well"),
        ], "scale = max |w| of the row / (2^(bits-1) - 1), shape (out, 1); a row of zeros gets 1", right=ref_scale)
        expect_close(name, case + ": the scales", scale, ref_scale, atol=1e-7, rtol=1e-5, hint=hint, what="scale")
        exact = w.double() / ref_scale
        near_half = ((exact.abs() - exact.abs().floor()) - 0.5).abs() < 1e-4          # rounding may go either way
        off = (q.long() - ref_q.long()).abs()
        if ((off > 0) & ~near_half).any() or (off > 1).any():
            hint = diagnose(q, [
                (_quant(w, bits, rounding="trunc")[0], "q is truncated towards zero: round to the nearest "
                 "integer (torch.round), or the error is up to a whole step instead of half"),
                (_quant(w, bits, per_row=False)[0], "q was computed with one scale for the whole matrix"),
            ], "q = round(weight / scale), clamped to [-qmax, qmax]", right=ref_q)
            fail(name, case + ": the integer weights q", ref_q.to(torch.int8), q, hint)
    passed(name, "per-row scales, rounding, int8, zero rows, 2 to 8 bits, on 7 cases")


# ---------------------------------------------------------------------------------------
# check_magnitude_prune
# ---------------------------------------------------------------------------------------
def check_magnitude_prune(magnitude_prune, seed: int = 0) -> None:
    """``magnitude_prune(weight, share)``: the round(share * numel) smallest |w| become 0."""
    name = "check_magnitude_prune"
    require_callable(name, magnitude_prune, "magnitude_prune", n_args=2)
    g = _gen(seed)
    small = torch.tensor([[0.3, -2.0, 0.1], [-0.05, 1.0, -0.7]])
    rows = torch.tensor([[10.0, 11.0, 12.0, 13.0], [0.1, 0.2, 0.3, 0.4]])             # one row of large weights
    cases = [("a 2 x 3 matrix, share 0.5 (3 weights)", small, 0.5),
             ("share 0 changes nothing", small, 0.0),
             ("share 1 zeroes everything", small, 1.0),
             ("one row of large weights, share 0.5: the whole small row goes", rows, 0.5),
             ("a 8 x 16 matrix, share 0.3 (38 weights)", torch.randn(8, 16, generator=g), 0.3),
             ("a (4, 5, 6) tensor, share 0.75", torch.randn(4, 5, 6, generator=g), 0.75),
             ("a vector of 50, share 0.1", torch.randn(50, generator=g), 0.1),
             ("a 32 x 12 matrix, share 0.9", torch.randn(32, 12, generator=g) * 0.02, 0.9)]
    for case, w, share in cases:
        w_in = w.clone()
        got = call(name, magnitude_prune, w_in, share, what="magnitude_prune(weight, share)", bans=BANS[name])
        if not torch.equal(w_in, w):
            fail(name, case + ": weight must not change", "the weight as it was", "it was changed in place",
                 "clone the weight first and zero the copy (the caller may still need the original)")
        ref = _prune(w, share)
        per_row = torch.stack([_prune(r, share) for r in w.reshape(w.shape[0], -1)]).reshape(w.shape) \
            if w.dim() > 1 else ref
        hint = diagnose(got, [
            (_prune(w, share, key="largest"), "the largest weights were removed: prune the smallest |w|"),
            (_prune(w, share, key="signed"), "the most negative weights were removed: rank by magnitude |w|, "
             "not by the signed value"),
            (per_row, "each row was pruned on its own: rank all the weights of the tensor together"),
            (w * (w.abs() > w.abs().mean()), "a threshold at the mean: remove exactly round(share * numel) "
             "weights"),
        ], f"exactly round(share * numel) = {int(round(share * w.numel()))} weights, the smallest in magnitude, "
           "become 0; the rest keep their values", right=ref)
        expect_close(name, case, got, ref, atol=0, rtol=0, hint=hint, what="the pruned weight")
    passed(name, "magnitude, count, shares 0 and 1, any shape, input untouched, on 8 cases")


# ---------------------------------------------------------------------------------------
# check_distillation_loss
# ---------------------------------------------------------------------------------------
def check_distillation_loss(distillation_loss, seed: int = 0) -> None:
    """``distillation_loss(student_logits, teacher_logits, T)``: T^2 KL(teacher_T || student_T), mean over positions."""
    name = "check_distillation_loss"
    require_callable(name, distillation_loss, "distillation_loss", n_args=3)
    g = _gen(seed)
    s1, t1 = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    cases = [("one position, 3 classes, T = 1", s1, t1, 1.0),
             ("the same at T = 2 (the T^2 factor matters)", s1, t1, 2.0),
             ("student equal to teacher: loss 0", t1.clone(), t1, 3.0),
             ("a batch of 4 positions, 10 classes, T = 4", torch.randn(4, 10, generator=g),
              3 * torch.randn(4, 10, generator=g), 4.0),
             ("(B, T, V) = (2, 5, 7) language-model logits, T = 2", torch.randn(2, 5, 7, generator=g),
              2 * torch.randn(2, 5, 7, generator=g), 2.0),
             ("(3, 6, 11) logits, T = 0.5", torch.randn(3, 6, 11, generator=g), torch.randn(3, 6, 11, generator=g),
              0.5)]
    for case, s, t, T in cases:
        s_in, t_in = s.clone().requires_grad_(True), t.clone()
        got = call(name, distillation_loss, s_in, t_in, T, what="distillation_loss(student_logits, "
                   "teacher_logits, T)", bans=BANS[name])
        got = as_tensor(name, got, "the loss", shape=())
        ref = _kd(s, t, T)
        hint = diagnose(got.detach(), [
            (_kd(s, t, T, square=False), "the T^2 factor is missing: without it the gradient shrinks as 1/T^2"),
            (_kd(s, t, T, swap=True), "the KL is the wrong way round: KL(teacher || student) = "
             "sum p_teacher (log p_teacher - log p_student)"),
            (_kd(s, t, T, teacher_T=False), "soften the teacher too: divide both logits by T"),
            (_kd(s, t, T, reduce="sum"), "average over positions (all axes but the last), do not sum"),
        ], "T^2 times the mean over positions of KL(softmax(teacher / T) || softmax(student / T))",
            right=ref)
        expect_close(name, case, got.detach(), ref, atol=1e-5, hint=hint, what="the loss")
        if got.requires_grad:
            got.backward()
        if s_in.grad is None or not torch.isfinite(s_in.grad).all():
            fail(name, case + ": the loss must be differentiable in the student's logits",
                 "a gradient for student_logits", "none", "compute with torch operations on the student's "
                 "logits (no .detach(), .item() or numpy on them)")
    passed(name, "T^2, the KL's direction, both softened, mean over positions, gradient, on 6 cases")
