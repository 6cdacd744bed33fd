"""Checks for exercises/04_gans.ipynb (GANs).

Each ``check_<exercise>`` takes the learner's function, compares it with the reference
in ``coursekit.models.gan`` on fixed and random cases, and prints one PASSED line or
raises a CheckFailure that says what to fix.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from coursekit.checks.assertions import (as_tensor, call, expect_close, fail, passed,
                                         require_callable)
from coursekit.models import gan as ref

_STABLE_HINT = ("work with logits: log D(x) = -softplus(-logit) and log(1 - D(x)) = "
                "-softplus(logit) (torch.nn.functional.softplus) stay finite where "
                "torch.log(torch.sigmoid(...)) gives -inf")


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


def check_discriminator_loss(discriminator_loss) -> None:
    """Exercise 1: D's loss -[log D(x) + log(1 - D(G(z)))] from logits, batch-averaged."""
    name = "check_discriminator_loss"
    require_callable(name, discriminator_loss, "discriminator_loss", n_args=2)
    cases = [
        ("real_logits = [0.], fake_logits = [0.] (D unsure: loss 2 log 2)",
         torch.tensor([0.0]), torch.tensor([0.0])),
        ("a confident, correct D: real_logits = [4., 6.], fake_logits = [-5., -3.]",
         torch.tensor([4.0, 6.0]), torch.tensor([-5.0, -3.0])),
        ("a fooled D: real_logits = [-2.], fake_logits = [3.]",
         torch.tensor([-2.0]), torch.tensor([3.0])),
        ("8 random real and 8 random fake logits", _logits(1, 8), _logits(2, 8)),
        ("5 real and 3 fake logits (batches of different sizes)", _logits(3, 5), _logits(4, 3)),
    ]
    for case, real, fake in cases:
        got = _scalar(name, call(name, discriminator_loss, real.clone(), fake.clone(),
                                 what="discriminator_loss"), "discriminator_loss(...)")
        want = ref.discriminator_loss(real, fake)
        hint = ("real samples should get label 1 (loss -log D(x)) and fakes label 0 "
                "(loss -log(1 - D(G(z)))); take the mean of each term separately and add them")
        if torch.isclose(got.double(), -want.double(), rtol=1e-4, atol=1e-5) and want.abs() > 1e-3:
            hint = "the sign is flipped: D minimises the negative log-likelihood"
        expect_close(name, case, got, want, atol=1e-4, rtol=1e-4, hint=hint)
    case = "large logits: real_logits = [120.], fake_logits = [-120.] (a perfect D, loss ~0)"
    got = _scalar(name, call(name, discriminator_loss, torch.tensor([120.0]),
                             torch.tensor([-120.0]), what="discriminator_loss"),
                  "discriminator_loss(...)")
    expect_close(name, case, got, torch.tensor(0.0), atol=1e-4, hint=_STABLE_HINT)
    got = _scalar(name, call(name, discriminator_loss, torch.tensor([-120.0]),
                             torch.tensor([120.0]), what="discriminator_loss"),
                  "discriminator_loss(...)")
    expect_close(name, "large logits: real_logits = [-120.], fake_logits = [120.] (loss 240)",
                 got, torch.tensor(240.0), atol=1e-2, hint=_STABLE_HINT)
    passed(name, "matches -[log D(x) + log(1 - D(G(z)))] on 7 cases, stable at large logits")


