"""Checks for exercises/05_vaes.ipynb, one ``check_<exercise>`` per exercise.

The references are written here from the formulas of "Auto-Encoding Variational Bayes"
(Kingma & Welling, 2013), independently of ``coursekit.models.vae`` (the tests compare
both with ``torch.distributions``). Random cases run inside ``torch.random.fork_rng``,
so a check never changes the learner's random numbers. When an answer is wrong, a check
tries the usual mistakes on the same case and names the one the answer reproduces.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from coursekit.checks.assertions import (CheckFailure, as_tensor, call, expect_close, fail,
                                         passed, require_callable)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(a, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """True when ``a`` matches ``b`` in shape and values; used to recognise mistakes."""
    try:
        a = torch.as_tensor(a).detach().double()
        return a.shape == b.shape and torch.allclose(a, b.double(), atol=atol, rtol=rtol)
    except (TypeError, RuntimeError, ValueError):
        return False


def _describe(value) -> str:
    """What a learner returned, in a few words: its type (and length for a sequence)."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__


def _diagnose(got, wrong_answers: list[tuple[torch.Tensor, str]], default: str) -> str:
    """The hint for the first known mistake that ``got`` reproduces, else ``default``."""
    for value, hint in wrong_answers:
        if _close(got, value):
            return hint
    return default


# -- 1. the reparameterisation trick --------------------------------------------------------

def check_reparameterise(reparameterise) -> None:
    """``reparameterise(mu, logvar)``: (B, L) x2 -> z = mu + exp(logvar / 2) * eps, (B, L).

    Checked: the shape; z = mu when the variance is tiny; the mean and standard deviation
    of many samples; that gradients reach both mu and logvar with the values the trick
    gives (dz/dmu = 1, dz/dlogvar = (z - mu) / 2); fresh noise on every call.
    """
    name = "check_reparameterise"
    require_callable(name, reparameterise, "reparameterise", n_args=2)
    what = "reparameterise(mu, logvar)"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        # 1. shape and type
        mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
        z = call(name, reparameterise, mu, logvar, what=what)
        as_tensor(name, z, "z", shape=(4, 3), dtype_float=True)

        # 2. a (nearly) zero variance leaves z at the mean
        mu = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
        z = call(name, reparameterise, mu, torch.full_like(mu, -60.0), what=what)
        expect_close(name, "mu = [[0.5, -1, 2], [3, 0, -0.25]], logvar = -60 (sigma ~ 1e-13): "
                     "z should equal mu", z, mu, atol=1e-5,
                     hint="z is the mean plus noise scaled by sigma: z = mu + sigma * eps",
                     what="z")

        # 3. many samples: mean mu, standard deviation sigma = exp(logvar / 2)
        n = 20000
        mu = torch.tensor([1.5, -2.0]).expand(n, 2).clone()
        sigma = torch.tensor([0.5, 2.0])
        logvar = (2 * sigma.log()).expand(n, 2).clone()
        z = as_tensor(name, call(name, reparameterise, mu, logvar, what=what), "z",
                      shape=(n, 2), dtype_float=True).detach()
        mean, std = z.mean(0), z.std(0)
        case = (f"{n} samples with mu = [1.5, -2], logvar = [{logvar[0, 0].item():.3f}, "
                f"{logvar[0, 1].item():.3f}] (sigma = [0.5, 2])")
        if not (std > 0.01).all():
            fail(name, case + ": the spread of z", "standard deviations about [0.5, 2.0]",
                 f"{[round(s, 4) for s in std.tolist()]}",
                 "z has no noise: draw eps = torch.randn_like(mu), one independent value per "
                 "entry, and return mu + sigma * eps")
        if not torch.allclose(std, sigma, rtol=0.04):
            hint = "sigma is exp(logvar / 2); draw eps from a standard normal (torch.randn_like)"
            if torch.allclose(std, sigma ** 2, rtol=0.04):
                hint = ("your noise is scaled by exp(logvar), the variance; the standard "
                        "deviation is exp(0.5 * logvar)")
            elif torch.allclose(std, sigma.sqrt(), rtol=0.04):
                hint = ("your noise is scaled by exp(logvar / 4); the standard deviation is "
                        "exp(0.5 * logvar)")
            elif torch.allclose(std, sigma / math.sqrt(12), rtol=0.06):
                hint = ("eps looks uniform (torch.rand); use a standard normal: "
                        "torch.randn_like(mu)")
            fail(name, case + ": the standard deviation of z per coordinate",
                 f"{sigma.tolist()} (within 4%)", f"{[round(s, 4) for s in std.tolist()]}", hint)
        if not torch.allclose(mean, mu[0], atol=0.08):
            fail(name, case + ": the mean of z per coordinate", f"{mu[0].tolist()} (within 0.08)",
                 f"{[round(m, 4) for m in mean.tolist()]}",
                 "eps must have mean 0 (a standard normal, torch.randn_like(mu)), and z = "
                 "mu + sigma * eps")

        # 4. gradients flow to mu and logvar, with the values of the trick
        mu = torch.randn(500, 3, generator=_gen(1)).requires_grad_()
        logvar = (0.5 * torch.randn(500, 3, generator=_gen(2))).requires_grad_()
        z = call(name, reparameterise, mu, logvar, what=what)
        z = as_tensor(name, z, "z", shape=(500, 3))
        hint_graph = ("build z from mu and logvar with torch operations: "
                      "z = mu + torch.exp(0.5 * logvar) * eps. torch.normal(mu, std), "
                      "Normal(...).sample(), .detach() or torch.no_grad() give z without "
                      "usable gradients")
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

        # 5. fresh noise at every call
        mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
        z1 = call(name, reparameterise, mu, logvar, what=what)
        z2 = call(name, reparameterise, mu, logvar, what=what)
        if torch.equal(torch.as_tensor(z1), torch.as_tensor(z2)):
            fail(name, "two calls with the same mu and logvar", "two different random samples",
                 "the same z twice", "draw a new eps inside the function at every call")
    passed(name, "shape, zero-variance case, mean and std of 20000 samples, gradients to "
                 "mu and logvar, fresh noise")


