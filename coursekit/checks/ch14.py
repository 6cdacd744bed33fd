"""Checks for chapter 14, Conditional generation and prompting (``exercises/14_conditioning.ipynb``).

Each check compares the learner's function with a reference written out below, on fixed
small cases and on random cases drawn from ``seed``, and says what to fix when they differ.
Exercise signatures:

* ``guided_eps(eps_uncond, eps_cond, w) -> (B, C, H, W)``: classifier-free guidance with one
  scale for the batch (a float) or one per example (a (B,) tensor)
* ``drop_condition(y, p_uncond, null_class, generator) -> (B,) int64``: condition dropout
  for a training batch, independent per example, drawn from ``generator``
* ``guided_ddim_step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class) -> (B, C, H, W)``:
  one deterministic DDIM step with the guided noise (Song, Meng and Ermon, 2020, eq. 12;
  Ho and Salimans, 2022)
"""
from __future__ import annotations

import torch

from coursekit.checks.assertions import (as_tensor, call, diagnose, expect_close, fail, matches, passed,
                                         require_callable)
from coursekit.checks.forbidden import ban

# ---------------------------------------------------------------------------------------
# What an answer may not use
# ---------------------------------------------------------------------------------------
_C = "coursekit.models.cond_diffusion."
_PACKAGE_GUIDANCE = ban(_C + "guided_eps", _C + "guided_ddim_step", _C + "guided_sample", _C + "_both",
                        reason="coursekit's guidance is the lesson's answer; mix the two predictions yourself")
BANS = {
    "check_guided_eps": [
        _PACKAGE_GUIDANCE,
        ban("torch.lerp", "torch.Tensor.lerp", "torch.Tensor.lerp_", ops=["aten::lerp"],
            reason="torch.lerp computes start + weight * (end - start) for you; write the formula"),
    ],
    "check_drop_condition": [
        ban(_C + "drop_condition", _C + "cond_diffusion_loss",
            reason="coursekit's drop_condition is the answer; draw the dropout yourself"),
    ],
    "check_guided_ddim_step": [
        _PACKAGE_GUIDANCE,
        ban("coursekit.models.diffusion.ddim_step", "coursekit.models.diffusion.ddim_sample",
            "coursekit.models.diffusion.predict_x0",
            reason="write the DDIM update (predicted x0, then the step to t_prev) from the equations"),
    ],
}


# ---------------------------------------------------------------------------------------
# References (written independently of coursekit.models.cond_diffusion)
# ---------------------------------------------------------------------------------------
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _guided(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=torch.float64)
    if w.dim() == 1:
        w = w.reshape(-1, *([1] * (eps_cond.dim() - 1)))                  # (B, 1, 1, 1)
    return ((1 - w) * eps_uncond.double() + w * eps_cond.double()).to(eps_cond.dtype)


