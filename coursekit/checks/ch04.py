"""Checks for exercises/04_gans.ipynb (GANs).

Each ``check_<exercise>`` takes the learner's function, compares it with the reference
in ``coursekit.models.gan`` on fixed cases and on random ones drawn from ``seed`` (the
solutions' hidden tests pass ``ck.checks.hidden_seed(...)``), and prints one PASSED line
or raises a CheckFailure that says what to fix. ``BANS`` lists what each answer may not
use: coursekit's own version of the exercise, and the built-in that would do its job.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.checks.assertions import (as_number, as_tensor, call, expect_close, fail,
                                         passed, require_callable, scan_answer)
from coursekit.checks.forbidden import ban
from coursekit.models import gan as ref

_BCE = ban("torch.nn.functional.binary_cross_entropy_with_logits",
           "torch.binary_cross_entropy_with_logits", "torch.nn.BCEWithLogitsLoss",
           "torch.nn.functional.binary_cross_entropy", "torch.nn.BCELoss",
           ops=["aten::binary_cross_entropy_with_logits", "aten::binary_cross_entropy"],
           reason="the exercise asks you to build the cross-entropy from log D = "
                  "-softplus(-logit) and log(1 - D) = -softplus(logit); a built-in binary "
                  "cross-entropy would do the whole job")
_OWN_LOSSES = ("the exercise asks you to write the step with your own losses from "
               "exercises 1 and 2; coursekit's versions would hide a mistake in yours")

BANS = {
    "check_discriminator_loss": [
        ban("coursekit.models.gan.discriminator_loss",
            reason="the exercise asks you to write D's loss; coursekit's discriminator_loss "
                   "is the answer itself"),
        _BCE,
    ],
    "check_generator_loss_nonsaturating": [
        ban("coursekit.models.gan.generator_loss_nonsaturating",
            "coursekit.models.gan.GENERATOR_LOSSES",
            reason="the exercise asks you to write G's loss; coursekit's "
                   "generator_loss_nonsaturating is the answer itself"),
        _BCE,
    ],
    "check_pack": [
        ban("coursekit.models.gan.pack",
            reason="the exercise asks you to write the packing; coursekit's pack is the "
                   "answer itself"),
    ],
    "check_mode_stats": [
        ban("coursekit.models.gan.mode_stats", "coursekit.models.gan.ModeStats",
            "coursekit.evaluate.mode_stats",
            reason="the exercise asks you to compute the two figures; coursekit's "
                   "mode_stats is the answer itself"),
    ],
    "check_train_step": [
        ban("coursekit.models.gan.train_step", "coursekit.models.gan.train_gan",
            reason="the exercise asks you to write the training step; coursekit's "
                   "train_step is the answer itself"),
        ban("coursekit.models.gan.discriminator_loss",
            "coursekit.models.gan.generator_loss_nonsaturating",
            "coursekit.models.gan.GENERATOR_LOSSES", reason=_OWN_LOSSES),
    ],
}

_STABLE_HINT = ("work with logits: log D(x) = -softplus(-logit) and log(1 - D(x)) = "
                "-softplus(logit) (torch.nn.functional.softplus) stay finite where "
                "torch.log(torch.sigmoid(...)) gives -inf")


def _not_itself(check: str, fn, what: str) -> None:
    """Refuse an answer that is one of the banned objects itself (``f = gan.pack``)."""
    scan_answer(check, lambda *args: fn(*args), BANS[check], what)


def _logits(seed: int, n: int, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def _scalar(check: str, value, what: str) -> torch.Tensor:
    value = as_tensor(check, value, what)
    if value.numel() != 1:
        fail(check, f"{what} should be one number (the mean over the batch)",
             "a 0-d tensor", f"shape {tuple(value.shape)}",
             "average over the batch with .mean()")
    return value.reshape(())


# ---------------------------------------------------------------------------------------


def check_discriminator_loss(discriminator_loss, seed: int = 0) -> None:
    """Exercise 1: D's loss -[log D(x) + log(1 - D(G(z)))] from logits, batch-averaged."""
    name = "check_discriminator_loss"
    bans = BANS[name]
    require_callable(name, discriminator_loss, "discriminator_loss", n_args=2)
    _not_itself(name, discriminator_loss, "discriminator_loss")
    cases = [
        ("real_logits = [0.], fake_logits = [0.] (D unsure: loss 2 log 2)",
         torch.tensor([0.0]), torch.tensor([0.0])),
        ("a confident, correct D: real_logits = [4., 6.], fake_logits = [-5., -3.]",
         torch.tensor([4.0, 6.0]), torch.tensor([-5.0, -3.0])),
        ("a fooled D: real_logits = [-2.], fake_logits = [3.]",
         torch.tensor([-2.0]), torch.tensor([3.0])),
        (f"8 random real and 8 random fake logits (seed {seed})",
         _logits(seed + 1, 8), _logits(seed + 2, 8)),
        (f"5 real and 3 fake logits, batches of different sizes (seed {seed})",
         _logits(seed + 3, 5), _logits(seed + 4, 3)),
    ]
    for case, real, fake in cases:
        got = _scalar(name, call(name, discriminator_loss, real.clone(), fake.clone(),
                                 what="discriminator_loss", bans=bans), "discriminator_loss(...)")
        want = ref.discriminator_loss(real, fake)
        hint = ("real samples should get label 1 (loss -log D(x)) and fakes label 0 "
                "(loss -log(1 - D(G(z)))); take the mean of each term over its own batch "
                "and add the two means")
        sp = F.softplus
        found = []
        for other, text in [
            (-want, "the sign is flipped: D minimises the negative log-likelihood"),
            (sp(real).mean() + sp(-fake).mean(),
             "the labels are swapped: real samples have label 1, fakes label 0"),
            (sp(-real).sum() + sp(fake).sum(),
             "you summed over the batch; average each term over its batch"),
            (torch.cat([sp(-real), sp(fake)]).mean(),
             "one mean over both batches weights them by their sizes; average each term "
             "over its own batch, then add the two means"),
            (sp(-real).mean(), "the loss needs both terms: the real samples' and the fakes'"),
            (sp(fake).mean(), "the loss needs both terms: the real samples' and the fakes'"),
        ]:
            if torch.isclose(got.double(), other.double(), rtol=1e-4, atol=1e-5) \
                    and not torch.isclose(other.double(), want.double(), rtol=1e-4, atol=1e-5) \
                    and text not in found:
                found.append(text)
        if found:
            hint = "; or ".join(found)
        expect_close(name, case, got, want, atol=1e-4, rtol=1e-4, hint=hint)
    case = "large logits: real_logits = [120.], fake_logits = [-120.] (a perfect D, loss ~0)"
    got = _scalar(name, call(name, discriminator_loss, torch.tensor([120.0]),
                             torch.tensor([-120.0]), what="discriminator_loss", bans=bans),
                  "discriminator_loss(...)")
    expect_close(name, case, got, torch.tensor(0.0), atol=1e-4, hint=_STABLE_HINT)
    got = _scalar(name, call(name, discriminator_loss, torch.tensor([-120.0]),
                             torch.tensor([120.0]), what="discriminator_loss", bans=bans),
                  "discriminator_loss(...)")
    expect_close(name, "large logits: real_logits = [-120.], fake_logits = [120.] (loss 240)",
                 got, torch.tensor(240.0), atol=1e-2, hint=_STABLE_HINT)
    passed(name, "matches -[log D(x) + log(1 - D(G(z)))] on 7 cases, stable at large logits")