def check_generator_loss_nonsaturating(generator_loss) -> None:
    """Exercise 2: the non-saturating generator loss -log D(G(z)), batch-averaged."""
    name = "check_generator_loss_nonsaturating"
    require_callable(name, generator_loss, "generator_loss_nonsaturating", n_args=1)
    cases = [
        ("fake_logits = [0.] (D unsure: loss log 2)", torch.tensor([0.0])),
        ("D rejects the fakes: fake_logits = [-6., -4.]", torch.tensor([-6.0, -4.0])),
        ("D is fooled: fake_logits = [5.]", torch.tensor([5.0])),
        ("16 random fake logits", _logits(5, 16)),
    ]
    for case, fake in cases:
        got = _scalar(name, call(name, generator_loss, fake.clone(),
                                 what="generator_loss_nonsaturating"),
                      "generator_loss_nonsaturating(...)")
        want = ref.generator_loss_nonsaturating(fake)
        minimax = ref.generator_loss_minimax(fake)
        hint = "G wants D(G(z)) near 1: minimise -log D(G(z)), averaged over the batch"
        if torch.isclose(got.double(), minimax.double(), rtol=1e-4, atol=1e-5):
            hint = ("this is the minimax loss log(1 - D(G(z))), which saturates when D "
                    "rejects the fakes; the non-saturating loss is -log D(G(z))")
        elif torch.isclose(got.double(), -want.double(), rtol=1e-4, atol=1e-5):
            hint = "the sign is flipped: the loss to minimise is -log D(G(z))"
        expect_close(name, case, got, want, atol=1e-4, rtol=1e-4, hint=hint)
    # The reason for this loss: strong gradients where D rejects the fakes.
    fake = torch.tensor([-8.0, -6.0], requires_grad=True)
    out = call(name, generator_loss, fake, what="generator_loss_nonsaturating")
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        fail(name, "the loss must be differentiable with respect to the logits",
             "a tensor that autograd can differentiate", "a value without a gradient",
             "compute the loss with torch operations on fake_logits (no .item(), no .detach())")
    (grad,) = torch.autograd.grad(out.sum(), fake)
    expect_close(name, "gradient with respect to fake_logits = [-8., -6.]", grad,
                 -(1 - torch.sigmoid(torch.tensor([-8.0, -6.0]))) / 2, atol=1e-5,
                 hint="d/dlogit of -log sigmoid(logit) is -(1 - D): close to -1 when D rejects")
    got = _scalar(name, call(name, generator_loss, torch.tensor([-120.0]),
                             what="generator_loss_nonsaturating"), "generator_loss_nonsaturating(...)")
    expect_close(name, "large logits: fake_logits = [-120.] (loss 120)", got,
                 torch.tensor(120.0), atol=1e-2, hint=_STABLE_HINT)
    passed(name, "matches -log D(G(z)) and its gradient, stable at large logits")


def check_pack(pack) -> None:
    """Exercise 3: PacGAN packing (B * m, d) -> (B, m * d), consecutive samples together."""
    name = "check_pack"
    require_callable(name, pack, "pack", n_args=2)
    for n, d, m in [(6, 2, 2), (12, 2, 4), (5, 3, 1), (8, 64, 4)]:
        x = torch.arange(n * d, dtype=torch.float32).reshape(n, d)       # (n, d)
        got = call(name, pack, x.clone(), m, what="pack")
        want = ref.pack(x, m)
        got = as_tensor(name, got, f"pack(x of shape {(n, d)}, m={m})", shape=tuple(want.shape))
        if not torch.equal(got, want):
            hint = ("row i must hold samples i*m, ..., i*m + m - 1 one after another: "
                    "rearrange(x, '(b m) d -> b (m d)', m=m)")
            if torch.equal(got, x.reshape(m, n // m, d).transpose(0, 1).reshape(n // m, m * d)):
                hint = ("you packed samples b, b + B, b + 2B, ... together; PacGAN packs "
                        "consecutive samples: the pattern is '(b m) d', not '(m b) d'")
            fail(name, f"pack(x, m={m}) with x = arange({n * d}).reshape({n}, {d})", want, got, hint)
    passed(name, "packs consecutive samples for m = 1, 2, 4")


def check_mode_stats(mode_stats) -> None:
    """Exercise 4: (modes covered, share of high-quality samples) of points on a mixture."""
    name = "check_mode_stats"
    require_callable(name, mode_stats, "mode_stats", n_args=3)
    from coursekit.data import ring_centers

    centres = ring_centers(8, 2.0)
    std = 0.02
    g = torch.Generator().manual_seed(0)

    def near(mode_counts, spread=0.5):
        pts = [centres[k] + spread * std * torch.randn(c, 2, generator=g)
               for k, c in enumerate(mode_counts) if c]
        return torch.cat(pts)

    cases = [
        ("400 points, 50 tightly around each of the 8 centres", near([50] * 8)),
        ("all 400 points at centre 0 (mode collapse)", near([400] + [0] * 7)),
        ("points at centre 0 plus 300 points at the origin, far from every centre",
         torch.cat([near([100] + [0] * 7), torch.zeros(300, 2)])),
        ("1000 points: 992 at centre 0, 8 at centre 1 (0.8%: too few to count as covered)",
         near([992, 8] + [0] * 6)),
        ("1000 points: 980 at centre 0, 20 at centre 3 (2%: covered)",
         near([980, 0, 0, 20, 0, 0, 0, 0])),
        ("1000 points: 600 at the origin, 395 at centre 0, 5 at centre 1 (0.5% of ALL "
         "samples: not covered)",
         torch.cat([torch.zeros(600, 2), near([395, 5] + [0] * 6)])),
        ("200 points at 2.5 std from the centres (inside 3 std) and 200 at 4 std (outside)",
         torch.cat([centres[torch.arange(200) % 8] + torch.tensor([2.5 * std, 0.0]),
                    centres[torch.arange(200) % 8] + torch.tensor([0.0, 4 * std])])),
        ("random points in the square [-2.5, 2.5]^2", 5 * torch.rand(500, 2, generator=g) - 2.5),
    ]
    for case, pts in cases:
        out = call(name, mode_stats, pts.clone(), centres.clone(), std, what="mode_stats")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(name, case, "a pair (modes_covered, high_quality)", out,
                 "return two values: return modes_covered, high_quality")
        covered, quality = out
        for value, what, kind in [(covered, "modes_covered", "one whole number"),
                                  (quality, "high_quality", "one number in [0, 1]")]:
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                fail(name, case + f": {what}", kind, f"a tensor of shape {tuple(value.shape)}",
                     "reduce the per-mode or per-sample values to a single number "
                     "(for example with .sum() or .mean(), then .item())")
        covered = int(torch.as_tensor(covered).item()) if torch.as_tensor(covered).numel() == 1 else covered
        want = ref.mode_stats(pts, centres, std)
        if covered != want.modes_covered:
            fail(name, case + ": modes covered", want.modes_covered, covered,
                 "a mode counts when at least 1% of ALL samples are high-quality samples "
                 "near it (within 3 std of that centre): count per nearest centre, divide "
                 "by the number of samples, compare with 0.01")
        expect_close(name, case + ": share of high-quality samples",
                     torch.as_tensor(quality, dtype=torch.float64).reshape(()),
                     torch.tensor(want.high_quality), atol=1e-6,
                     hint="a sample is high quality when its distance to the NEAREST centre "
                          "is below 3 * std; return the share as a fraction in [0, 1]",
                     what="high_quality")
    passed(name, f"agrees with the reference on {len(cases)} cases")


# ---------------------------------------------------------------------------------------


def _tiny_gan(seed: int, pack: int = 1):
    cfg = ref.GANConfig(hidden=16, n_layers=2, pack=pack, batch_size=8)
    torch.manual_seed(seed)
    G, D = ref.make_gan(cfg)
    return cfg, G, D


def _adam(model: nn.Module, lr: float = 1e-2):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))