def _ddim_guided(model, xt, t, t_prev, y, w, alphas_cumprod, null_class) -> torch.Tensor:
    B = xt.shape[0]
    e_u = model(xt, torch.full((B,), t), torch.full((B,), null_class)).double()
    e_c = model(xt, torch.full((B,), t), y).double()
    eps = e_u + w * (e_c - e_u)
    a_t = alphas_cumprod[t].double()
    a_prev = alphas_cumprod[t_prev].double() if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = ((xt.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps).to(xt.dtype)


# ---------------------------------------------------------------------------------------
# check_guided_eps
# ---------------------------------------------------------------------------------------
def check_guided_eps(guided_eps, seed: int = 0) -> None:
    """``guided_eps(eps_uncond, eps_cond, w)``: eps_uncond + w (eps_cond - eps_uncond), w a float or (B,)."""
    name = "check_guided_eps"
    require_callable(name, guided_eps, "guided_eps", n_args=3)
    g = _gen(seed)
    u, c = torch.tensor([[[[0.0, 1.0]]], [[[2.0, -1.0]]]]), torch.tensor([[[[1.0, 1.0]]], [[[0.0, 3.0]]]])
    cases = [("w = 3 extrapolates past the conditional prediction", u, c, 3.0),
             ("w = 0 gives the unconditional prediction", u, c, 0.0),
             ("w = 1 gives the conditional prediction", u, c, 1.0),
             ("w = -0.5 (away from the condition)", u, c, -0.5),
             ("a batch of 4 (1, 8, 8) images, w = 2.5",
              torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g), 2.5),
             ("one scale per example, w = [0, 1, 4]: a (B,) tensor",
              torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g),
              torch.tensor([0.0, 1.0, 4.0])),
             ("one scale per example on colour images (3, 4, 4), 5 random scales",
              torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g),
              4 * torch.rand(5, generator=g)),
             ("per-example scales with as many examples as pixels per row (4 images of 4x4)",
              torch.randn(4, 1, 4, 4, generator=g), torch.randn(4, 1, 4, 4, generator=g),
              torch.tensor([0.5, 2.0, 0.0, 7.0]))]
    for case, eps_u, eps_c, w in cases:
        ins = (eps_u.clone(), eps_c.clone(), w.clone() if torch.is_tensor(w) else w)
        got = call(name, guided_eps, *ins, what="guided_eps(eps_uncond, eps_cond, w)", bans=BANS[name])
        if not (torch.equal(ins[0], eps_u) and torch.equal(ins[1], eps_c)):
            fail(name, case + ": the inputs must not change", "eps_uncond and eps_cond as they were",
                 "they were changed in place", "build a new tensor; avoid in-place operations such as add_ or +=")
        ref = _guided(eps_u, eps_c, w)
        scalar_w = w if not torch.is_tensor(w) else w.reshape(-1)[0].item()
        hint = diagnose(got, [
            (eps_c + scalar_w * (eps_u - eps_c), "the roles are swapped: start from the unconditional "
             "prediction and move by w towards (and past) the conditional one"),
            ((1 + scalar_w) * eps_c - scalar_w * eps_u, "this is the paper's (1 + w) form; in this course w = 1 "
             "means plain conditional, so the formula is eps_uncond + w (eps_cond - eps_uncond)"),
            (eps_c, "w is ignored: the result must change with the guidance scale"),
            (scalar_w * eps_c, "the unconditional prediction is missing: at w = 0 the answer is eps_uncond"),
            (eps_u + scalar_w * (eps_c - eps_u),
             "one scale per example: w[b] goes with example b (reshape w to (B, 1, 1, 1) to broadcast)"),
        ], "guidance moves from eps_uncond towards eps_cond by w times their difference "
           "(Ho and Salimans, 2022, eq. 6)", right=ref)
        expect_close(name, case, got, ref, atol=1e-5, hint=hint, what="the guided noise")
    passed(name, "w = 0 unconditional, w = 1 conditional, extrapolation, per-example scales, on 8 cases")


# ---------------------------------------------------------------------------------------
# check_drop_condition
# ---------------------------------------------------------------------------------------
def _drop(name, drop_condition, y, p, null, seed, what):
    y_in = y.clone()
    got = call(name, drop_condition, y_in, p, null, _gen(seed),
               what="drop_condition(y, p_uncond, null_class, generator)", bans=BANS[name])
    got = as_tensor(name, got, "the labels", shape=tuple(y.shape))
    if not torch.equal(y_in, y):
        fail(name, what + ": y must not change", f"y as it was: {y[:8].tolist()} ...",
             f"{y_in[:8].tolist()} ...", "return a new tensor (torch.where, or y.clone() first); "
             "the caller's labels are needed again in the next epoch")
    if got.is_floating_point() or got.dtype == torch.bool:
        fail(name, what, "int64 labels", f"dtype {got.dtype}", "return labels, the same dtype as y")
    return got


