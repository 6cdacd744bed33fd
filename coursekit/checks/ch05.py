"""Checks for exercises/05_vaes.ipynb, one ``check_<exercise>`` per exercise.

The references are written here from the formulas of "Auto-Encoding Variational Bayes"
(Kingma & Welling, 2013), independently of ``coursekit.models.vae`` (the tests compare
both with ``torch.distributions``). Random cases run inside ``torch.random.fork_rng``,
so a check never changes the learner's random numbers; random cases are drawn from
``seed`` (the solutions' hidden tests pass ``ck.checks.hidden_seed(...)``). When an answer
is wrong, a check tries the usual mistakes on the same case and names the one the answer
reproduces. ``BANS`` lists what each answer may not use: coursekit's own version of the
exercise, and the library call that would do its job.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.checks.assertions import (CheckFailure, as_number, as_tensor, call, describe, diagnose,
                                        expect_close, fail, guarded, matches, passed, require_callable,
                                        scan_answer, seeded)
from coursekit.checks.forbidden import ban

_KL_LIBRARY = ban("torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence",
                  reason="the exercise asks for the closed form of the Gaussian KL; "
                         "torch.distributions.kl_divergence would do the whole job")
_OWN_PARTS = ("the exercise asks you to build the step from your own negative_elbo; "
              "coursekit's loss functions would hide a mistake in yours")

BANS = {
    "check_reparameterise": [
        ban("coursekit.models.vae.reparameterise",
            reason="the exercise asks you to write the trick; coursekit's reparameterise "
                   "is the answer itself"),
        ban("torch.distributions.Normal.rsample", "torch.distributions.Normal.sample",
            "torch.normal", "torch.distributions.MultivariateNormal.rsample",
            reason="the exercise asks you to write z = mu + sigma * eps yourself; "
                   "rsample would do the whole job, and torch.normal or .sample() give "
                   "samples without gradients"),
    ],
    "check_kl_divergence": [
        ban("coursekit.models.vae.kl_divergence",
            reason="the exercise asks you to write the KL term; coursekit's kl_divergence "
                   "is the answer itself"),
        _KL_LIBRARY,
    ],
    "check_negative_elbo": [
        ban("coursekit.models.vae.negative_elbo", "coursekit.models.vae.reconstruction_loss",
            "coursekit.models.vae.kl_divergence", "coursekit.models.vae.evaluate",
            reason="the exercise asks you to write the loss from your kl_divergence and the "
                   "cross-entropy; coursekit's loss functions are the answer itself"),
        _KL_LIBRARY,
    ],
    "check_encoder": [
        ban("coursekit.models.vae.Encoder", "coursekit.models.vae.VAE",
            reason="the exercise asks you to write the encoder; coursekit's Encoder (or "
                   "VAE's) is the answer itself"),
    ],
    "check_train_step": [
        ban("coursekit.models.vae.negative_elbo", "coursekit.models.vae.reconstruction_loss",
            "coursekit.models.vae.kl_divergence", "coursekit.models.vae.train_vae",
            reason=_OWN_PARTS),
    ],
}


def _not_itself(check: str, fn, what: str) -> None:
    """Refuse an answer that is one of the banned objects itself (``f = vae.Encoder``)."""
    scan_answer(check, lambda *args: fn(*args), BANS[check], what)


_gen = seeded


_close, _describe, _diagnose = matches, describe, diagnose


# -- 1. the reparameterisation trick --------------------------------------------------------

def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each column of ``a`` with the same column of ``b``: (N, L) -> (L,)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(1e-12)


def check_reparameterise(reparameterise, seed: int = 0) -> None:
    """``reparameterise(mu, logvar)``: (B, L) x2 -> z = mu + exp(logvar / 2) * eps, (B, L).

    Checked: the shape; z = mu when the variance is tiny; the mean and standard deviation
    of many samples, with mu and logvar the same on every row and different on every
    row; that the noise of different coordinates and of different rows is independent
    (no draw shared by a row, a column, or two halves of the batch); that gradients reach
    both mu and logvar with the values the trick gives (dz/dmu = 1, dz/dlogvar =
    (z - mu) / 2); fresh noise on every call.
    """
    name = "check_reparameterise"
    bans = BANS[name]
    require_callable(name, reparameterise, "reparameterise", n_args=2)
    _not_itself(name, reparameterise, "reparameterise")
    what = "reparameterise(mu, logvar)"

    def run(mu, logvar):
        return call(name, reparameterise, mu, logvar, what=what, bans=bans)

    no_noise = ("z has no noise: draw eps from a standard normal with the shape of mu, one "
                "independent value per entry, and add sigma * eps to mu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 5)
        # 1. shape and type
        mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
        z = run(mu, logvar)
        as_tensor(name, z, "z", shape=(4, 3), dtype_float=True)

        # 2. a (nearly) zero variance leaves z at the mean
        mu = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
        z = run(mu, torch.full_like(mu, -60.0))
        expect_close(name, "mu = [[0.5, -1, 2], [3, 0, -0.25]], logvar = -60 (sigma ~ 1e-13): "
                     "z should equal mu", z, mu, atol=1e-5,
                     hint="z is the mean plus noise scaled by sigma", what="z")

        # 3. many samples: mean mu, standard deviation sigma = exp(logvar / 2)
        n = 20000
        mu = torch.tensor([1.5, -2.0]).expand(n, 2).clone()
        sigma = torch.tensor([0.5, 2.0])
        logvar = (2 * sigma.log()).expand(n, 2).clone()
        z = as_tensor(name, run(mu, logvar), "z", shape=(n, 2), dtype_float=True).detach()
        mean, std = z.mean(0), z.std(0)
        case = (f"{n} samples with mu = [1.5, -2], logvar = [{logvar[0, 0].item():.3f}, "
                f"{logvar[0, 1].item():.3f}] (sigma = [0.5, 2])")
        if not (std > 0.01).all():
            fail(name, case + ": the spread of z", "standard deviations about [0.5, 2.0]",
                 f"{[round(s, 4) for s in std.tolist()]}", no_noise)
        if not torch.allclose(std, sigma, rtol=0.04):
            hint = ("sigma is exp(logvar / 2), the square root of the variance; eps is a "
                    "standard normal")
            if torch.allclose(std, sigma ** 2, rtol=0.04):
                hint = ("your noise is scaled by exp(logvar), the variance; the standard "
                        "deviation is its square root")
            elif torch.allclose(std, sigma.sqrt(), rtol=0.04):
                hint = ("your noise is scaled by exp(logvar / 4); the standard deviation is "
                        "the square root of exp(logvar)")
            elif torch.allclose(std, sigma / math.sqrt(12), rtol=0.06):
                hint = "eps looks uniform; it must be a standard normal"
            fail(name, case + ": the standard deviation of z per coordinate",
                 f"{sigma.tolist()} (within 4%)", f"{[round(s, 4) for s in std.tolist()]}", hint)
        if not torch.allclose(mean, mu[0], atol=0.08):
            fail(name, case + ": the mean of z per coordinate", f"{mu[0].tolist()} (within 0.08)",
                 f"{[round(m, 4) for m in mean.tolist()]}",
                 "eps must have mean 0 (a standard normal), and z is mu plus sigma * eps")

        # 4. mu and logvar different on every row: (z - mu) / sigma is a standard normal
        g = _gen(seed + 7)
        n, L = 6000, 3
        mu = 3 * torch.randn(n, L, generator=g)
        logvar = 2 * torch.rand(n, L, generator=g) - 1.5
        z = as_tensor(name, run(mu, logvar), "z", shape=(n, L), dtype_float=True).detach()
        eps = (z.double() - mu.double()) / (0.5 * logvar.double()).exp()
        case = (f"{n} rows of random mu and logvar (seed {seed}): eps = (z - mu) / "
                "exp(logvar / 2) should be a standard normal")
        if not (eps.std() > 0.01):
            fail(name, case, "eps with standard deviation about 1", "no spread", no_noise)
        if abs(eps.mean().item()) > 0.05 or abs(eps.std().item() - 1) > 0.05:
            fail(name, case, "mean 0 and standard deviation 1 (within 0.05)",
                 f"mean {eps.mean().item():.3f}, standard deviation {eps.std().item():.3f}",
                 "use each row's own mu and logvar, and scale the noise by sigma = "
                 "exp(logvar / 2)")

        # 5. independence: no noise draw shared between coordinates or rows
        n, L = 4000, 4
        z = as_tensor(name, run(torch.zeros(n, L), torch.zeros(n, L)), "z", shape=(n, L),
                      dtype_float=True).detach().double()
        if not (z.std(0) > 0.01).all():
            fail(name, f"{n} samples with mu = 0, logvar = 0 ({L} coordinates)",
                 "standard deviation 1 in every column", f"{z.std(0).tolist()}", no_noise)
        cross = torch.corrcoef(z.T) - torch.eye(L, dtype=z.dtype)              # (L, L)
        if cross.abs().max() > 0.1:
            i, j = divmod(int(cross.abs().argmax()), L)
            fail(name, f"{n} samples with mu = 0, logvar = 0: correlation of coordinates "
                 f"{i} and {j} across the rows", "about 0 (independent noise, below 0.1)",
                 f"{cross[i, j].item():.3f}",
                 "every coordinate needs its own noise: eps has the full shape (B, L) of mu, "
                 "not one draw per row shared by its coordinates")
        for label, a, b in [("rows 2k and 2k + 1", z[0::2], z[1::2]),
                            ("the first and the second half of the batch", z[: n // 2],
                             z[n // 2:])]:
            r = _corr(a, b)
            if r.abs().max() > 0.1:
                fail(name, f"{n} samples with mu = 0, logvar = 0: correlation between "
                     f"{label}", "about 0 (independent noise, below 0.1)",
                     f"{[round(v, 3) for v in r.tolist()]}",
                     "every row needs its own noise: draw eps for the whole (B, L) batch at "
                     "once, with no value reused or mirrored between rows")

        # 6. gradients flow to mu and logvar, with the values of the trick
        mu = torch.randn(500, 3, generator=_gen(seed + 1)).requires_grad_()
        logvar = (0.5 * torch.randn(500, 3, generator=_gen(seed + 2))).requires_grad_()
        z = as_tensor(name, run(mu, logvar), "z", shape=(500, 3))
        hint_graph = ("build z from mu and logvar with differentiable torch operations: mu "
                      "plus exp(logvar / 2) times noise drawn on its own. torch.normal, "
                      ".detach() or torch.no_grad() give z without usable gradients")
        if not z.requires_grad:
            fail(name, "gradients of z with respect to mu and logvar",
                 "z connected to mu and logvar in the autograd graph",
                 "z.requires_grad is False", hint_graph)
        call(name, lambda: z.sum().backward(), what="z.sum().backward()")
        grad_mu = torch.zeros_like(mu) if mu.grad is None else mu.grad
        grad_logvar = torch.zeros_like(logvar) if logvar.grad is None else logvar.grad
        expect_close(name, "d z / d mu after z.sum().backward() (should be 1 everywhere)",
                     grad_mu, torch.ones_like(mu), atol=1e-5, hint=hint_graph, what="mu.grad")
        expected = 0.5 * (z - mu).detach()          # d/dlogvar of exp(logvar / 2) * eps
        expect_close(name, "d z / d logvar after z.sum().backward() (should be "
                     "0.5 * exp(0.5 * logvar) * eps = (z - mu) / 2)", grad_logvar, expected,
                     atol=1e-4, hint=hint_graph, what="logvar.grad")

        # 7. fresh noise at every call
        mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
        z1, z2 = run(mu, logvar), run(mu, logvar)
        if torch.equal(torch.as_tensor(z1), torch.as_tensor(z2)):
            fail(name, "two calls with the same mu and logvar", "two different random samples",
                 "the same z twice", "draw a new eps inside the function at every call "
                 "(do not reseed the generator there)")
    passed(name, "shape, zero-variance case, mean and std of 20000 samples, per-row mu and "
                 "logvar, independent noise across coordinates and rows, gradients to mu "
                 "and logvar, fresh noise")


# -- 2. the KL term in closed form ------------------------------------------------------------

def _kl_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over the latent axis, (B, L) -> (B,)."""
    mu, logvar = mu.double(), logvar.double()
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)


