"""Answer table of chapter 12 (latent space): right answers written without coursekit's
references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import torch

from answers import Case
from coursekit import latent as L

# -- 1. slerp --------------------------------------------------------------------------------


def slerp_right(z0, z1, t):               # via the unit vectors and a tangent direction
    n0, n1 = z0.norm(dim=1, keepdim=True), z1.norm(dim=1, keepdim=True)
    u0, u1 = z0 / n0, z1 / n1
    cos = (u0 * u1).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)
    s = torch.sin(omega)
    ok = s > 1e-3
    s = torch.where(ok, s, torch.ones_like(s))
    t = t.view(-1, 1, 1)
    arc = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / s
    line = z0 + t * (z1 - z0)
    return torch.where(ok, arc, line)


def _omega(z0, z1):
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    return torch.arccos(cos.clamp(-1, 1))


def slerp_as_lerp(z0, z1, t):
    t = t.view(-1, 1, 1)
    return (1 - t) * z0 + t * z1


def slerp_no_fallback(z0, z1, t):
    om, t = _omega(z0, z1), t.view(-1, 1, 1)
    return (torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / torch.sin(om)


def slerp_unnormalised(z0, z1, t):
    om = torch.arccos((z0 * z1).sum(-1, keepdim=True).clamp(-1, 1))
    t = t.view(-1, 1, 1)
    s = torch.sin(om)
    return torch.where(s > 1e-6, (torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / s,
                       (1 - t) * z0 + t * z1)


def slerp_swapped(z0, z1, t):
    om, t = _omega(z0, z1), t.view(-1, 1, 1)
    s = torch.sin(om)
    return torch.where(s > 1e-6, (torch.sin(t * om) * z0 + torch.sin((1 - t) * om) * z1) / s,
                       (1 - t) * z0 + t * z1)


def slerp_one_angle(z0, z1, t):
    om = torch.arccos(((z0 * z1).sum() / (z0.norm() * z1.norm())).clamp(-1, 1))
    t = t.view(-1, 1, 1)
    return (torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / torch.sin(om).clamp_min(1e-6)


def slerp_package(z0, z1, t):
    return L.slerp(z0, z1, t)


_sl = L.slerp


def slerp_alias(z0, z1, t):
    return _sl(z0, z1, t)


def slerp_getattr(z0, z1, t):
    return getattr(L, "sl" + "erp")(z0, z1, t)


# -- 2. spearman -----------------------------------------------------------------------------


def _avg_ranks(x):                         # sort, then average the positions of each tied run
    vals, order = torch.sort(x.double())
    pos = torch.arange(1, len(x) + 1, dtype=torch.float64)
    r = pos.clone()
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and vals[j + 1] == vals[i]:
            j += 1
        r[i:j + 1] = pos[i:j + 1].mean()
        i = j + 1
    out = torch.empty(len(x), dtype=torch.float64)
    out[order] = r
    return out


def _corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1]


def spearman_right(x, y):
    return _corr(_avg_ranks(x), _avg_ranks(y))


def _ordinal(x):
    return torch.argsort(torch.argsort(x)).double()


def spearman_ordinal(x, y):               # ties broken by position
    return _corr(_ordinal(x), _ordinal(y))


def spearman_pearson(x, y):
    return _corr(x.double(), y.double())


def spearman_argsort_once(x, y):
    return _corr(torch.argsort(x).double(), torch.argsort(y).double())


def spearman_scipy(x, y):
    import scipy.stats
    return float(scipy.stats.spearmanr(x.numpy(), y.numpy())[0])


def spearman_rankdata(x, y):
    from scipy.stats import rankdata
    return _corr(torch.tensor(rankdata(x.numpy())), torch.tensor(rankdata(y.numpy())))


def spearman_package(x, y):
    return L.spearman(x, y)


def spearman_ranks_getattr(x, y):
    rank = getattr(L, "ra" + "nks")
    return _corr(rank(x), rank(y))


# -- 3. attribute_direction -------------------------------------------------------------------


def _fit(z, a):                            # centre, then least squares without intercept
    zc, ac = z - z.mean(0), a - a.mean()
    return torch.linalg.lstsq(zc.double(), ac.double().unsqueeze(1)).solution[:, 0]


def direction_right(z, a, b):
    wa, wb = _fit(z, a), _fit(z, b)
    ub = wb / wb.norm()
    w = wa - (wa @ ub) * ub
    return (w / w.norm()).float()


def direction_no_orth(z, a, b):
    w = _fit(z, a)
    return (w / w.norm()).float()


def direction_no_intercept(z, a, b):
    wa = torch.linalg.lstsq(z.double(), a.double().unsqueeze(1)).solution[:, 0]
    wb = torch.linalg.lstsq(z.double(), b.double().unsqueeze(1)).solution[:, 0]
    ub = wb / wb.norm()
    w = wa - (wa @ ub) * ub
    return w / w.norm()


def direction_not_unit(z, a, b):
    wa, wb = _fit(z, a), _fit(z, b)
    ub = wb / wb.norm()
    return wa - (wa @ ub) * ub


def direction_flipped(z, a, b):
    return -direction_right(z, a, b)


def direction_package(z, a, b):
    return L.orthogonalise(L.regression_direction(z, a), L.regression_direction(z, b))


def direction_sklearn(z, a, b):
    from sklearn.linear_model import LinearRegression
    wa = torch.tensor(LinearRegression().fit(z.numpy(), a.numpy()).coef_)
    wb = torch.tensor(LinearRegression().fit(z.numpy(), b.numpy()).coef_)
    ub = wb / wb.norm()
    w = wa - (wa @ ub) * ub
    return w / w.norm()


def direction_mean_difference(z, a, b):
    return L.mean_difference_direction(z, a)


_orth = getattr(L, "ortho" + "gonalise")


def direction_orth_alias(z, a, b):
    return _orth(_fit(z, a), _fit(z, b)).float()


# -- 4. lerp_steps -----------------------------------------------------------------------------


def steps_right(decode, z0, z1, n):
    t = torch.linspace(0, 1, n)
    pts = torch.stack([z0 + ti * (z1 - z0) for ti in t])          # (n, B, d)
    x = decode(pts.flatten(0, 1)).reshape(n, z0.shape[0], -1)
    return torch.sqrt(((x[1:] - x[:-1]) ** 2).sum(-1))


def _images(decode, pts, n, B):
    return decode(pts.flatten(0, 1)).reshape(n, B, -1)


def steps_squared(decode, z0, z1, n):
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = _images(decode, (1 - t) * z0 + t * z1, n, len(z0))
    return ((x[1:] - x[:-1]) ** 2).sum(-1)


def steps_short(decode, z0, z1, n):        # t = 0, 1/n, ..., (n-1)/n: never reaches z1
    t = (torch.arange(n) / n).view(-1, 1, 1)
    x = _images(decode, (1 - t) * z0 + t * z1, n, len(z0))
    return (x[1:] - x[:-1]).norm(dim=-1)


def steps_pixel_mean(decode, z0, z1, n):
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = _images(decode, (1 - t) * z0 + t * z1, n, len(z0))
    return (x[1:] - x[:-1]).pow(2).mean(-1).sqrt()


def steps_3d_decode(decode, z0, z1, n):    # hands decode a (n, B, d) tensor
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = decode((1 - t) * z0 + t * z1).reshape(n, len(z0), -1)
    return (x[1:] - x[:-1]).norm(dim=-1)


def steps_torch_lerp(decode, z0, z1, n):
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = _images(decode, torch.lerp(z0.expand(n, -1, -1), z1.expand(n, -1, -1), t), n, len(z0))
    return (x[1:] - x[:-1]).norm(dim=-1)


def steps_method_lerp(decode, z0, z1, n):
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = _images(decode, z0.expand(n, -1, -1).lerp(z1.expand(n, -1, -1), t), n, len(z0))
    return (x[1:] - x[:-1]).norm(dim=-1)


_lerp = getattr(torch, "le" + "rp")


def steps_lerp_alias(decode, z0, z1, n):
    t = torch.linspace(0, 1, n).view(-1, 1, 1)
    x = _images(decode, _lerp(z0.expand(n, -1, -1), z1.expand(n, -1, -1), t), n, len(z0))
    return (x[1:] - x[:-1]).norm(dim=-1)


def steps_package(decode, z0, z1, n):
    return L.path_smoothness(decode, L.path(z0, z1, n, "lerp"))


C = Case
RIGHT = [
    C("check_slerp", slerp_right, why="tangent form"),
    C("check_slerp", slerp_right, why="seed 9", kwargs={"seed": 9}),
    C("check_spearman", spearman_right, why="tied runs averaged"),
    C("check_spearman", spearman_right, why="seed 5", kwargs={"seed": 5}),
    C("check_attribute_direction", direction_right, why="centred lstsq"),
    C("check_attribute_direction", direction_right, why="seed 3", kwargs={"seed": 3}),
    C("check_lerp_steps", steps_right, why="stacked points"),
    C("check_lerp_steps", steps_right, why="seed 7", kwargs={"seed": 7}),
]

WRONG = [
    C("check_slerp", slerp_as_lerp, "straight line", "lerp"),
    C("check_slerp", slerp_no_fallback, "NaN", "no parallel fallback"),
    C("check_slerp", slerp_unnormalised, "unit vectors", "angle of raw dot product"),
    C("check_slerp", slerp_swapped, "swapped", "weights swapped"),
    C("check_slerp", slerp_one_angle, "one angle", "one angle for the batch"),
    C("check_slerp", lambda z0, z1, t: slerp_right(z0, z1, t)[-1], "wrong shape", "last point only"),
    C("check_slerp", slerp_package, "coursekit.latent.slerp", "package"),
    C("check_slerp", slerp_alias, "coursekit.latent.slerp", "package alias"),
    C("check_slerp", slerp_getattr, "coursekit.latent.slerp", "package by getattr"),
    C("check_spearman", spearman_ordinal, "mean of the ranks", "ordinal ranks"),
    C("check_spearman", spearman_pearson, "Pearson", "values not ranks"),
    C("check_spearman", spearman_argsort_once, "rank", "argsort once"),
    C("check_spearman", lambda x, y: _avg_ranks(x), "one number", "returns ranks"),
    C("check_spearman", spearman_scipy, "scipy.stats.spearmanr", "scipy"),
    C("check_spearman", spearman_rankdata, "scipy.stats.spearmanr", "scipy rankdata"),
    C("check_spearman", spearman_package, "coursekit.latent.spearman", "package"),
    C("check_spearman", spearman_ranks_getattr, "coursekit.latent.spearman", "ranks by getattr"),
    C("check_attribute_direction", direction_no_orth, "not orthogonal", "no orthogonalisation"),
    C("check_attribute_direction", direction_no_intercept, "intercept", "no intercept"),
    C("check_attribute_direction", direction_not_unit, "unit vector", "not normalised"),
    C("check_attribute_direction", direction_flipped, "sign", "sign flipped"),
    C("check_attribute_direction", direction_package, "coursekit.latent.regression_direction",
      "package"),
    C("check_attribute_direction", direction_orth_alias, "coursekit.latent.regression_direction",
      "orthogonalise alias"),
    C("check_attribute_direction", direction_mean_difference,
      "coursekit.latent.regression_direction", "package mean difference"),
    C("check_attribute_direction", direction_sklearn, "sklearn.linear_model.LinearRegression",
      "sklearn"),
    C("check_lerp_steps", steps_squared, "squared", "squared distances"),
    C("check_lerp_steps", steps_short, "end at z1", "t never reaches 1"),
    C("check_lerp_steps", steps_pixel_mean, "averaged over the pixels", "pixel mean"),
    C("check_lerp_steps", steps_3d_decode, "decode takes a batch", "3-D codes to decode"),
    C("check_lerp_steps", steps_torch_lerp, "torch.lerp", "torch.lerp"),
    C("check_lerp_steps", steps_method_lerp, "torch.lerp", "Tensor.lerp"),
    C("check_lerp_steps", steps_lerp_alias, "torch.lerp", "torch.lerp alias"),
    C("check_lerp_steps", steps_package, "path_smoothness", "package"),
]