def check_drop_condition(drop_condition, seed: int = 0) -> None:
    """``drop_condition(y, p_uncond, null_class, generator)``: each label -> null with probability p_uncond."""
    name = "check_drop_condition"
    require_callable(name, drop_condition, "drop_condition", n_args=4)
    g = _gen(seed)
    y = torch.randint(0, 10, (64,), generator=g)
    got = _drop(name, drop_condition, y, 0.0, 10, seed, "p_uncond = 0")
    if not torch.equal(got, y):
        fail(name, "p_uncond = 0 keeps every label", y[:10], got[:10],
             "with p_uncond = 0 no label is dropped: drop where the uniform number is *below* p_uncond")
    got = _drop(name, drop_condition, y, 1.0, 10, seed, "p_uncond = 1")
    if not (got == 10).all():
        fail(name, "p_uncond = 1 drops every label (null_class = 10)", "all 10", got[:10],
             "every label becomes null_class when p_uncond = 1")
    # the share, the null value and the kept labels, on a large batch
    for p, null, n_classes in [(0.1, 10, 10), (0.3, 3, 3), (0.75, 7, 7)]:
        big = torch.randint(0, n_classes, (20_000,), generator=g)
        what = f"20,000 labels in 0..{n_classes - 1}, p_uncond = {p}, null_class = {null}"
        got = _drop(name, drop_condition, big, p, null, seed + 1, what)
        changed = got != big
        if not torch.equal(got[changed], torch.full_like(got[changed], null)):
            bad = got[changed & (got != null)][:5].tolist()
            fail(name, what + ": a dropped label becomes null_class", f"only the value {null}",
                 f"also {bad}", "replace a dropped label by null_class (one past the last real class), "
                 "not by 0 or a random class")
        share = (got == null).double().mean().item()
        if abs(share - p) > 0.02:
            hint = ("about 1 - p_uncond were dropped: drop where the uniform number is below p_uncond"
                    if abs(share - (1 - p)) < 0.02 else
                    "all or nothing: draw one uniform number per example, not one for the whole batch"
                    if share in (0.0, 1.0) else "each label is dropped with probability p_uncond")
            fail(name, what + ": the share of labels dropped", f"about {p} (within 0.02)", f"{share:.4f}", hint)
    # independence per example: batches of 8 at p = 0.5 are almost never all-or-nothing
    small = torch.randint(0, 10, (8,), generator=g)
    all_or_none = 0
    for k in range(200):
        got = _drop(name, drop_condition, small, 0.5, 10, seed * 1000 + k, "batches of 8, p_uncond = 0.5")
        n = int((got == 10).sum())
        all_or_none += n in (0, 8)
    if all_or_none > 20:                                   # expected 0.8% of 200, i.e. about 2
        fail(name, "200 batches of 8 labels, p_uncond = 0.5: batches with all or none dropped",
             "about 2 of 200 (each label dropped independently)", f"{all_or_none} of 200",
             "draw one uniform number per example, not one for the whole batch")
    # the draws come from the generator: the same seed gives the same result, another seed another
    a = _drop(name, drop_condition, y, 0.5, 10, 123, "generator seeded 123")
    b = _drop(name, drop_condition, y, 0.5, 10, 123, "generator seeded 123 again")
    labels = torch.randint(0, 10, (256,), generator=g)
    c = _drop(name, drop_condition, labels, 0.5, 10, 7, "generator seeded 7")
    d = _drop(name, drop_condition, labels, 0.5, 10, 8, "generator seeded 8")
    if not torch.equal(a, b) or torch.equal(c == 10, d == 10):
        fail(name, "two calls with generators seeded alike", "the same labels dropped (and other ones for "
             "another seed)", "different results" if not torch.equal(a, b) else "the same mask for two seeds",
             "draw the uniform numbers from the generator you are given (torch.rand(..., generator=generator)), "
             "not from the global random stream")
    passed(name, "p_uncond = 0 and 1, the share dropped, the null value, independent draws from the generator")


# ---------------------------------------------------------------------------------------
# check_guided_ddim_step
# ---------------------------------------------------------------------------------------
class _ToyModel:
    """A stand-in noise predictor eps(xt, t, y): depends on all three, differently per class."""

    def __init__(self, g: torch.Generator, n_classes: int, C: int):
        self.scale = 0.5 + torch.rand(C, generator=g)                         # (C,)
        self.class_shift = torch.randn(n_classes + 1, C, generator=g)         # (K+1, C); last: null
        self.calls = []

    def __call__(self, xt, t, y):
        B, C = xt.shape[:2]
        t = torch.as_tensor(t).reshape(-1).expand(B).double()                 # (B,)
        y = torch.as_tensor(y).reshape(-1).expand(B).long()                   # (B,)
        self.calls.append(y.tolist())
        shift = self.class_shift[y].double()                                  # (B, C)
        out = torch.tanh(self.scale.double()[:, None, None] * xt.double()
                         + shift[:, :, None, None] + 0.01 * t[:, None, None, None])
        return out.to(xt.dtype)                                               # (B, C, H, W)


def _cosine_abar(T: int) -> torch.Tensor:
    s = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((s + 0.008) / 1.008 * torch.pi / 2) ** 2
    return (f[1:] / f[0]).float()                                             # (T,)