def check_generator_loss_nonsaturating(generator_loss, seed: int = 0) -> None:
    """Exercise 2: the non-saturating generator loss -log D(G(z)), batch-averaged."""
    name = "check_generator_loss_nonsaturating"
    bans = BANS[name]
    require_callable(name, generator_loss, "generator_loss_nonsaturating", n_args=1)
    _not_itself(name, generator_loss, "generator_loss_nonsaturating")
    what = "generator_loss_nonsaturating"
    cases = [
        ("fake_logits = [0.] (D unsure: loss log 2)", torch.tensor([0.0])),
        ("D rejects the fakes: fake_logits = [-6., -4.]", torch.tensor([-6.0, -4.0])),
        ("D is fooled: fake_logits = [5.]", torch.tensor([5.0])),
        (f"16 random fake logits (seed {seed})", _logits(seed + 5, 16)),
    ]
    for case, fake in cases:
        got = _scalar(name, call(name, generator_loss, fake.clone(), what=what, bans=bans),
                      "generator_loss_nonsaturating(...)")
        want = ref.generator_loss_nonsaturating(fake)
        minimax = ref.generator_loss_minimax(fake)
        hint = "G wants D(G(z)) near 1: minimise -log D(G(z)), averaged over the batch"
        found = []
        for other, text in [
            (minimax, "this is the minimax loss log(1 - D(G(z))), which saturates when D "
                      "rejects the fakes; the non-saturating loss is -log D(G(z))"),
            (-want, "the sign is flipped: the loss to minimise is -log D(G(z))"),
            (len(fake) * want, "you summed over the batch; the loss is the mean over the batch"),
        ]:
            if torch.isclose(got.double(), other.double(), rtol=1e-4, atol=1e-5) \
                    and not torch.isclose(other.double(), want.double(), rtol=1e-4, atol=1e-5):
                found.append(text)
        if found:
            hint = "; or ".join(found)
        expect_close(name, case, got, want, atol=1e-4, rtol=1e-4, hint=hint)
    # The reason for this loss: strong gradients where D rejects the fakes.
    start = torch.tensor([-8.0, -6.0])
    fake = start.clone().requires_grad_()
    out = call(name, generator_loss, fake, what=what, bans=bans)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        fail(name, "the loss must be differentiable with respect to the logits",
             "a tensor that autograd can differentiate", "a value without a gradient",
             "compute the loss with torch operations on fake_logits (no .item(), no .detach())")
    (grad,) = torch.autograd.grad(out.sum(), fake)
    expect_close(name, "gradient with respect to fake_logits = [-8., -6.]", grad,
                 -(1 - torch.sigmoid(start)) / 2, atol=1e-5,
                 hint="d/dlogit of -log sigmoid(logit) is -(1 - D): close to -1 when D rejects")
    got = _scalar(name, call(name, generator_loss, torch.tensor([-120.0]), what=what, bans=bans),
                  "generator_loss_nonsaturating(...)")
    expect_close(name, "large logits: fake_logits = [-120.] (loss 120)", got,
                 torch.tensor(120.0), atol=1e-2, hint=_STABLE_HINT)
    passed(name, "matches -log D(G(z)) and its gradient, stable at large logits")


