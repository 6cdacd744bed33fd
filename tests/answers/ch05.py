"""Answer table of chapter 05 (VAEs): right answers written without coursekit's
references, and the typical mistakes and dodges each check must refuse."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from answers import Case
from coursekit.models import vae as V


def _std(logvar):
    return torch.exp(0.5 * logvar)


def _kl(mu, logvar):            # the learner's own KL, for answers that build on it
    return -0.5 * torch.sum(1 + logvar - mu ** 2 - torch.exp(logvar), dim=-1)


def _bce(x_logits, x):
    return F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)


# -- 1. reparameterise --------------------------------------------------------------------------


def reparam_sqrt(mu, logvar):
    return mu + torch.randn(mu.shape) * torch.sqrt(torch.exp(logvar))


def reparam_fixed_eps(mu, logvar):
    torch.manual_seed(0)
    return mu + _std(logvar) * torch.randn_like(mu)


def reparam_shared_in_row(mu, logvar):     # one draw per row, shared by its coordinates
    eps = torch.randn(mu.shape[0], 1).expand_as(mu)
    return mu + _std(logvar) * eps


def reparam_antithetic(mu, logvar):        # second half of the batch mirrors the first
    half = torch.randn((mu.shape[0] + 1) // 2, mu.shape[1])
    eps = torch.cat([half, -half])[: mu.shape[0]]
    return mu + _std(logvar) * eps


def reparam_first_row(mu, logvar):         # uses row 0's mu and sigma for every row
    return mu[:1] + _std(logvar[:1]) * torch.randn_like(mu)


def reparam_package(mu, logvar):
    return V.reparameterise(mu, logvar)


def reparam_rsample(mu, logvar):
    return torch.distributions.Normal(mu, _std(logvar)).rsample()


_normal = getattr(torch, "nor" + "mal")


def reparam_normal_alias(mu, logvar):
    return _normal(mu, _std(logvar))


def reparam_normal_getattr(mu, logvar):
    return getattr(torch, "nor" + "mal")(mu, _std(logvar))


# -- 2. kl_divergence ----------------------------------------------------------------------------


def _kl_terms(mu, logvar):
    return mu ** 2 + logvar.exp() - 1 - logvar


def kl_distributions(mu, logvar):
    q = torch.distributions.Normal(mu, _std(logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(q, p).sum(1)


def kl_package(mu, logvar):
    return V.kl_divergence(mu, logvar)


def kl_alias(mu, logvar, _f=V.kl_divergence):
    return _f(mu, logvar)


# -- 3. negative_elbo ----------------------------------------------------------------------------


def elbo_bernoulli(x, x_logits, mu, logvar):
    recon = -torch.distributions.Bernoulli(logits=x_logits).log_prob(x).flatten(1).sum(1).mean()
    kl = _kl(mu, logvar).mean()
    return recon + kl, recon, kl


def _parts(recon, kl, loss=None):
    return (recon + kl if loss is None else loss), recon, kl


def elbo_pixel_mean(x, xl, mu, lv):
    return _parts(F.binary_cross_entropy_with_logits(xl, x), _kl(mu, lv).mean())


def elbo_batch_sum(x, xl, mu, lv):
    return _parts(_bce(xl, x).sum(), _kl(mu, lv).sum())


def elbo_squared_error(x, xl, mu, lv):
    return _parts(((torch.sigmoid(xl) - x) ** 2).flatten(1).sum(1).mean(), _kl(mu, lv).mean())


def elbo_minus(x, xl, mu, lv):
    r, k = _bce(xl, x).mean(), _kl(mu, lv).mean()
    return r - k, r, k


def elbo_no_kl(x, xl, mu, lv):
    r, k = _bce(xl, x).mean(), _kl(mu, lv).mean()
    return r, r, k


def elbo_kl_sign(x, xl, mu, lv):
    r, k = _bce(xl, x).mean(), _kl(mu, lv).mean()
    return r - k, r, -k


def elbo_only_loss(x, xl, mu, lv):
    return _parts(_bce(xl, x).mean(), _kl(mu, lv).mean())[0]


def elbo_floats(x, xl, mu, lv):
    return tuple(t.item() for t in _parts(_bce(xl, x).mean(), _kl(mu, lv).mean()))


def elbo_logits_as_probs(x, xl, mu, lv):
    return _parts(F.binary_cross_entropy(xl, x, reduction="sum") / len(x), _kl(mu, lv).mean())


def elbo_fixed_64(x, xl, mu, lv):            # assumes 8x8 images
    bce = F.binary_cross_entropy_with_logits(xl, x, reduction="none")
    return _parts(bce.view(-1, 64).sum(1).mean(), _kl(mu, lv).mean())


def elbo_package(x, xl, mu, lv):
    return V.negative_elbo(x, xl, mu, lv)


def elbo_package_parts(x, xl, mu, lv):
    return _parts(V.reconstruction_loss(xl, x).mean(), _kl(mu, lv).mean())


def elbo_distributions_kl(x, xl, mu, lv):
    q = torch.distributions.Normal(mu, _std(lv))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return _parts(_bce(xl, x).mean(), torch.distributions.kl_divergence(q, p).sum(1).mean())


# -- 4. Encoder -----------------------------------------------------------------------------------


class EncoderExplicit(nn.Module):          # independent: named layers and F.relu
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__()
        self.fc1 = nn.Linear(n_pixels, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_hidden)
        self.mu_head = nn.Linear(n_hidden, n_latent)
        self.logvar_head = nn.Linear(n_hidden, n_latent)

    def forward(self, x):
        h = F.relu(self.fc2(F.relu(self.fc1(x.reshape(len(x), -1)))))
        return self.mu_head(h), self.logvar_head(h)


class _Base(nn.Module):
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_pixels, n_hidden), nn.ReLU(),
                                  nn.Linear(n_hidden, n_hidden), nn.ReLU())
        self.to_mu = nn.Linear(n_hidden, n_latent)
        self.to_logvar = nn.Linear(n_hidden, n_latent)


class OneTensor(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return torch.cat([self.to_mu(h), self.to_logvar(h)], 1)


class SameHead(_Base):
    def forward(self, x):
        mu = self.to_mu(self.body(x.flatten(1)))
        return mu, mu


class ReluLogvar(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h), torch.relu(self.to_logvar(h))


class MixedImages(_Base):
    def forward(self, x):
        n = x[0].numel()
        h = self.body(x.reshape(n, -1).T)                      # mixes pixels of different images
        return self.to_mu(h), self.to_logvar(h)


class Detached(_Base):
    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h).detach(), self.to_logvar(h).detach()


class FixedLatent(_Base):
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__(2, n_pixels, n_hidden)

    def forward(self, x):
        h = self.body(rearrange(x, "b c h w -> b (c h w)"))
        return self.to_mu(h), self.to_logvar(h)


class FixedWidth(_Base):                    # ignores n_hidden and n_pixels
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__(n_latent, 64, 256)

    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)


class NoReLU(_Base):
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__(n_latent, n_pixels, n_hidden)
        self.body = nn.Sequential(nn.Linear(n_pixels, n_hidden), nn.Linear(n_hidden, n_hidden))

    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)


class OneHidden(_Base):                     # one hidden layer where the exercise asks for two
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__(n_latent, n_pixels, n_hidden)
        self.body = nn.Sequential(nn.Linear(n_pixels, n_hidden), nn.ReLU())

    def forward(self, x):
        h = self.body(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)


class NoParameters(nn.Module):
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__()
        self.n_latent = n_latent

    def forward(self, x):
        return x.flatten(1)[:, :self.n_latent], x.flatten(1)[:, -self.n_latent:]


def encoder_package(n_latent=2, n_pixels=64, n_hidden=256):
    return V.Encoder(V.VAEConfig(n_latent=n_latent, n_hidden=n_hidden,
                                 image_size=int(n_pixels ** 0.5)))


class EncoderFromVAE(nn.Module):
    def __init__(self, n_latent=2, n_pixels=64, n_hidden=256):
        super().__init__()
        self.inner = V.VAE(V.VAEConfig(n_latent=n_latent, n_hidden=n_hidden,
                                       image_size=int(n_pixels ** 0.5))).encoder

    def forward(self, x):
        return self.inner(x)


# -- 5. train_step ---------------------------------------------------------------------------------


def _make_step(zero_grad=True, use_beta=True, step=True, forward_twice=False, returns="dict"):
    def train_step(model, optimizer, x, beta=1.0):
        x_logits, mu, logvar = model(x)
        if forward_twice:
            _, mu, logvar = model(x)
        recon, kl = _bce(x_logits, x).mean(), _kl(mu, logvar).mean()
        loss = recon + (beta if use_beta else 1.0) * kl
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        if returns == "tuple":
            return loss.item(), recon.item(), kl.item()
        return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}
    return train_step


def step_own(model, optimizer, x, beta=1.0):
    x_logits, mu, logvar = model(x)
    loss, recon, kl = elbo_bernoulli(x, x_logits, mu, logvar)
    loss = recon + beta * kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


def step_package(model, optimizer, x, beta=1.0):
    loss, recon, kl = V.negative_elbo(x, *model(x), beta=beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


def step_beta_half(model, optimizer, x, beta=1.0):   # beta hard-coded to the lesson's value
    return _make_step()(model, optimizer, x, 0.5)


C = Case
RIGHT = [
    C("check_reparameterise", reparam_sqrt, why="sqrt of the variance"),
    C("check_reparameterise", reparam_sqrt, why="sqrt, seed 11", kwargs={"seed": 11}),
    C("check_kl_divergence", _kl, why="textbook sign convention"),
    C("check_kl_divergence", _kl, why="textbook, seed 4", kwargs={"seed": 4}),
    C("check_negative_elbo", elbo_bernoulli, why="Bernoulli log_prob"),
    C("check_negative_elbo", elbo_bernoulli, why="Bernoulli, seed 8", kwargs={"seed": 8}),
    C("check_encoder", EncoderExplicit, why="explicit layers"),
    C("check_encoder", EncoderExplicit, why="explicit layers, seed 2", kwargs={"seed": 2}),
    C("check_train_step", step_own, why="own loss"),
    C("check_train_step", step_own, why="own loss, seed 6", kwargs={"seed": 6}),
]

WRONG = [
    C("check_reparameterise", lambda mu, logvar: mu, "no noise", "returns mu"),
    C("check_reparameterise", lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu),
      "variance", "std = exp(logvar)"),
    C("check_reparameterise", lambda mu, logvar: mu + _std(logvar) * torch.rand_like(mu),
      "uniform", "uniform noise"),
    C("check_reparameterise", lambda mu, logvar: (mu + _std(logvar) * torch.randn_like(mu)).detach(),
      "requires_grad", "detached"),
    C("check_reparameterise", lambda mu, logvar: mu + _std(logvar) * torch.randn(mu.shape[1]),
      "no noise", "one eps for the batch"),
    C("check_reparameterise", reparam_fixed_eps, "new eps", "same eps every call"),
    C("check_reparameterise", reparam_shared_in_row, "own noise", "one eps per row"),
    C("check_reparameterise", reparam_antithetic, "second half", "mirrored halves"),
    C("check_reparameterise", reparam_first_row, "z should equal mu", "row 0's mu for all"),
    C("check_reparameterise",
      lambda mu, logvar: (mu + _std(logvar) * torch.randn_like(mu)).sum(1), "wrong shape",
      "wrong shape"),
    C("check_reparameterise", lambda mu, logvar: (mu + _std(logvar)).tolist(), "torch.Tensor",
      "returns a list"),
    C("check_reparameterise", lambda mu, logvar: torch.normal(mu, _std(logvar)), "torch.normal",
      "torch.normal"),
    C("check_reparameterise", reparam_normal_alias, "torch.normal", "torch.normal alias"),
    C("check_reparameterise", reparam_normal_getattr, "torch.normal", "torch.normal by getattr"),
    C("check_reparameterise",
      lambda mu, logvar: torch.distributions.Normal(mu, _std(logvar)).sample(), "sample",
      "distribution sample"),
    C("check_reparameterise", reparam_rsample, "rsample", "rsample"),
    C("check_reparameterise", reparam_package, "coursekit.models.vae.reparameterise", "package"),
    C("check_reparameterise", V.reparameterise, "coursekit.models.vae.reparameterise",
      "package function itself"),

    C("check_kl_divergence", lambda mu, lv: -0.5 * _kl_terms(mu, lv).sum(1), "sign",
      "sign flipped"),
    C("check_kl_divergence", lambda mu, lv: _kl_terms(mu, lv).sum(1), "1/2", "no one half"),
    C("check_kl_divergence", lambda mu, lv: 0.5 * _kl_terms(mu, lv).mean(1),
      "averaged over the latent", "mean over latent"),
    C("check_kl_divergence", lambda mu, lv: 0.5 * _kl_terms(mu, lv).sum(),
      "one number for the whole batch", "summed over batch too"),
    C("check_kl_divergence", lambda mu, lv: 0.5 * _kl_terms(mu, lv), "wrong shape", "not summed"),
    C("check_kl_divergence", lambda mu, lv: 0.5 * (mu ** 2 + (2 * lv).exp() - 1 - 2 * lv).sum(1),
      "log(sigma^2)", "logvar taken as log sigma"),
    C("check_kl_divergence", lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(1), "mu^2 term",
      "no mu term"),
    C("check_kl_divergence", lambda mu, lv: float(0.5 * _kl_terms(mu, lv).sum()), "torch.Tensor",
      "returns a float"),
    C("check_kl_divergence", kl_distributions, "torch.distributions.kl_divergence",
      "torch.distributions"),
    C("check_kl_divergence", kl_package, "coursekit.models.vae.kl_divergence", "package"),
    C("check_kl_divergence", kl_alias, "coursekit.models.vae.kl_divergence",
      "package as a default"),

    C("check_negative_elbo", elbo_pixel_mean, "averaged the cross-entropy over pixels",
      "recon averaged over pixels"),
    C("check_negative_elbo", elbo_batch_sum, "summed over the batch too", "summed over the batch"),
    C("check_negative_elbo", elbo_squared_error, "squared error", "squared error"),
    C("check_negative_elbo", elbo_minus, "recon + kl", "recon minus kl"),
    C("check_negative_elbo", elbo_no_kl, "KL term is missing", "no kl in loss"),
    C("check_negative_elbo", elbo_kl_sign, "wrong sign", "kl sign"),
    C("check_negative_elbo", elbo_only_loss, "tuple", "returns only the loss"),
    C("check_negative_elbo", elbo_floats, "gradients of the loss", "returns floats"),
    C("check_negative_elbo", elbo_logits_as_probs, "raised", "logits used as probabilities"),
    C("check_negative_elbo", elbo_fixed_64, "raised", "assumes 64 pixels"),
    C("check_negative_elbo", elbo_package, "coursekit.models.vae.negative_elbo", "package"),
    C("check_negative_elbo", elbo_package_parts, "coursekit.models.vae", "package recon"),
    C("check_negative_elbo", elbo_distributions_kl, "torch.distributions.kl_divergence",
      "torch.distributions KL"),

    C("check_encoder", OneTensor, "a pair (mu, logvar)", "one tensor"),
    C("check_encoder", SameHead, "two separate nn.Linear heads", "same head"),
    C("check_encoder", ReluLogvar, "do not pass it through", "relu on logvar"),
    C("check_encoder", MixedImages, "flatten each image on its own", "images mixed"),
    C("check_encoder", Detached, "requires_grad is False", "detached outputs"),
    C("check_encoder", FixedLatent, "nn.Linear layers", "ignores n_latent"),
    C("check_encoder", FixedWidth, "not from fixed numbers", "ignores n_hidden and n_pixels"),
    C("check_encoder", NoReLU, "linear in x", "no ReLU"),
    C("check_encoder", OneHidden, "two hidden layers", "one hidden layer"),
    C("check_encoder", NoParameters, "no parameters", "no parameters"),
    C("check_encoder", EncoderExplicit(2), "pass the class", "an instance, not the class"),
    C("check_encoder", encoder_package, "coursekit.models.vae.Encoder", "package encoder"),
    C("check_encoder", EncoderFromVAE, "coursekit.models.vae", "package VAE's encoder"),
    C("check_encoder", V.Encoder, "coursekit.models.vae.Encoder", "package class itself"),

    C("check_train_step", _make_step(zero_grad=False), "zero", "no zero_grad"),
    C("check_train_step", _make_step(use_beta=False), "beta", "beta ignored"),
    C("check_train_step", step_beta_half, "beta", "beta hard-coded"),
    C("check_train_step", _make_step(step=False), "optimiser step", "no optimizer.step"),
    C("check_train_step", _make_step(forward_twice=True), "run the model once",
      "model called twice"),
    C("check_train_step", _make_step(returns="tuple"), "a dict with keys", "returns a tuple"),
    C("check_train_step", step_package, "coursekit.models.vae.negative_elbo", "package loss"),
]