def _kl_cases(seed: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    cases = [
        ("mu = 0, logvar = 0 (q is the prior: KL = 0)", torch.zeros(3, 2), torch.zeros(3, 2)),
        ("mu = [[1, -2]], logvar = [[0, 0]]", torch.tensor([[1.0, -2.0]]), torch.zeros(1, 2)),
        ("mu = [[0, 0]], logvar = [[-1, 2]]", torch.zeros(1, 2), torch.tensor([[-1.0, 2.0]])),
    ]
    for k, (b, l) in enumerate(((5, 4), (8, 2), (3, 7))):
        g = _gen(seed + 10 + k)
        cases.append((f"random mu and logvar of shape ({b}, {l}) (seed {seed})",
                      torch.randn(b, l, generator=g), 0.8 * torch.randn(b, l, generator=g)))
    return cases


def check_kl_divergence(kl_divergence, seed: int = 0) -> None:
    """``kl_divergence(mu, logvar)``: (B, L) x2 -> (B,) KL(q(z|x) || N(0, I)) per example."""
    name = "check_kl_divergence"
    require_callable(name, kl_divergence, "kl_divergence", n_args=2)
    _not_itself(name, kl_divergence, "kl_divergence")
    cases = _kl_cases(seed)
    for case, mu, logvar in cases:
        got = call(name, kl_divergence, mu.clone(), logvar.clone(),
                   what="kl_divergence(mu, logvar)", bans=BANS[name])
        expected = _kl_reference(mu, logvar)
        per_dim = 0.5 * (mu.double() ** 2 + logvar.double().exp() - 1 - logvar.double())
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hint = "return one KL value per example: sum over the latent axis only (dim=1)"
            if got.dim() == 0:
                hint = ("you returned one number for the whole batch; sum over the latent "
                        "axis only, to get shape (B,)")
            fail(name, f"{case}: the output has the wrong shape",
                 f"shape {tuple(expected.shape)}", f"shape {tuple(got.shape)}", hint)
        hint = _diagnose(got, [
            (-expected, "the sign is flipped: KL is never negative; it is "
                        "0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)"),
            (2 * expected, "the factor 1/2 is missing"),
            (per_dim.mean(1), "you averaged over the latent axis; KL of independent "
                              "coordinates adds up: sum over that axis"),
            (0.5 * (mu.double() ** 2 + (2 * logvar.double()).exp() - 1
                    - 2 * logvar.double()).sum(1),
             "you treated logvar as log(sigma); it is log(sigma^2), so sigma^2 = exp(logvar)"),
            (0.5 * (logvar.double().exp() - 1 - logvar.double()).sum(1),
             "the mu^2 term is missing: a mean away from 0 costs KL too"),
        ], "KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) per "
           "coordinate, with sigma^2 = exp(logvar); sum over the latent axis")
        expect_close(name, case, got, expected, atol=1e-5, hint=hint, what="the KL values")
    passed(name, f"{len(cases)} cases match the closed form of KL(N(mu, sigma^2) || N(0, I))")


# -- 3. the negative ELBO and its two parts ---------------------------------------------------

def _elbo_reference(x, x_logits, mu, logvar):
    recon = F.binary_cross_entropy_with_logits(x_logits.double(), x.double(),
                                               reduction="none").flatten(1).sum(1)  # (B,)
    kl = _kl_reference(mu, logvar)                                                # (B,)
    return recon, kl


def _elbo_cases(seed: int = 0):
    cases = []
    for k, (b, side, l) in enumerate(((4, 8, 2), (6, 8, 3), (1, 8, 2), (5, 4, 6))):
        g = _gen(seed + 20 + k)
        x = (torch.rand(b, 1, side, side, generator=g) > 0.5).float()      # binary pixels
        cases.append((f"x of shape ({b}, 1, {side}, {side}) with 0/1 pixels, latent size {l} "
                      f"(seed {seed})", x, 2 * torch.randn(b, 1, side, side, generator=g),
                      torch.randn(b, l, generator=g), 0.5 * torch.randn(b, l, generator=g)))
    return cases


def check_negative_elbo(negative_elbo, seed: int = 0) -> None:
    """``negative_elbo(x, x_logits, mu, logvar)`` -> (loss, recon, kl), batch means.

    recon: Bernoulli -log p(x|z) = binary cross-entropy with logits, summed over pixels;
    kl: the closed-form KL summed over the latent axis; loss = recon + kl.
    """
    name = "check_negative_elbo"
    require_callable(name, negative_elbo, "negative_elbo", n_args=4)
    _not_itself(name, negative_elbo, "negative_elbo")
    what = "negative_elbo(x, x_logits, mu, logvar)"
    cases = _elbo_cases(seed)
    for case, x, x_logits, mu, logvar in cases:
        x_logits = x_logits.clone().requires_grad_()
        out = call(name, negative_elbo, x.clone(), x_logits, mu.clone(), logvar.clone(),
                   what=what, bans=BANS[name])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            fail(name, f"{case}: what negative_elbo returns", "a tuple (loss, recon, kl)",
                 _describe(out), "return the three 0-d tensors in this order: the loss, "
                                 "the reconstruction part, the KL part")
        loss, recon, kl = out
        r, k = _elbo_reference(x, x_logits.detach(), mu, logvar)
        n_pixels = x[0].numel()
        recon_hint = _diagnose(recon, [
            (r.mean() / n_pixels, "you averaged the cross-entropy over pixels; sum it over "
                                  "the pixels of each image (one number per image), then "
                                  "average over the batch"),
            (r.sum(), "you summed over the batch too; average over the batch"),
            ((torch.sigmoid(x_logits.detach().double()) - x.double()).pow(2)
             .flatten(1).sum(1).mean(),
             "this is a squared error; the Bernoulli decoder's -log p(x|z) is the binary "
             "cross-entropy, computed from the logits"),
        ], "recon is the binary cross-entropy of the logits against the pixels, summed over "
           "the pixels of each image, then averaged over the batch")
        expect_close(name, f"{case}: recon, the reconstruction part", recon, r.mean(),
                     atol=1e-4, hint=recon_hint, what="recon")
        kl_hint = _diagnose(kl, [
            (k.sum(), "you summed the KL over the batch too; average over the batch"),
            (-k.mean(), "the KL has the wrong sign: it is >= 0"),
        ], "kl is your kl_divergence (one value per example), averaged over the batch")
        expect_close(name, f"{case}: kl, the KL part", kl, k.mean(), atol=1e-4, hint=kl_hint,
                     what="kl")
        loss_hint = _diagnose(loss, [
            (r.mean() - k.mean(), "the loss is recon + kl (the ELBO is recon-likelihood minus "
                                  "KL; its negative adds them)"),
            (r.mean(), "the KL term is missing from the loss"),
            (-(r.mean() + k.mean()), "you returned the ELBO; the loss to minimise is its "
                                     "negative, recon + kl"),
        ], "loss = recon + kl")
        expect_close(name, f"{case}: loss", loss, r.mean() + k.mean(), atol=1e-4,
                     hint=loss_hint, what="loss")
        if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            fail(name, f"{case}: gradients of the loss", "a tensor connected to x_logits",
                 f"{type(loss).__name__} without a gradient",
                 "compute with torch operations and do not call .item() or .detach(): the "
                 "optimiser needs loss.backward()")
    passed(name, f"{len(cases)} cases: recon (summed BCE), kl and loss = recon + kl match")


# -- 4. the encoder -------------------------------------------------------------------------------

def _linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    return sorted((m.in_features, m.out_features) for m in module.modules()
                  if isinstance(m, nn.Linear))


def check_encoder(Encoder, seed: int = 0) -> None:
    """``Encoder(n_latent, n_pixels, n_hidden)``: an nn.Module, images (B, 1, H, W) ->
    (mu, logvar), each (B, n_latent).

    Checked for three sizes (8x8 and 4x4 images, latent sizes 2, 5 and 3, widths 256,
    32 and 12): the layers the instructions name (four nn.Linear of the right sizes), a
    non-linear body, the output shapes, two separate heads, per-image outputs, gradients
    reaching the weights from both outputs, and that logvar can become negative (it is a
    logarithm: any real number).
    """
    name = "check_encoder"
    bans = BANS[name]
    if isinstance(Encoder, nn.Module) or not callable(Encoder):
        fail(name, "Encoder should be a class", "the class itself (check_encoder(Encoder))",
             f"{type(Encoder).__name__}", "pass the class, not an instance: check_encoder(Encoder)")
    _not_itself(name, Encoder, "Encoder")
    if isinstance(Encoder, type):
        scan_answer(name, Encoder, bans, "Encoder")
    with torch.random.fork_rng(devices=[]):
        for n_latent, side, n_hidden in ((2, 8, None), (5, 8, 32), (3, 4, 12)):
            torch.manual_seed(seed + n_latent)
            n_pixels = side * side
            kwargs = {"n_latent": n_latent}
            if n_hidden is not None:
                kwargs.update(n_pixels=n_pixels, n_hidden=n_hidden)
            args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            enc = call(name, lambda: Encoder(**kwargs), what=f"Encoder({args})", bans=bans)
            if not isinstance(enc, nn.Module):
                fail(name, "Encoder(...) should build an nn.Module", "an nn.Module",
                     type(enc).__name__, "write class Encoder(nn.Module) and call "
                     "super().__init__() first")
            if not any(True for _ in enc.parameters()):
                fail(name, f"Encoder({args}) parameters", "some learnable layers",
                     "no parameters", "create the nn.Linear layers in __init__ as attributes")
            width = 256 if n_hidden is None else n_hidden
            want = sorted([(n_pixels, width), (width, width), (width, n_latent),
                           (width, n_latent)])
            got_shapes = _linear_shapes(enc)
            if got_shapes != want:
                fail(name, f"Encoder({args}): its nn.Linear layers as (in, out) sizes", want,
                     got_shapes, "the body has two hidden layers, n_pixels -> n_hidden and "
                     "n_hidden -> n_hidden, and each head maps n_hidden -> n_latent; build "
                     "them from the constructor's arguments, not from fixed numbers")
            x = torch.rand(7, 1, side, side, generator=_gen(seed + n_latent))
            case = f"Encoder({args}) on x of shape (7, 1, {side}, {side})"
            out = call(name, enc, x, what=f"{case}: encoder(x)", bans=bans)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fail(name, f"{case}: what forward returns", "a pair (mu, logvar)",
                     _describe(out), "return two tensors, one from each head: mu first, "
                                     "then logvar")
            mu, logvar = out
            as_tensor(name, mu, f"{case}: mu", shape=(7, n_latent), dtype_float=True)
            as_tensor(name, logvar, f"{case}: logvar", shape=(7, n_latent), dtype_float=True)
            if torch.allclose(mu, logvar):
                fail(name, f"{case}: mu and logvar", "two different outputs",
                     "the same values twice",
                     "use two separate nn.Linear heads, one for mu and one for logvar")
            # 1. each image is encoded on its own
            mu0, logvar0 = call(name, enc, x[2:3], what=f"{case}: encoder(x[2:3])", bans=bans)
            expect_close(name, f"{case}: encoding image 2 alone vs in the batch", mu0, mu[2:3],
                         atol=1e-5, what="mu of image 2",
                         hint="flatten each image on its own, keeping the batch axis: "
                              "(B, 1, H, W) -> (B, H * W); a flatten of the whole batch "
                              "mixes images")
            # 2. the body is not linear: ReLU between the layers
            a, b = x[:3], x[3:6]
            pair = torch.cat([a, b, a + b, torch.zeros_like(a)])
            m_pair = call(name, enc, pair, what=f"{case}: encoder(x)", bans=bans)[0].detach()
            gap = (m_pair[:3] + m_pair[3:6] - m_pair[6:9] - m_pair[9:]).abs().max().item()
            if gap < 1e-5:
                fail(name, f"{case}: is the encoder linear in x?",
                     "a non-linear body (ReLU after each hidden layer)",
                     f"enc(a) + enc(b) = enc(a + b) + enc(0) to within {gap:.2g}",
                     "put a ReLU after each of the two hidden layers of the body")
            # 3. gradients reach the weights from both heads
            for part, value in (("mu", mu), ("logvar", logvar)):
                if not value.requires_grad:
                    fail(name, f"{case}: gradients from {part}",
                         "a tensor connected to the weights",
                         f"{part}.requires_grad is False", "compute the outputs from the layers "
                         "with torch operations, without .detach() or torch.no_grad()")
                grads = torch.autograd.grad(value.sum(), list(enc.parameters()),
                                            retain_graph=True, allow_unused=True)
                if all(g is None or g.abs().sum() == 0 for g in grads):
                    hint = ("compute the outputs from the layers with torch operations, "
                            "without .detach() or torch.no_grad()")
                    if part == "logvar" and bool((value >= 0).all()):
                        hint = ("logvar is never negative here and passes no gradient: it is "
                                "the log of a variance, any real number, so do not pass it "
                                "through ReLU, softplus or exp")
                    fail(name, f"{case}: gradients from {part}",
                         "non-zero gradients for the weights",
                         "no gradient reaches any weight", hint)
        # 4. logvar is a free real number: a few steps of Adam can make it negative
        torch.manual_seed(seed)
        enc = call(name, lambda: Encoder(n_latent=2), what="Encoder(n_latent=2)", bans=bans)
        x = torch.rand(16, 1, 8, 8, generator=_gen(seed + 3))
        opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
        with guarded(name, bans, "Encoder.forward"):
            for _ in range(100):
                _, logvar = enc(x)
                loss = (logvar + 3.0).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                lowest = enc(x)[1].min().item()
        if lowest > -1.0:
            fail(name, "training the encoder for 100 Adam steps to output logvar = -3",
                 "logvar below -1 after training", f"smallest logvar {lowest:.3f}",
                 "logvar is the log of a variance, any real number: do not pass it through "
                 "ReLU, softplus or exp; the last layer of the logvar head is a plain nn.Linear")
    passed(name, "three sizes: layers, shapes, two heads, per-image encoding, a non-linear "
                 "body, gradients, negative logvar reachable")


# -- 5. one training step ------------------------------------------------------------------------

def _reference_step(model, optimizer, x, beta):
    """One step of the reference: forward, negative ELBO (recon + beta * kl), backward, step."""
    x_logits, mu, logvar = model(x)
    # float32 like the learner's code, so that Adam sees the same gradients
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")  # (B, 1, H, W)
    recon = bce.flatten(1).sum(1).mean()
    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean()
    loss = recon + beta * kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


def _as_floats(name: str, out, step: int) -> dict[str, float]:
    if not isinstance(out, Mapping) or not {"loss", "recon", "kl"} <= set(out):
        keys = sorted(out) if isinstance(out, Mapping) else type(out).__name__
        fail(name, f"step {step}: what train_step returns",
             "a dict with keys 'loss', 'recon' and 'kl'", f"{keys}",
             "return a dict of the three numbers under the keys 'loss', 'recon' and 'kl'")
    return {k: as_number(name, out[k], f"step {step}: the value of {k!r}")
            for k in ("loss", "recon", "kl")}


def _run_steps(step_fn, beta: float, n_steps: int, name: str | None, seed: int = 0,
               n_hidden: int = 16, n_latent: int = 2, batch: int = 8):
    from coursekit.models.vae import VAE, VAEConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VAE(VAEConfig(n_hidden=n_hidden, n_latent=n_latent))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x = (torch.rand(batch, 1, 8, 8, generator=_gen(seed + 4)) > 0.5).float()
        records = []
        for step in range(n_steps):
            if name is None:
                out = step_fn(model, opt, x, beta)
            else:
                out = call(name, step_fn, model, opt, x, beta,
                           what="train_step(model, optimizer, x, beta)", bans=BANS[name])
                out = _as_floats(name, out, step)
            records.append(out)
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
    return records, params


def check_train_step(train_step, seed: int = 0) -> None:
    """``train_step(model, optimizer, x, beta)`` -> {"loss", "recon", "kl"} as floats.

    Runs 3 steps on a small VAE from ``coursekit.models.vae`` with the same seed as the
    reference, for beta = 1, 0.5, 0 and 3 and two model sizes, and compares the numbers
    and the weights.
    """
    name = "check_train_step"
    require_callable(name, train_step, "train_step", n_args=4)
    _not_itself(name, train_step, "train_step")
    runs = [(1.0, dict()), (0.5, dict()), (0.0, dict(n_hidden=12, n_latent=3, batch=5)),
            (3.0, dict(n_hidden=12, n_latent=3, batch=5))]
    for k, (beta, sizes) in enumerate(runs):
        run_seed = seed + k
        got, params = _run_steps(train_step, beta, 3, name, run_seed, **sizes)
        ref, ref_params = _run_steps(_reference_step, beta, 3, None, run_seed, **sizes)
        label = f"beta = {beta}" + (f", latent size {sizes['n_latent']}, batch "
                                    f"{sizes['batch']}" if sizes else "") + f" (seed {run_seed})"
        for step, (g, r) in enumerate(zip(got, ref)):
            for key in ("recon", "kl", "loss"):
                if not math.isclose(g[key], r[key], rel_tol=1e-4, abs_tol=1e-4):
                    hint = {
                        "recon": "call the model once per step and compute recon from its "
                                 "logits (cross-entropy summed over pixels, averaged over the "
                                 "batch)",
                        "kl": "compute kl from the mu and logvar of the same model call",
                        "loss": "the loss weights the KL by the beta argument: recon plus "
                                "beta times kl",
                    }[key]
                    if step > 0 and all(math.isclose(got[0][kk], ref[0][kk], rel_tol=1e-4,
                                                     abs_tol=1e-4) for kk in r):
                        hint = ("step 0 matches but a later one does not: once per step, "
                                "run the model once, then zero the gradients, backpropagate "
                                "and take one optimiser step")
                    fail(name, f"{label}, step {step}: {key}", f"{r[key]:.5f}",
                         f"{g[key]:.5f}", hint)
        if not torch.allclose(params, ref_params, atol=1e-5):
            fail(name, f"{label}: the weights after 3 steps",
                 "the weights after 3 Adam steps",
                 f"weights that differ by up to {(params - ref_params).abs().max().item():.3g}",
                 "zero the gradients, backpropagate and step the optimiser once each per "
                 "step, and minimise recon + beta * kl")
    passed(name, "3 steps for beta = 1, 0.5, 0 and 3 and two model sizes: losses and "
                 "weights match the reference")


__all__ = ["check_reparameterise", "check_kl_divergence", "check_negative_elbo",
           "check_encoder", "check_train_step", "CheckFailure"]