def check_guided_ddim_step(guided_ddim_step, seed: int = 0) -> None:
    """``guided_ddim_step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class)``: one eta = 0 DDIM step."""
    name = "check_guided_ddim_step"
    require_callable(name, guided_ddim_step, "guided_ddim_step", n_args=8)
    g = _gen(seed)
    abar50, abar_lin = _cosine_abar(50), torch.cumprod(1 - torch.linspace(1e-3, 0.2, 20), 0)
    cases = [("t = 40 -> 30, w = 2, 4 grey 8x8 images, 10 classes", 4, 1, 8, 10, 40, 30, 2.0, abar50),
             ("t = 40 -> 30, w = 0 (unconditional)", 4, 1, 8, 10, 40, 30, 0.0, abar50),
             ("t = 40 -> 30, w = 1 (conditional)", 4, 1, 8, 10, 40, 30, 1.0, abar50),
             ("t = 49 -> 24, w = 3, colour 4x4, 3 classes", 3, 3, 4, 3, 49, 24, 3.0, abar50),
             ("the last step, t = 4 -> -1 (the clean image), w = 2", 5, 1, 8, 10, 4, -1, 2.0, abar50),
             ("t = 2 -> 0 on a steep linear schedule, w = 5 (x0 must be clipped)", 6, 1, 4, 5, 2, 0, 5.0, abar_lin),
             ("t = 19 -> 9 on another schedule, w = 1.5", 2, 1, 8, 4, 19, 9, 1.5, abar_lin)]
    for case, B, C, H, K, t, t_prev, w, abar in cases:
        model = _ToyModel(g, K, C)
        xt = 1.5 * torch.randn(B, C, H, H, generator=g)
        y = torch.randint(0, K, (B,), generator=g)
        what = f"{case}, labels {y.tolist()}, null_class = {K}"
        got = call(name, guided_ddim_step, model, xt.clone(), t, t_prev, y.clone(), w, abar.clone(), K,
                   what="guided_ddim_step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class)",
                   bans=BANS[name])
        got = as_tensor(name, got, "x at t_prev", shape=(B, C, H, H), dtype_float=True)
        ref = _ddim_guided(model, xt, t, t_prev, y, w, abar, K)
        if not matches(got, ref, atol=1e-4):
            hint = diagnose(got, [
                (_ddim_guided(model, xt, t, t_prev, y, 1.0, abar, K),
                 "this ignores w: use the guided noise eps_uncond + w (eps_cond - eps_uncond) in the step"),
                (_ddim_guided(model, xt, t, t_prev, torch.full_like(y, K), w, abar, K),
                 "the conditional prediction must use the requested labels y"),
                (_ddim_guided(model, xt, t, t_prev, y, 1 - w, abar, K),
                 "the roles are swapped: start from the unconditional prediction (label null_class)"),
                (_no_clip(model, xt, t, t_prev, y, w, abar, K),
                 "clip the predicted x0 to [-1, 1] before the step, as the lesson's sampler does"),
                (_wrong_last(model, xt, t, t_prev, y, w, abar, K),
                 "at the last step (t_prev = -1) abar_prev is 1, the clean image; alphas_cumprod[-1] is "
                 "the noisiest step, not 'before the first'"),
                (_null_zero(model, xt, t, t_prev, y, w, abar, K),
                 "the unconditional prediction uses the label null_class, not 0"),
            ], "predict eps with and without the label, mix them with w, then x0 = (xt - sqrt(1 - abar_t) eps) "
               "/ sqrt(abar_t) clipped to [-1, 1], and x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps "
               "(DDIM eq. 12 with eta = 0)", right=ref)
            expect_close(name, what, got, ref, atol=1e-4, hint=hint, what="x at t_prev")
    passed(name, "guided eps, clipped x0 and the DDIM update agree with the reference on 7 steps")


def _no_clip(model, xt, t, t_prev, y, w, abar, K):
    B = xt.shape[0]
    e_u, e_c = model(xt, t, torch.full((B,), K)).double(), model(xt, t, y).double()
    eps = e_u + w * (e_c - e_u)
    a_t = abar[t].double()
    a_prev = abar[t_prev].double() if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = (xt.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def _wrong_last(model, xt, t, t_prev, y, w, abar, K):
    B = xt.shape[0]
    e_u, e_c = model(xt, t, torch.full((B,), K)).double(), model(xt, t, y).double()
    eps = e_u + w * (e_c - e_u)
    a_t, a_prev = abar[t].double(), abar[t_prev].double()
    x0 = ((xt.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def _null_zero(model, xt, t, t_prev, y, w, abar, K):
    return _ddim_guided(_Relabel(model, K), xt, t, t_prev, y, w, abar, K)


class _Relabel:
    """The toy model with the null label read as class 0 (the mistake of using 0 for 'no label')."""

    def __init__(self, model, null):
        self.model, self.null = model, null

    def __call__(self, xt, t, y):
        y = torch.as_tensor(y).reshape(-1).expand(xt.shape[0])
        return self.model(xt, t, torch.where(y == self.null, torch.zeros_like(y), y))
