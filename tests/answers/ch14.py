"""Chapter 14's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import torch

import coursekit.models.cond_diffusion as CD
import coursekit.models.diffusion as D
from answers import Case

# --- right answers (another coding than the checks' references) ---------------------------


def guided_eps(eps_uncond, eps_cond, w):
    w = torch.as_tensor(w, dtype=eps_cond.dtype)
    w = w.view(-1, *([1] * (eps_cond.dim() - 1))) if w.dim() == 1 else w        # (B, 1, 1, 1)
    return eps_uncond + w * (eps_cond - eps_uncond)


def guided_eps_mix(eps_uncond, eps_cond, w):          # (1 - w) eps_u + w eps_c, the same line
    if torch.is_tensor(w) and w.dim() == 1:
        w = w[:, None, None, None]
    return (1 - w) * eps_uncond + w * eps_cond


def drop_condition(y, p_uncond, null_class, generator):
    u = torch.rand(len(y), generator=generator)
    out = y.clone()
    out[u < p_uncond] = null_class
    return out


def drop_condition_bernoulli(y, p_uncond, null_class, generator):
    dropped = torch.bernoulli(torch.full(y.shape, float(p_uncond)), generator=generator).bool()
    return y.masked_fill(dropped, null_class)


def guided_ddim_step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class):
    B = len(xt)
    ts = torch.full((2 * B,), t)
    both = model(torch.cat([xt, xt]), ts, torch.cat([torch.full_like(y, null_class), y]))
    eps_u, eps_c = both.chunk(2)
    eps = eps_u + w * (eps_c - eps_u)
    a = alphas_cumprod[t]
    a_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = torch.clamp((xt - torch.sqrt(1 - a) * eps) / torch.sqrt(a), -1, 1)
    return torch.sqrt(a_prev) * x0 + torch.sqrt(1 - a_prev) * eps


RIGHT = [
    Case("check_guided_eps", guided_eps, why="view and broadcast"),
    Case("check_guided_eps", guided_eps_mix, why="convex mix", kwargs={"seed": 4}),
    Case("check_drop_condition", drop_condition, why="masked assignment on a clone"),
    Case("check_drop_condition", drop_condition_bernoulli, why="bernoulli mask", kwargs={"seed": 3}),
    Case("check_guided_ddim_step", guided_ddim_step, why="one batched model call"),
    Case("check_guided_ddim_step", guided_ddim_step, why="another seed", kwargs={"seed": 6}),
]


# --- wrong answers --------------------------------------------------------------------------

def _swapped(eps_uncond, eps_cond, w):
    return guided_eps(eps_cond, eps_uncond, w)


def _paper_form(eps_uncond, eps_cond, w):
    return guided_eps(eps_uncond, eps_cond, 1 + torch.as_tensor(w))


def _in_place(eps_uncond, eps_cond, w):
    w = torch.as_tensor(w)
    w = w.view(-1, 1, 1, 1) if w.dim() == 1 else w
    return eps_uncond.add_(w * (eps_cond - eps_uncond))


def _scalar_only(eps_uncond, eps_cond, w):              # broadcasts a (B,) w against the last axis
    return eps_uncond + w * (eps_cond - eps_uncond)


def _lerp(eps_uncond, eps_cond, w):
    return torch.lerp(eps_uncond, eps_cond, w if not torch.is_tensor(w) else w.view(-1, 1, 1, 1))


_package_guided = CD.guided_eps


def _one_draw(y, p_uncond, null_class, generator):      # the whole batch dropped or kept together
    return torch.full_like(y, null_class) if torch.rand(1, generator=generator) < p_uncond else y.clone()


def _above(y, p_uncond, null_class, generator):
    u = torch.rand(len(y), generator=generator)
    return torch.where(u > p_uncond, torch.full_like(y, null_class), y)


def _null_zero(y, p_uncond, null_class, generator):
    u = torch.rand(len(y), generator=generator)
    return torch.where(u < p_uncond, torch.zeros_like(y), y)


def _modifies_y(y, p_uncond, null_class, generator):
    y[torch.rand(len(y), generator=generator) < p_uncond] = null_class
    return y


def _global_stream(y, p_uncond, null_class, generator):
    return torch.where(torch.rand(len(y)) < p_uncond, torch.full_like(y, null_class), y)


def _float_labels(y, p_uncond, null_class, generator):
    return drop_condition(y, p_uncond, null_class, generator).float()


def _random_class(y, p_uncond, null_class, generator):
    u = torch.rand(len(y), generator=generator)
    return torch.where(u < p_uncond, torch.randint(0, null_class, y.shape, generator=generator), y)


def _step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class, *, clip=True, last=True, guided=True,
          null=None):
    B = len(xt)
    eps_u = model(xt, torch.full((B,), t), torch.full_like(y, null_class if null is None else null))
    eps_c = model(xt, torch.full((B,), t), y)
    eps = eps_u + w * (eps_c - eps_u) if guided else eps_c
    a = alphas_cumprod[t]
    a_prev = alphas_cumprod[t_prev] if (t_prev >= 0 or not last) else torch.tensor(1.0)
    x0 = (xt - (1 - a).sqrt() * eps) / a.sqrt()
    x0 = x0.clamp(-1, 1) if clip else x0
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def _package_step(model, xt, t, t_prev, y, w, alphas_cumprod, null_class):
    e_u, e_c = model(xt, t, torch.full_like(y, null_class)), model(xt, t, y)
    return D.ddim_step(e_u + w * (e_c - e_u), t, t_prev, xt, alphas_cumprod)


_cd_step = CD.guided_ddim_step


WRONG = [
    # guided_eps
    Case("check_guided_eps", _swapped, "roles are swapped", "swapped"),
    Case("check_guided_eps", _paper_form, "(1 + w) form", "paper's convention"),
    Case("check_guided_eps", lambda u, c, w: c.clone(), "w is ignored", "conditional only"),
    Case("check_guided_eps", lambda u, c, w: guided_eps(torch.zeros_like(u), c, w), "unconditional prediction is "
         "missing", "w times eps_cond"),
    Case("check_guided_eps", _in_place, "must not change", "in place"),
    Case("check_guided_eps", _scalar_only, "raised", "per-example w not reshaped"),
    Case("check_guided_eps", _lerp, "torch.lerp", "torch.lerp"),
    Case("check_guided_eps", lambda u, c, w: _package_guided(u, c, w), "coursekit.models.cond_diffusion.guided_eps",
         "alias of the package's"),
    Case("check_guided_eps", lambda u, c, w: getattr(CD, "guided" + "_eps")(u, c, w), "guided_eps",
         "getattr package"),
    # drop_condition
    Case("check_drop_condition", _one_draw, "one uniform number per example", "one draw per batch"),
    Case("check_drop_condition", _above, "below", "u > p"),
    Case("check_drop_condition", _null_zero, "null_class", "null is 0"),
    Case("check_drop_condition", _random_class, "null_class", "random class"),
    Case("check_drop_condition", _modifies_y, "y must not change", "modifies y"),
    Case("check_drop_condition", _global_stream, "generator you are given", "global stream"),
    Case("check_drop_condition", _float_labels, "int64 labels", "float labels"),
    Case("check_drop_condition", lambda y, p, n, g: CD.drop_condition(y, p, n, g),
         "coursekit.models.cond_diffusion.drop_condition", "the package's"),
    # guided_ddim_step
    Case("check_guided_ddim_step", lambda *a: _step(*a, guided=False), "ignores w", "conditional eps only"),
    Case("check_guided_ddim_step", lambda *a: _step(*a, clip=False), "clip the predicted x0", "no clipping"),
    Case("check_guided_ddim_step", lambda *a: _step(*a, last=False), "alphas_cumprod[-1]", "last step abar[-1]"),
    Case("check_guided_ddim_step", lambda *a: _step(*a, null=0), "not 0", "null is class 0"),
    Case("check_guided_ddim_step", _package_step, "coursekit.models.diffusion.ddim_step", "the package's ddim_step"),
    Case("check_guided_ddim_step", lambda *a: _cd_step(*a), "guided_ddim_step", "alias of the package's step"),
]