# -- 2. the KL term in closed form ------------------------------------------------------------

def _kl_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over the latent axis, (B, L) -> (B,)."""
    mu, logvar = mu.double(), logvar.double()
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)


def _kl_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    cases = [
        ("mu = 0, logvar = 0 (q is the prior: KL = 0)", torch.zeros(3, 2), torch.zeros(3, 2)),
        ("mu = [[1, -2]], logvar = [[0, 0]]", torch.tensor([[1.0, -2.0]]), torch.zeros(1, 2)),
        ("mu = [[0, 0]], logvar = [[-1, 2]]", torch.zeros(1, 2), torch.tensor([[-1.0, 2.0]])),
    ]
    for seed, (b, l) in enumerate(((5, 4), (8, 2))):
        g = _gen(10 + seed)
        cases.append((f"random mu and logvar of shape ({b}, {l})", torch.randn(b, l, generator=g),
                      0.8 * torch.randn(b, l, generator=g)))
    return cases


def check_kl_divergence(kl_divergence) -> None:
    """``kl_divergence(mu, logvar)``: (B, L) x2 -> (B,) KL(q(z|x) || N(0, I)) per example."""
    name = "check_kl_divergence"
    require_callable(name, kl_divergence, "kl_divergence", n_args=2)
    cases = _kl_cases()
    for case, mu, logvar in cases:
        got = call(name, kl_divergence, mu.clone(), logvar.clone(),
                   what="kl_divergence(mu, logvar)")
        expected = _kl_reference(mu, logvar)
        per_dim = 0.5 * (mu.double() ** 2 + logvar.double().exp() - 1 - logvar.double())
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hint = "return one KL value per example: sum over the latent axis only (dim=1)"
            if got.dim() == 0:
                hint = ("you returned one number for the whole batch; sum over the latent "
                        "axis only: (...).sum(dim=1), shape (B,)")
            fail(name, f"{case}: the output has the wrong shape",
                 f"shape {tuple(expected.shape)}", f"shape {tuple(got.shape)}", hint)
        hint = _diagnose(got, [
            (-expected, "the sign is flipped: KL is never negative; it is "
                        "0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)"),
            (2 * expected, "the factor 1/2 is missing"),
            (per_dim.mean(1), "you averaged over the latent axis; KL of independent "
                              "coordinates adds up: use .sum(dim=1)"),
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


def _elbo_cases():
    cases = []
    for seed, (b, l, binary) in enumerate(((4, 2, False), (6, 3, True), (1, 2, False))):
        g = _gen(20 + seed)
        x = torch.rand(b, 1, 8, 8, generator=g)
        if binary:
            x = (x > 0.5).float()
        cases.append((f"x of shape ({b}, 1, 8, 8)" + (" with 0/1 pixels" if binary else "")
                      + f", latent size {l}", x, 2 * torch.randn(b, 1, 8, 8, generator=g),
                      torch.randn(b, l, generator=g), 0.5 * torch.randn(b, l, generator=g)))
    return cases


def check_negative_elbo(negative_elbo) -> None:
    """``negative_elbo(x, x_logits, mu, logvar)`` -> (loss, recon, kl), batch means.

    recon: Bernoulli -log p(x|z) = binary cross-entropy with logits, summed over pixels;
    kl: the closed-form KL summed over the latent axis; loss = recon + kl.
    """
    name = "check_negative_elbo"
    require_callable(name, negative_elbo, "negative_elbo", n_args=4)
    what = "negative_elbo(x, x_logits, mu, logvar)"
    cases = _elbo_cases()
    for case, x, x_logits, mu, logvar in cases:
        x_logits = x_logits.clone().requires_grad_()
        out = call(name, negative_elbo, x.clone(), x_logits, mu.clone(), logvar.clone(), what=what)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            fail(name, f"{case}: what negative_elbo returns", "a tuple (loss, recon, kl)",
                 _describe(out), "end with: return recon + kl, recon, kl")
        loss, recon, kl = out
        r, k = _elbo_reference(x, x_logits.detach(), mu, logvar)
        recon_hint = _diagnose(recon, [
            (r.mean() / 64, "you averaged the cross-entropy over pixels; sum over the pixels "
                            "of each image (reduction='none', then .flatten(1).sum(1)), then "
                            "average over the batch"),
            (r.sum(), "you summed over the batch too; average over the batch (.mean())"),
            ((torch.sigmoid(x_logits.detach().double()) - x.double()).pow(2)
             .flatten(1).sum(1).mean(),
             "this is a squared error; the Bernoulli decoder's -log p(x|z) is the binary "
             "cross-entropy: F.binary_cross_entropy_with_logits"),
        ], "recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction='none') summed "
           "over the pixels of each image, then averaged over the batch")
        expect_close(name, f"{case}: recon, the reconstruction part", recon, r.mean(),
                     atol=1e-4, hint=recon_hint, what="recon")
        kl_hint = _diagnose(kl, [
            (k.sum(), "you summed the KL over the batch too; average over the batch"),
            (-k.mean(), "the KL has the wrong sign: it is >= 0"),
        ], "kl = your kl_divergence(mu, logvar) (one value per example), averaged over the batch")
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

def check_encoder(Encoder) -> None:
    """``Encoder(n_latent=L)``: an nn.Module, images (B, 1, 8, 8) -> (mu, logvar), each (B, L).

    Checked for two latent sizes: the output shapes, two separate heads, per-image
    outputs, gradients reaching the weights from both outputs, and that logvar can
    become negative (it is a logarithm: any real number).
    """
    name = "check_encoder"
    if isinstance(Encoder, nn.Module) or not callable(Encoder):
        fail(name, "Encoder should be a class", "the class itself (check_encoder(Encoder))",
             f"{type(Encoder).__name__}", "pass the class, not an instance: check_encoder(Encoder)")
    with torch.random.fork_rng(devices=[]):
        for n_latent in (2, 5):
            torch.manual_seed(n_latent)
            enc = call(name, lambda: Encoder(n_latent=n_latent),
                       what=f"Encoder(n_latent={n_latent})")
            if not isinstance(enc, nn.Module):
                fail(name, "Encoder(...) should build an nn.Module", "an nn.Module",
                     type(enc).__name__, "write class Encoder(nn.Module) and call "
                     "super().__init__() first")
            if not any(True for _ in enc.parameters()):
                fail(name, f"Encoder(n_latent={n_latent}) parameters", "some learnable layers",
                     "no parameters", "create the nn.Linear layers in __init__ as attributes")
            x = torch.rand(7, 1, 8, 8, generator=_gen(n_latent))
            case = f"Encoder(n_latent={n_latent}) on x of shape (7, 1, 8, 8)"
            out = call(name, enc, x, what=f"{case}: encoder(x)")
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fail(name, f"{case}: what forward returns", "a pair (mu, logvar)",
                     _describe(out), "return two tensors from two output layers: "
                     "return self.to_mu(h), self.to_logvar(h)")
            mu, logvar = out
            as_tensor(name, mu, f"{case}: mu", shape=(7, n_latent), dtype_float=True)
            as_tensor(name, logvar, f"{case}: logvar", shape=(7, n_latent), dtype_float=True)
            if torch.allclose(mu, logvar):
                fail(name, f"{case}: mu and logvar", "two different outputs",
                     "the same values twice",
                     "use two separate nn.Linear heads, one for mu and one for logvar")
            # 1. each image is encoded on its own
            mu0, logvar0 = call(name, enc, x[2:3], what=f"{case}: encoder(x[2:3])")
            expect_close(name, f"{case}: encoding image 2 alone vs in the batch", mu0, mu[2:3],
                         atol=1e-5, what="mu of image 2",
                         hint="flatten each image on its own: rearrange(x, 'b c h w -> b (c h w)') "
                              "or x.flatten(1), not x.view(-1) or a reshape that mixes images")
            # 2. gradients reach the weights from both heads
            for part, value in (("mu", mu), ("logvar", logvar)):
                if not value.requires_grad:
                    fail(name, f"{case}: gradients from {part}",
                         "a tensor connected to the weights",
                         f"{part}.requires_grad is False", "compute the outputs from the layers "
                         "with torch operations, without .detach() or torch.no_grad()")
                grads = torch.autograd.grad(value.sum(), list(enc.parameters()),
                                            retain_graph=True, allow_unused=True)
                if all(g is None or g.abs().sum() == 0 for g in grads):
                    fail(name, f"{case}: gradients from {part}",
                         "non-zero gradients for the weights",
                         "no gradient reaches any weight", "compute the outputs from the "
                         "layers with torch operations, without .detach() or torch.no_grad()")
        # 3. logvar is a free real number: a few steps of Adam can make it negative
        torch.manual_seed(0)
        enc = call(name, lambda: Encoder(n_latent=2), what="Encoder(n_latent=2)")
        x = torch.rand(16, 1, 8, 8, generator=_gen(3))
        opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
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
    passed(name, "latent sizes 2 and 5: shapes, two heads, per-image encoding, gradients, "
                 "negative logvar reachable")


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
             "end with: return {'loss': loss.item(), 'recon': recon.item(), 'kl': kl.item()}")
    try:
        return {k: float(out[k]) for k in ("loss", "recon", "kl")}
    except (TypeError, ValueError, RuntimeError) as err:
        fail(name, f"step {step}: the values of the returned dict", "numbers (use .item())",
             f"{err}", "return plain floats: loss.item(), recon.item(), kl.item()")
        raise  # unreachable: fail raises


def _run_steps(step_fn, beta: float, n_steps: int, name: str | None):
    from coursekit.models.vae import VAE, VAEConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VAE(VAEConfig(n_hidden=16, n_latent=2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x = torch.rand(8, 1, 8, 8, generator=_gen(4))
        records = []
        for step in range(n_steps):
            if name is None:
                out = step_fn(model, opt, x, beta)
            else:
                out = call(name, step_fn, model, opt, x, beta,
                           what="train_step(model, optimizer, x, beta)")
                out = _as_floats(name, out, step)
            records.append(out)
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
    return records, params


def check_train_step(train_step) -> None:
    """``train_step(model, optimizer, x, beta)`` -> {"loss", "recon", "kl"} as floats.

    Runs 3 steps on a small VAE from ``coursekit.models.vae`` with the same seed as the
    reference, for beta = 1 and beta = 0.5, and compares the numbers and the weights.
    """
    name = "check_train_step"
    require_callable(name, train_step, "train_step", n_args=4)
    for beta in (1.0, 0.5):
        got, params = _run_steps(train_step, beta, 3, name)
        ref, ref_params = _run_steps(_reference_step, beta, 3, None)
        for step, (g, r) in enumerate(zip(got, ref)):
            for key in ("recon", "kl", "loss"):
                if not math.isclose(g[key], r[key], rel_tol=1e-4, abs_tol=1e-4):
                    hint = {
                        "recon": "call model(x) once per step and compute recon from its "
                                 "x_logits (BCE summed over pixels, averaged over the batch)",
                        "kl": "compute kl from the mu and logvar of the same model(x) call",
                        "loss": "loss = recon + beta * kl (use the beta argument)",
                    }[key]
                    if step > 0 and all(math.isclose(got[0][k], ref[0][k], rel_tol=1e-4,
                                                     abs_tol=1e-4) for k in r):
                        hint = ("step 0 matches but a later one does not: once per step, "
                                "call model(x) once, then optimizer.zero_grad(), "
                                "loss.backward() and optimizer.step()")
                    fail(name, f"beta = {beta}, step {step}: {key}", f"{r[key]:.5f}",
                         f"{g[key]:.5f}", hint)
        if not torch.allclose(params, ref_params, atol=1e-5):
            fail(name, f"beta = {beta}: the weights after 3 steps",
                 "the weights after 3 Adam steps",
                 f"weights that differ by up to {(params - ref_params).abs().max().item():.3g}",
                 "call optimizer.zero_grad(), loss.backward() and optimizer.step() once each per "
                 "step, and minimise loss = recon + beta * kl")
    passed(name, "3 steps for beta = 1 and 0.5: losses and weights match the reference")


__all__ = ["check_reparameterise", "check_kl_divergence", "check_negative_elbo",
           "check_encoder", "check_train_step", "CheckFailure"]
