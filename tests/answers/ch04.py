"""Answer table of chapter 04 (GANs): right answers written without coursekit's
references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import torch
from einops import rearrange
from torch.nn import functional as F

from answers import Case
from coursekit.data import ring_centers
from coursekit.models import gan

# -- losses written independently (log-sigmoid instead of softplus) ------------------------


def d_loss_logsigmoid(real, fake):
    return -(F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean())


def g_loss_logsigmoid(fake):
    return -F.logsigmoid(fake).mean()


def d_loss_swapped(real, fake):
    return F.softplus(real).mean() + F.softplus(-fake).mean()


def d_loss_sum(real, fake):
    return F.softplus(-real).sum() + F.softplus(fake).sum()


def d_loss_real_only(real, fake):
    return F.softplus(-real).mean()


def d_loss_unstable(real, fake):
    return -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())


def d_loss_cat_mean(real, fake):   # one mean over both batches: wrong weights
    return torch.cat([F.softplus(-real), F.softplus(fake)]).mean()


def d_loss_negated(real, fake):
    return -(F.softplus(-real).mean() + F.softplus(fake).mean())


def d_loss_package(real, fake):
    return gan.discriminator_loss(real, fake)


_dl = gan.discriminator_loss


def d_loss_alias(real, fake):
    return _dl(real, fake)


def d_loss_bce(real, fake):
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def d_loss_bce_getattr(real, fake):
    bce = getattr(F, "binary_cross_entropy" + "_with_logits")
    return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))


def g_loss_minimax(fake):
    return -F.softplus(fake).mean()


def g_loss_negated(fake):
    return -F.softplus(-fake).mean()


def g_loss_unstable(fake):
    return -torch.log(torch.sigmoid(fake)).mean()


def g_loss_detached(fake):
    return F.softplus(-fake.detach()).mean()


def g_loss_sum(fake):
    return F.softplus(-fake).sum()


def g_loss_table(fake):
    return gan.GENERATOR_LOSSES["nonsaturating"](fake)


def g_loss_bce(fake):
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


# -- pack ------------------------------------------------------------------------------------


def pack_reshape(x, m):            # a correct answer written differently
    return x.reshape(-1, m * x.shape[1])


def pack_transposed(x, m):
    return rearrange(x, "(m b) d -> b (m d)", m=m)


def pack_interleaved(x, m):
    return rearrange(x, "(b m) d -> b (d m)", m=m)


def pack_not_flat(x, m):
    return rearrange(x, "(b m) d -> b m d", m=m)


def pack_m_fixed(x, m):            # ignores m
    return rearrange(x, "(b m) d -> b (m d)", m=2)


def pack_d_fixed(x, m):            # assumes 2-d points
    return x.reshape(-1, 2 * m)


def pack_alias(x, m, _pack=gan.pack):
    return _pack(x, m)


# -- mode_stats --------------------------------------------------------------------------------


def mode_stats_loops(samples, centres, std):   # independent: explicit distances, one-hot counts
    d2 = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1)      # (N, K)
    nearest = d2.argmin(1)
    good = d2.gather(1, nearest[:, None]).squeeze(1).sqrt() < 3 * std    # (N,)
    counts = torch.zeros(len(centres))
    for k, ok in zip(nearest.tolist(), good.tolist()):
        counts[k] += ok
    covered = sum(1 for c in counts.tolist() if c / len(samples) >= 0.01)
    return covered, sum(good.tolist()) / len(samples)


def _dist(samples, centres):
    return torch.cdist(samples.float(), centres.float()).min(1)


def mode_stats_any_count(samples, centres, std):       # one sample is enough to "cover"
    d, k = _dist(samples, centres)
    good = d < 3 * std
    return int((torch.bincount(k[good], minlength=len(centres)) > 0).sum()), good.float().mean().item()


def mode_stats_one_std(samples, centres, std):
    d, k = _dist(samples, centres)
    good = d < std
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), good.float().mean().item()


def mode_stats_nearest_only(samples, centres, std):    # forgets the 3-std test for coverage
    d, k = _dist(samples, centres)
    share = torch.bincount(k, minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), (d < 3 * std).float().mean().item()


def mode_stats_share_of_good(samples, centres, std):   # divides by the good samples only
    d, k = _dist(samples, centres)
    good = d < 3 * std
    share = torch.bincount(k[good], minlength=len(centres)).float() / max(int(good.sum()), 1)
    return int((share >= 0.01).sum()), good.float().mean().item()


def mode_stats_count_not_share(samples, centres, std):
    d, k = _dist(samples, centres)
    good = d < 3 * std
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), int(good.sum())


def mode_stats_std_fixed(samples, centres, std):       # ignores std: 3 * 0.02 hard-coded
    d, k = _dist(samples, centres)
    good = d < 0.06
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), good.float().mean().item()


def mode_stats_ring_fixed(samples, centres, std):      # ignores centres: always the ring of 8
    return mode_stats_loops(samples, ring_centers(8, 2.0), std)


def mode_stats_per_mode(samples, centres, std):        # forgot to count the covered modes
    stats = gan.mode_stats(samples, centres, std)
    return stats.shares >= 0.01, stats.high_quality


def mode_stats_package(samples, centres, std):
    s = gan.mode_stats(samples, centres, std)
    return s.modes_covered, s.high_quality


def mode_stats_per_mode_own(samples, centres, std):    # per-mode values, without the package
    d, k = _dist(samples, centres)
    good = d < 3 * std
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return share >= 0.01, good.float().mean().item()


# -- train_step ---------------------------------------------------------------------------------


def _step(G, D, opt_g, opt_d, x_real, z, *, minimax=False, detach=True, zero_d=True,
          order="dg", zero_all_first=False):
    """A configurable train step with its own losses, to produce typical mistakes."""
    if zero_all_first:
        opt_d.zero_grad()
        opt_g.zero_grad()
    x_fake = G(z)
    steps = []

    def d_step():
        fake = x_fake.detach() if detach else x_fake
        loss_d = d_loss_logsigmoid(D(x_real), D(fake))
        if zero_d and not zero_all_first:
            opt_d.zero_grad()
        loss_d.backward(retain_graph=True)
        opt_d.step()
        steps.append(loss_d.item())

    def g_step():
        logits = D(x_fake)
        loss_g = g_loss_minimax(logits) if minimax else g_loss_logsigmoid(logits)
        if not zero_all_first:
            opt_g.zero_grad()
        loss_g.backward(retain_graph=True)
        opt_g.step()
        steps.append(loss_g.item())

    if order == "dg":
        d_step()
        g_step()
        return steps[0], steps[1]
    g_step()
    d_step()
    return steps[1], steps[0]


def step_own(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z)


def step_minimax(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, minimax=True)


def step_g_first(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, order="gd")


def step_no_zero_d(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, zero_d=False)


def step_no_detach_zero_first(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, detach=False, zero_all_first=True)


def step_returns_dict(G, D, opt_g, opt_d, x_real, z):
    loss_d, loss_g = step_own(G, D, opt_g, opt_d, x_real, z)
    return {"loss_d": loss_d, "loss_g": loss_g}


def step_package(G, D, opt_g, opt_d, x_real, z):
    out = gan.train_step(G, D, opt_g, opt_d, x_real, z)
    return out["loss_d"], out["loss_g"]


def step_package_losses(G, D, opt_g, opt_d, x_real, z):
    x_fake = G(z)
    loss_d = gan.discriminator_loss(D(x_real), D(x_fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = gan.generator_loss_nonsaturating(D(x_fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def step_alias_default(G, D, opt_g, opt_d, x_real, z, _train=gan.train_step):
    out = _train(G, D, opt_g, opt_d, x_real, z)
    return out["loss_d"], out["loss_g"]


C = Case
RIGHT = [
    C("check_discriminator_loss", d_loss_logsigmoid, why="log-sigmoid"),
    C("check_discriminator_loss", d_loss_logsigmoid, why="log-sigmoid, seed 9", kwargs={"seed": 9}),
    C("check_generator_loss_nonsaturating", g_loss_logsigmoid, why="log-sigmoid"),
    C("check_pack", pack_reshape, why="reshape"),
    C("check_pack", pack_reshape, why="reshape, seed 5", kwargs={"seed": 5}),
    C("check_mode_stats", mode_stats_loops, why="explicit distances"),
    C("check_mode_stats", mode_stats_loops, why="explicit distances, seed 3", kwargs={"seed": 3}),
    C("check_train_step", step_own, why="own losses"),
    C("check_train_step", step_own, why="own losses, seed 4", kwargs={"seed": 4}),
]

WRONG = [
    C("check_discriminator_loss", d_loss_swapped, "labels are swapped", "labels swapped"),
    C("check_discriminator_loss", d_loss_sum, "summed over the batch", "sum not mean"),
    C("check_discriminator_loss", d_loss_real_only, "both terms", "real term only"),
    C("check_discriminator_loss", d_loss_unstable, "softplus", "log of sigmoid"),
    C("check_discriminator_loss", d_loss_cat_mean, "its own batch", "one mean over both"),
    C("check_discriminator_loss", d_loss_negated, "sign is flipped", "negated"),
    C("check_discriminator_loss", d_loss_package, "coursekit.models.gan.discriminator_loss",
      "package loss"),
    C("check_discriminator_loss", gan.discriminator_loss, "coursekit.models.gan.discriminator_loss",
      "package function itself"),
    C("check_discriminator_loss", d_loss_alias, "coursekit.models.gan.discriminator_loss",
      "package alias"),
    C("check_discriminator_loss", d_loss_bce, "binary_cross_entropy_with_logits", "built-in BCE"),
    C("check_discriminator_loss", d_loss_bce_getattr, "binary_cross_entropy_with_logits",
      "built-in BCE by getattr"),
    C("check_discriminator_loss", 1.0, "should be a function", "a number"),

    C("check_generator_loss_nonsaturating", g_loss_minimax, "minimax", "minimax loss"),
    C("check_generator_loss_nonsaturating", gan.generator_loss_minimax, "minimax",
      "package minimax"),
    C("check_generator_loss_nonsaturating", g_loss_negated, "sign is flipped", "negated"),
    C("check_generator_loss_nonsaturating", g_loss_unstable, "softplus", "log of sigmoid"),
    C("check_generator_loss_nonsaturating", g_loss_detached, "differentiable", "detached"),
    C("check_generator_loss_nonsaturating", g_loss_sum, "summed over the batch", "sum not mean"),
    C("check_generator_loss_nonsaturating", gan.generator_loss_nonsaturating,
      "coursekit.models.gan.generator_loss_nonsaturating", "package function itself"),
    C("check_generator_loss_nonsaturating", g_loss_table, "coursekit.models.gan",
      "package through its table"),
    C("check_generator_loss_nonsaturating", g_loss_bce, "binary_cross_entropy_with_logits",
      "built-in BCE"),

    C("check_pack", pack_transposed, "consecutive", "(m b) order"),
    C("check_pack", pack_interleaved, "interleaved", "features interleaved"),
    C("check_pack", pack_not_flat, "wrong shape", "not flattened"),
    C("check_pack", pack_m_fixed, "m=4", "m ignored"),
    C("check_pack", pack_d_fixed, "raised RuntimeError", "d assumed 2"),
    C("check_pack", gan.pack, "coursekit.models.gan.pack", "package function itself"),
    C("check_pack", pack_alias, "coursekit.models.gan.pack", "package alias as default"),

    C("check_mode_stats", mode_stats_any_count, "1%", "one sample covers"),
    C("check_mode_stats", mode_stats_one_std, "3 times the std", "1 std"),
    C("check_mode_stats", mode_stats_nearest_only, "high-quality samples", "no 3-std test"),
    C("check_mode_stats", mode_stats_share_of_good, "ALL samples", "share of the good ones"),
    C("check_mode_stats", mode_stats_count_not_share, "fraction", "count not share"),
    C("check_mode_stats", mode_stats_std_fixed, "std 0.05", "std hard-coded 0.06"),
    C("check_mode_stats", mode_stats_ring_fixed, "grid of 25", "centres ignored"),
    C("check_mode_stats", mode_stats_per_mode_own, "single number", "per-mode values"),
    C("check_mode_stats", mode_stats_package, "coursekit.models.gan.mode_stats", "package"),
    C("check_mode_stats", mode_stats_per_mode, "coursekit.models.gan.mode_stats",
      "package, per mode"),

    C("check_train_step", step_minimax, "non-saturating", "minimax G loss"),
    C("check_train_step", step_g_first, "AFTER its update", "G updated first"),
    C("check_train_step", step_no_zero_d, "zero", "D's gradients not zeroed"),
    C("check_train_step", step_no_detach_zero_first, "weights", "fakes not detached"),
    C("check_train_step", step_returns_dict, "a pair", "returns a dict"),
    C("check_train_step", step_package, "coursekit.models.gan.train_step", "package step"),
    C("check_train_step", step_alias_default, "coursekit.models.gan.train_step",
      "package step as a default"),
    C("check_train_step", step_package_losses, "coursekit.models.gan.discriminator_loss",
      "package losses"),
]