def check_train_step(train_step) -> None:
    """Exercise 5: one GAN step, D first (on detached fakes), then G with the
    non-saturating loss scored by the updated D."""
    name = "check_train_step"
    require_callable(name, train_step, "train_step", n_args=6)
    from coursekit.data import ring_of_gaussians

    for seed, n_steps in [(0, 1), (1, 3)]:
        cfg, G, D = _tiny_gan(seed)
        G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
        opt_g, opt_d = _adam(G), _adam(D)
        opt_g_ref, opt_d_ref = _adam(G_ref), _adam(D_ref)
        x_all, _ = ring_of_gaussians(8 * n_steps, seed=seed)
        z_all = torch.randn(8 * n_steps, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        for s in range(n_steps):
            x, z = x_all[8 * s: 8 * s + 8], z_all[8 * s: 8 * s + 8]
            out = call(name, train_step, G, D, opt_g, opt_d, x.clone(), z.clone(), what="train_step")
            want = ref.train_step(G_ref, D_ref, opt_g_ref, opt_d_ref, x, z)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fail(name, "the return value", "a pair (loss_d, loss_g) of numbers", out,
                     "return loss_d.item(), loss_g.item()")
            case = f"seed {seed}, step {s + 1} of {n_steps}"
            expect_close(name, case + ": loss_d returned",
                         torch.as_tensor(float(torch.as_tensor(out[0]).item())),
                         torch.tensor(want["loss_d"]), atol=1e-4,
                         hint="loss_d = discriminator_loss(D(x_real), D(x_fake.detach()))")
            expect_close(name, case + ": loss_g returned",
                         torch.as_tensor(float(torch.as_tensor(out[1]).item())),
                         torch.tensor(want["loss_g"]), atol=1e-4,
                         hint="score the fakes again with D AFTER its update: "
                              "loss_g = generator_loss_nonsaturating(D(x_fake))")
        for part, mine, theirs, hint in [
            ("D's weights", D, D_ref,
             "update D first: zero its gradients, backpropagate loss_d, opt_d.step(); "
             "use x_fake.detach() so this step does not touch G"),
            ("G's weights", G, G_ref,
             "after D's step: opt_g.zero_grad() (G may hold gradients from earlier "
             "backward calls), loss_g.backward(), opt_g.step()"),
        ]:
            got = torch.cat([p.detach().flatten() for p in mine.parameters()])
            want_p = torch.cat([p.detach().flatten() for p in theirs.parameters()])
            expect_close(name, f"seed {seed}: {part} after {n_steps} step(s)", got, want_p,
                         atol=1e-5, rtol=1e-4, hint=hint, what=part)
    passed(name, "D then G updated exactly as the reference over 1 and 3 steps")
