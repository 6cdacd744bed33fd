"""Chapter 07's answer table: right answers written apart from the checks' references,
and the typical mistakes and dodges each check must refuse (see answers/__init__.py)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from answers import Case
from coursekit.models import diffusion as D

# --- right answers (another coding than the checks' references) ---------------------------


def alphas_cumprod(betas):
    return torch.exp(torch.cumsum(torch.log1p(-betas.double()), 0)).float()


def q_sample(x0, t, alphas_cumprod, eps):
    abar = alphas_cumprod[t][:, None, None, None]
    return torch.addcmul((1 - abar).sqrt() * eps, abar.sqrt(), x0)


def diffusion_loss(model, x0, t, eps, alphas_cumprod):
    xt = q_sample(x0, t, alphas_cumprod, eps)
    return ((model(xt, t) - eps) ** 2).mean()


def ddpm_step(eps, t, xt, betas, z):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    abar_prev = abar[t - 1] if t > 0 else torch.tensor(1.0)
    x0 = (xt - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()                    # eq. 15
    mean = (abar_prev.sqrt() * betas[t] * x0 + alphas[t].sqrt() * (1 - abar_prev) * xt) / (1 - abar[t])  # eq. 7
    if t == 0:
        return mean
    return mean + ((1 - abar_prev) / (1 - abar[t]) * betas[t]).sqrt() * z


def ddim_step(eps, t, t_prev, xt, alphas_cumprod):
    a_t = alphas_cumprod[t]
    a_p = alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones(())
    # eq. 12 written as one linear map of xt and eps
    return (a_p / a_t).sqrt() * xt + ((1 - a_p).sqrt() - (a_p * (1 - a_t) / a_t).sqrt()) * eps


RIGHT = [
    Case("check_alphas_cumprod", alphas_cumprod, why="log-sum"),
    Case("check_alphas_cumprod", alphas_cumprod, why="another seed", kwargs={"seed": 4}),
    Case("check_q_sample", q_sample, why="broadcast by indexing"),
    Case("check_q_sample", q_sample, why="another seed", kwargs={"seed": 2}),
    Case("check_diffusion_loss", diffusion_loss, why="mean of squares"),
    Case("check_diffusion_loss", diffusion_loss, why="another seed", kwargs={"seed": 3}),
    Case("check_ddpm_step", ddpm_step, why="posterior mean of eq. 7"),
    Case("check_ddpm_step", ddpm_step, why="another seed", kwargs={"seed": 8}),
    Case("check_ddim_step", ddim_step, why="linear in xt and eps"),
    Case("check_ddim_step", ddim_step, why="another seed", kwargs={"seed": 6}),
]


# --- wrong answers --------------------------------------------------------------------------

def _ac_from_betas(betas):
    return torch.cumprod(1 - betas, 0)


def _ddpm(eps, t, xt, betas, z):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    mean = (xt - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
    if t == 0:
        return mean
    return mean + ((1 - abar[t - 1]) / (1 - abar[t]) * betas[t]).sqrt() * z


def _ddim(eps, t, t_prev, xt, ac):
    a_p = ac[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = (xt - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
    return a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps


_COSINE = D.alphas_cumprod_from_betas(D.cosine_betas(100))
_cumprod_alias = D.alphas_cumprod_from_betas


def _ddpm_clipped(eps, t, xt, betas, z):             # the lesson's step clips the predicted x0
    b = betas.double()
    ac = torch.cumprod(1 - b, 0)
    ac_prev = ac[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = ((xt.double() - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()).clamp(-1, 1)
    mean = (ac_prev.sqrt() * b[t] * x0 + (1 - b[t]).sqrt() * (1 - ac_prev) * xt) / (1 - ac[t])
    return (mean + ((1 - ac_prev) / (1 - ac[t]) * b[t]).sqrt() * z if t > 0 else mean).float()


def _ddim_clipped(eps, t, t_prev, xt, alphas_cumprod):
    a_t = alphas_cumprod[t]
    a_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = ((xt - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def _own_noise_loss(m, x0, t, eps, ac):
    return F.mse_loss(m(D.q_sample(x0, t, ac), t), eps)


WRONG = [
    # alphas_cumprod
    Case("check_alphas_cumprod", lambda b: torch.cumprod(b, 0), "running product of the betas", "product of betas"),
    Case("check_alphas_cumprod", lambda b: 1 - b, "alphas of single steps", "no product"),
    Case("check_alphas_cumprod", lambda b: torch.cat([torch.ones(1), torch.cumprod(1 - b, 0)[:-1]]),
         "off by one", "shifted"),
    Case("check_alphas_cumprod", lambda b: 1 - torch.cumsum(b, 0), "running product", "cumsum"),
    Case("check_alphas_cumprod", lambda b: torch.cumprod(1 - b, 0).tolist(), "should be a torch.Tensor", "list"),
    Case("check_alphas_cumprod", lambda b: D.alphas_cumprod_from_betas(b), "alphas_cumprod_from_betas",
         "coursekit's function"),
    Case("check_alphas_cumprod", lambda b: _cumprod_alias(b), "alphas_cumprod_from_betas", "alias"),
    Case("check_alphas_cumprod", lambda b: D.NoiseSchedule(b).alphas_cumprod, "NoiseSchedule", "NoiseSchedule"),
    # q_sample
    Case("check_q_sample", lambda x0, t, ac, eps: ac[t].view(-1, 1, 1, 1) * x0 + (1 - ac[t].view(-1, 1, 1, 1)) * eps,
         "take square roots", "no square roots"),
    Case("check_q_sample", lambda x0, t, ac, eps: ac[t[0]].sqrt() * x0 + (1 - ac[t[0]]).sqrt() * eps,
         "its own t", "first t for all"),
    Case("check_q_sample", lambda x0, t, ac, eps: (1 - ac[t].view(-1, 1, 1, 1)).sqrt() * x0
         + ac[t].view(-1, 1, 1, 1).sqrt() * eps, "reshaped to", "weights swapped"),
    Case("check_q_sample", lambda x0, t, ac, eps: ac[t].sqrt() * x0 + (1 - ac[t]).sqrt() * eps,
         "reshape it to (B, 1, 1, 1)", "no reshape"),
    Case("check_q_sample", lambda x0, t, ac, eps: _COSINE[t].view(-1, 1, 1, 1).sqrt() * x0
         + (1 - _COSINE[t].view(-1, 1, 1, 1)).sqrt() * eps, "linear schedule", "schedule ignored"),
    Case("check_q_sample", lambda x0, t, ac, eps: D.q_sample(x0, t, ac, eps), "coursekit.models.diffusion.q_sample",
         "coursekit's q_sample"),
    # diffusion_loss
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: F.mse_loss(m(q_sample(x0, t, ac, eps), t), x0),
         "not the clean image", "target x0"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: F.mse_loss(m(x0, t), eps), "feed the noisy image",
         "model sees x0"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: ((m(q_sample(x0, t, ac, eps), t) - eps) ** 2).sum(),
         "do not sum", "sum"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: F.mse_loss(m(q_sample(x0, t, ac, eps), t), eps).item(),
         "not loss.item()", "item"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: F.mse_loss(m(q_sample(x0, t, ac, eps), t), eps).detach(),
         "autograd can differentiate", "detached"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: F.mse_loss(m(q_sample(x0, t, ac, eps), t * 0), eps),
         "largest difference", "t ignored by the model"),
    Case("check_diffusion_loss", lambda m, x0, t, eps, ac: D.diffusion_loss(m, x0, ac, t, eps),
         "coursekit.models.diffusion.diffusion_loss", "coursekit's loss"),
    Case("check_diffusion_loss", _own_noise_loss, "own q_sample", "coursekit's q_sample, own noise"),
    # ddpm_step
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, b, 0 * z) if t > 0 else _ddpm(eps, t, xt, b, z),
         "no noise was added", "no noise"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, b, z) if t > 0
         else _ddpm(eps, 0, xt, b, z) + b[0].sqrt() * z, "the last step adds no noise", "noise at t = 0"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, b, 0 * z) + (b[t].sqrt() * z if t > 0 else 0),
         "paper's other choice", "sigma^2 = beta"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, b, 0 * z)
         + ((1 - _ac_from_betas(b)[t - 1]) / (1 - _ac_from_betas(b)[t]) * b[t] * z if t > 0 else 0),
         "square root of the variance", "variance not std"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: (xt - b[t] / (1 - _ac_from_betas(b)[t]).sqrt() * eps)
         / _ac_from_betas(b)[t].sqrt(), "mean = (xt - beta_t", "divides by sqrt(abar)"),
    Case("check_ddpm_step", _ddpm_clipped, "eq. 11 without clipping", "lesson's clipped step"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, D.cosine_betas(100).float(), z),
         "linear schedule", "betas ignored"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: D.ddpm_step(eps, t, xt, D.NoiseSchedule(b), z, clip_x0=False),
         "coursekit.models.diffusion.ddpm_step", "coursekit's step"),
    Case("check_ddpm_step", lambda eps, t, xt, b, z: _ddpm(eps, t, xt, b, 0 * z)
         + (D.NoiseSchedule(b).posterior_variance[t].sqrt() * z if t > 0 else 0), "NoiseSchedule",
         "schedule's posterior variance"),
    # ddim_step
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: _ddim(eps, t, tp, xt, ac) if tp >= 0
         else _ddim(eps, t, len(ac) - 1, xt, ac), "LAST entry", "abar[-1] at the end"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: ac[tp].sqrt() * (xt - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
         if tp >= 0 else _ddim(eps, t, tp, xt, ac), "direction term is missing", "no direction"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: _ddim(eps, t, max(tp, 0), xt, ac), "abar_prev",
         "t_prev clamped to 0"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: _ddim(eps, t, t - 1, xt, ac), "largest difference",
         "t_prev ignored"),
    Case("check_ddim_step", _ddim_clipped, "eq. 12 without clipping", "lesson's clipped step"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: _ddim(eps, t, tp, xt, _COSINE), "linear schedule",
         "schedule ignored"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: D.ddim_step(eps, t, tp, xt, ac, clip_x0=False),
         "coursekit.models.diffusion.ddim_step", "coursekit's step"),
    Case("check_ddim_step", lambda eps, t, tp, xt, ac: (ac[tp] if tp >= 0 else torch.tensor(1.0)).sqrt()
         * D.predict_x0(xt, t, eps, ac) + (1 - (ac[tp] if tp >= 0 else torch.tensor(1.0))).sqrt() * eps,
         "predict_x0", "coursekit's predict_x0"),
]