def check_pack(pack, seed: int = 0) -> None:
    """Exercise 3: PacGAN packing (B * m, d) -> (B, m * d), consecutive samples together."""
    name = "check_pack"
    require_callable(name, pack, "pack", n_args=2)
    _not_itself(name, pack, "pack")
    g = torch.Generator().manual_seed(seed)
    cases = [(6, 2, 2, None), (12, 2, 4, None), (5, 3, 1, None), (8, 64, 4, None),
             (9, 5, 3, torch.randn(9, 5, generator=g)),
             (12, 1, 6, torch.randn(12, 1, generator=g))]
    for n, d, m, x in cases:
        label = f"x = arange({n * d}).reshape({n}, {d})" if x is None else \
            f"x = random values of shape ({n}, {d}) (seed {seed})"
        if x is None:
            x = torch.arange(n * d, dtype=torch.float32).reshape(n, d)   # (n, d)
        got = call(name, pack, x.clone(), m, what="pack", bans=BANS[name])
        want = ref.pack(x, m)
        got = as_tensor(name, got, f"pack(x of shape {(n, d)}, m={m})", shape=tuple(want.shape))
        if not torch.equal(got, want):
            hint = ("row i must hold samples i*m, ..., i*m + m - 1 one after another: split "
                    "the first axis into (B, m) with the m consecutive samples innermost, "
                    "then join each group's samples along the feature axis")
            if torch.equal(got, x.reshape(m, n // m, d).transpose(0, 1).reshape(n // m, m * d)):
                hint = ("you packed samples b, b + B, b + 2B, ... together; PacGAN packs "
                        "consecutive samples: the m samples of a row are the innermost "
                        "part of the batch axis, not the outermost")
            elif m > 1 and d > 1 and torch.equal(
                    got, x.reshape(n // m, m, d).transpose(1, 2).reshape(n // m, m * d)):
                hint = ("the right samples, but interleaved feature by feature; a row holds "
                        "sample i*m whole, then sample i*m + 1 whole, and so on")
            fail(name, f"pack(x, m={m}) with {label}", want, got, hint)
    passed(name, "packs consecutive samples for m = 1, 2, 3, 4, 6")


def _ring(k: int, radius: float) -> torch.Tensor:
    angle = 2 * math.pi * torch.arange(k) / k
    return radius * torch.stack([angle.cos(), angle.sin()], 1)          # (k, 2)


def _grid(side: int, spacing: float) -> torch.Tensor:
    pos = spacing * (torch.arange(side, dtype=torch.float32) - (side - 1) / 2)
    return torch.cartesian_prod(pos, pos)                               # (side**2, 2)


def check_mode_stats(mode_stats, seed: int = 0) -> None:
    """Exercise 4: (modes covered, share of high-quality samples) of points on a mixture."""
    name = "check_mode_stats"
    require_callable(name, mode_stats, "mode_stats", n_args=3)
    _not_itself(name, mode_stats, "mode_stats")
    g = torch.Generator().manual_seed(seed)

    def near(centres, std, mode_counts, spread=0.5):
        pts = [centres[k] + spread * std * torch.randn(c, 2, generator=g)
               for k, c in enumerate(mode_counts) if c]
        return torch.cat(pts)

    ring8, grid25, ring5 = _ring(8, 2.0), _grid(5, 2.0), _ring(5, 1.0)
    at = torch.arange(200)
    cases = [
        ("ring of 8, std 0.02: 400 points, 50 tightly around each centre", ring8, 0.02,
         near(ring8, 0.02, [50] * 8)),
        ("ring of 8, std 0.02: all 400 points at centre 0 (mode collapse)", ring8, 0.02,
         near(ring8, 0.02, [400] + [0] * 7)),
        ("ring of 8, std 0.02: 100 points at centre 0 plus 300 at the origin, far from "
         "every centre", ring8, 0.02,
         torch.cat([near(ring8, 0.02, [100] + [0] * 7), torch.zeros(300, 2)])),
        ("ring of 8, std 0.02: 992 points at centre 0, 8 at centre 1 (0.8%: too few to "
         "count as covered)", ring8, 0.02, near(ring8, 0.02, [992, 8] + [0] * 6)),
        ("ring of 8, std 0.02: 980 points at centre 0, 20 at centre 3 (2%: covered)",
         ring8, 0.02, near(ring8, 0.02, [980, 0, 0, 20, 0, 0, 0, 0])),
        ("ring of 8, std 0.02: 600 points at the origin, 395 at centre 0, 5 at centre 1 "
         "(0.5% of ALL samples: not covered)", ring8, 0.02,
         torch.cat([torch.zeros(600, 2), near(ring8, 0.02, [395, 5] + [0] * 6)])),
        ("ring of 8, std 0.02: 200 points at 2.5 std from the centres (inside 3 std) and "
         "200 at 4 std (outside)", ring8, 0.02,
         torch.cat([ring8[at % 8] + torch.tensor([2.5 * 0.02, 0.0]),
                    ring8[at % 8] + torch.tensor([0.0, 4 * 0.02])])),
        (f"ring of 8, std 0.02: random points in the square [-2.5, 2.5]^2 (seed {seed})",
         ring8, 0.02, 5 * torch.rand(500, 2, generator=g) - 2.5),
        ("ring of 8, std 0.05: 200 points at 2.5 std (inside 3 std), 200 at 3.5 std "
         "(outside)", ring8, 0.05,
         torch.cat([ring8[at % 8] + torch.tensor([0.0, 2.5 * 0.05]),
                    ring8[at % 8] + torch.tensor([3.5 * 0.05, 0.0])])),
        ("ring of 8, std 0.1: 300 points at 2.8 std from centres 0 to 2, 100 at the origin",
         ring8, 0.1, torch.cat([ring8[at[:150] % 3] + torch.tensor([0.28, 0.0]),
                                ring8[at[:150] % 3] - torch.tensor([0.0, 0.28]),
                                torch.zeros(100, 2)])),
        (f"grid of 25 (spacing 2), std 0.05: points at 20 of the 25 modes (seed {seed})",
         grid25, 0.05, near(grid25, 0.05, [40] * 20 + [0] * 5, spread=1.2)),
        (f"grid of 25 (spacing 2), std 0.3: random points in [-5, 5]^2 (seed {seed})",
         grid25, 0.3, 10 * torch.rand(800, 2, generator=g) - 5),
        ("ring of 5 (radius 1), std 0.15: 3 modes with 2 points each out of 700, the rest "
         "at 2.9 std from centre 4", ring5, 0.15,
         torch.cat([ring5[torch.tensor([0, 0, 1, 1, 2, 2])],
                    ring5[4] + torch.tensor([0.0, 2.9 * 0.15]).expand(694, 2)])),
    ]
    for case, centres, std, pts in cases:
        out = call(name, mode_stats, pts.clone(), centres.clone(), std, what="mode_stats",
                   bans=BANS[name])
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(name, case, "a pair (modes_covered, high_quality)", out,
                 "return the two figures as a pair, the count of covered modes first")
        covered, quality = out
        for value, what, kind in [(covered, "modes_covered", "one whole number"),
                                  (quality, "high_quality", "one number in [0, 1]")]:
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                fail(name, case + f": {what}", kind, f"a tensor of shape {tuple(value.shape)}",
                     "reduce the per-mode or per-sample values to a single number "
                     "(for example with .sum() or .mean(), then .item())")
        covered = as_number(name, covered, "modes_covered")
        quality = as_number(name, quality, "high_quality")
        want = ref.mode_stats(pts, centres, std)
        if covered != want.modes_covered:
            fail(name, case + ": modes covered", want.modes_covered, covered,
                 "a mode counts when at least 1% of ALL samples are high-quality samples "
                 "near it (within 3 std of that centre, with the std you are given): count "
                 "per nearest centre, divide by the number of samples, compare with 0.01")
        expect_close(name, case + ": share of high-quality samples",
                     torch.tensor(quality, dtype=torch.float64),
                     torch.tensor(want.high_quality), atol=1e-6,
                     hint="a sample is high quality when its distance to the NEAREST centre "
                          "is below 3 times the std argument; return the share as a "
                          "fraction in [0, 1]",
                     what="high_quality")
    passed(name, f"agrees with the reference on {len(cases)} cases (rings and a grid, "
                 "std 0.02 to 0.3)")


# ---------------------------------------------------------------------------------------


def _tiny_gan(seed: int, pack: int = 1, latent_dim: int = 2, data_dim: int = 2):
    cfg = ref.GANConfig(hidden=16, n_layers=2, pack=pack, batch_size=8, latent_dim=latent_dim,
                        data_dim=data_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = ref.make_gan(cfg)
    return cfg, G, D


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _adam(model: nn.Module, lr: float = 1e-2):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))


def check_train_step(train_step, seed: int = 0) -> None:
    """Exercise 5: one GAN step, D first (on detached fakes), then G with the
    non-saturating loss scored by the updated D."""
    name = "check_train_step"
    require_callable(name, train_step, "train_step", n_args=6)
    _not_itself(name, train_step, "train_step")
    runs = [(seed, 1, dict()), (seed + 1, 3, dict()),
            (seed + 2, 2, dict(pack=2, latent_dim=3, data_dim=3))]
    for run_seed, n_steps, shape in runs:
        cfg, G, D = _tiny_gan(run_seed, **shape)
        G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
        opt_g, opt_d = _adam(G), _adam(D)
        opt_g_ref, opt_d_ref = _adam(G_ref), _adam(D_ref)
        n = cfg.batch_size * cfg.pack
        gen = torch.Generator().manual_seed(run_seed)
        x_all = torch.randn(n * n_steps, cfg.data_dim, generator=gen)
        z_all = torch.randn(n * n_steps, cfg.noise_dim, generator=gen)
        label = (f"seed {run_seed}" + (f", pack {cfg.pack}, latent {cfg.latent_dim}, "
                                       f"data {cfg.data_dim}-d" if shape else ""))
        for s in range(n_steps):
            x, z = x_all[n * s: n * s + n], z_all[n * s: n * s + n]
            out = call(name, train_step, G, D, opt_g, opt_d, x.clone(), z.clone(),
                       what="train_step", bans=BANS[name])
            before = copy.deepcopy((G_ref, D_ref, opt_g_ref, opt_d_ref))
            with torch.no_grad():                       # G scored by D before its update
                old_d_score = ref.generator_loss_nonsaturating(before[1](before[0](z))).item()
            minimax = ref.train_step(*before, x, z, loss="minimax")["loss_g"]
            want = ref.train_step(G_ref, D_ref, opt_g_ref, opt_d_ref, x, z)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fail(name, "the return value", "a pair (loss_d, loss_g) of numbers", out,
                     "return the two losses of the step as a pair of Python floats, D's first")
            case = f"{label}, step {s + 1} of {n_steps}"
            expect_close(name, case + ": loss_d returned",
                         torch.tensor(as_number(name, out[0], "loss_d")),
                         torch.tensor(want["loss_d"]), atol=1e-4,
                         hint="loss_d is your discriminator loss on D's logits for the real "
                              "batch and for the fakes, the fakes detached from G")
            expect_close(name, f"{case}: D's weights after this step", _flat(D), _flat(D_ref),
                         atol=1e-5, rtol=1e-4, what="D's weights",
                         hint="update D first: zero its gradients (the G step of the step "
                              "before left gradients in D), backpropagate loss_d, step its "
                              "optimiser; detach the fakes so this step does not touch G")
            loss_g = as_number(name, out[1], "loss_g")
            hint = ("score the fakes again with D AFTER its update, and apply your "
                    "non-saturating loss to those logits")
            if abs(loss_g - minimax) < 1e-4 < abs(minimax - want["loss_g"]):
                hint = ("this is the minimax loss log(1 - D(G(z))); the step uses the "
                        "non-saturating loss -log D(G(z))")
            elif abs(loss_g - old_d_score) < 1e-4 < abs(old_d_score - want["loss_g"]):
                hint = ("loss_g matches the fakes scored by D BEFORE its update: update D "
                        "first, then score the fakes with D AFTER its update")
            expect_close(name, case + ": loss_g returned", torch.tensor(loss_g),
                         torch.tensor(want["loss_g"]), atol=1e-4, hint=hint)
        for part, mine, theirs, hint in [
            ("D's weights", D, D_ref,
             "update D first: zero its gradients, backpropagate loss_d, step its "
             "optimiser; detach the fakes so this step does not touch G"),
            ("G's weights", G, G_ref,
             "after D's step, zero G's gradients (G may hold gradients from earlier "
             "backward calls), backpropagate loss_g, step G's optimiser"),
        ]:
            got = torch.cat([p.detach().flatten() for p in mine.parameters()])
            want_p = torch.cat([p.detach().flatten() for p in theirs.parameters()])
            expect_close(name, f"{label}: {part} after {n_steps} step(s)", got, want_p,
                         atol=1e-5, rtol=1e-4, hint=hint, what=part)
    passed(name, "D then G updated exactly as the reference over 1, 2 and 3 steps, "
                 "packed and unpacked")
