"""A variational autoencoder (VAE) for small images, after "Auto-Encoding Variational
Bayes" (Kingma & Welling, 2013).

The model in four pieces, each a few lines:

1. ``Encoder``: an image x -> the mean ``mu`` and log-variance ``logvar`` of the
   approximate posterior q(z|x) = N(mu, diag(exp(logvar))).
2. ``reparameterise``: z = mu + exp(logvar / 2) * eps with eps ~ N(0, I), so that the
   sample z is a differentiable function of mu and logvar.
3. ``Decoder``: z -> the logits of a Bernoulli distribution p(x|z) over every pixel.
4. The loss, the negative evidence lower bound (ELBO), in two parts:
   ``reconstruction_loss`` = -log p(x|z) and ``kl_divergence`` = KL(q(z|x) || N(0, I)).

A Bernoulli distribution is a distribution over 0/1 pixels, so the model is one of
*binary* images: ``binarise`` turns a grey digit into a black-and-white one, each pixel
inked with probability equal to its grey level (a fresh draw at every training step).
On such images p(x|z) is a true probability, the loss is in nats of log-likelihood, and
the negative ELBO is an upper bound on -log p(x); ``log_likelihood`` estimates log p(x)
itself by importance sampling ("Importance Weighted Autoencoders", Burda, Grosse and
Salakhutdinov, 2015), which measures how loose the bound is.

Typical use::

    from coursekit.models.vae import VAEConfig, train_vae
    run = train_vae(VAEConfig.preset("digits-2d"), n_steps=2500)   # run.model, run.history
    images = run.model.sample(64)                  # (64, 1, 8, 8): probabilities of ink in [0, 1]
    mu = run.model.encode(data.x_val)              # (N, 2): the latent map
    x_bin = binarise(data.x_val, torch.Generator().manual_seed(0))
    log_px = log_likelihood(run.model, x_bin, n_samples=1000)   # (N,) nats per image
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from coursekit.models.presets import Presets
from coursekit.train import History, Run, train


@dataclass
class VAEConfig(Presets):
    """Sizes of a fully connected VAE for small square greyscale images."""

    image_size: int = 8   # images are (1, image_size, image_size); the model is of 0/1 pixels
    n_hidden: int = 256   # width of the two hidden layers of the encoder and of the decoder
    n_latent: int = 2     # size of z; 2 lets the whole latent space be drawn as a map

    @property
    def n_pixels(self) -> int:
        """Pixels per image (the encoder's input size, the decoder's output size)."""
        return self.image_size * self.image_size


PRESETS: dict[str, VAEConfig] = {
    "vae-nano": VAEConfig(n_hidden=32, n_latent=2),     # for tests: trains in a second
    "digits-2d": VAEConfig(n_hidden=256, n_latent=2),   # the lesson's latent map
    "digits-8d": VAEConfig(n_hidden=256, n_latent=8),   # more latent room, sharper samples
}


class Encoder(nn.Module):
    """q(z|x): images (B, 1, H, W) -> (mu, logvar), each (B, n_latent)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(config.n_pixels, config.n_hidden), nn.ReLU(),
            nn.Linear(config.n_hidden, config.n_hidden), nn.ReLU(),
        )
        self.to_mu = nn.Linear(config.n_hidden, config.n_latent)
        self.to_logvar = nn.Linear(config.n_hidden, config.n_latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x (B, 1, H, W). Returns: mu (B, n_latent), logvar (B, n_latent)."""
        h = self.body(rearrange(x, "b c h w -> b (c h w)"))  # (B, n_hidden)
        return self.to_mu(h), self.to_logvar(h)


class Decoder(nn.Module):
    """p(x|z): latents (B, n_latent) -> Bernoulli logits of every pixel (B, 1, H, W)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.image_size = config.image_size
        self.n_latent = config.n_latent
        self.net = nn.Sequential(
            nn.Linear(config.n_latent, config.n_hidden), nn.ReLU(),
            nn.Linear(config.n_hidden, config.n_hidden), nn.ReLU(),
            nn.Linear(config.n_hidden, config.n_pixels),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Args: z (B, n_latent). Returns: logits (B, 1, H, W); sigmoid gives pixel means."""
        logits = self.net(z)                                                   # (B, H*W)
        return rearrange(logits, "b (c h w) -> b c h w", c=1, h=self.image_size)  # (B, 1, H, W)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean image of p(x|z), for looking at: (B, n_latent) -> (B, 1, H, W) in [0, 1]."""
        return torch.sigmoid(self(z))


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw z ~ N(mu, diag(exp(logvar))) as a differentiable function of mu and logvar.

    Kingma & Welling (2013), eq. 10 with a Gaussian q: z = mu + sigma * eps, eps ~ N(0, I).
    The randomness sits in eps, which does not depend on the parameters, so gradients
    flow through mu and sigma.

    Args:
        mu, logvar: (B, n_latent) mean and log-variance of q(z|x).
        generator: optional torch.Generator for eps (default: torch's global one).
    Returns:
        z: (B, n_latent).
    """
    std = torch.exp(0.5 * logvar)                      # sigma = exp(logvar / 2)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + std * eps


def binarise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Black-and-white images drawn from grey ones: each pixel is 1 with probability x.

    Args:
        x: (B, 1, H, W) grey levels in [0, 1] (0/1 images come back unchanged).
        generator: optional torch.Generator, for a repeatable draw.
    Returns:
        (B, 1, H, W) of 0.0 and 1.0, whose average over draws is x.
    """
    return torch.bernoulli(x.clamp(0.0, 1.0), generator=generator)


def is_binary(x: torch.Tensor) -> bool:
    """True when every pixel of ``x`` is 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def reconstruction_loss(x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) of a Bernoulli decoder, summed over pixels: (B, 1, H, W) x2 -> (B,).

    For 0/1 pixels this is the negative log of a probability, in nats. (Given grey
    levels as targets it is the *average* of that quantity over the binarisations of x,
    since the cross-entropy is linear in the target.)
    """
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")  # (B, 1, H, W)
    return bce.flatten(1).sum(1)                                              # (B,)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form, per example: (B, L) -> (B,).

    Kingma & Welling (2013), appendix B: -KL = 1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def negative_elbo(x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor,
                  logvar: torch.Tensor, beta: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The VAE loss and its two parts, each averaged over the batch.

    Args:
        x: (B, 1, H, W) images of 0/1 pixels; x_logits: (B, 1, H, W) decoder output;
        mu, logvar: (B, n_latent) encoder output.
        beta: weight of the KL term (1 = the true ELBO; other values give a beta-VAE).
    Returns:
        (loss, recon, kl): loss = recon + beta * kl, three 0-d tensors in nats per image.
        With beta = 1 and 0/1 pixels, loss is the negative ELBO, whose expectation over
        z is an upper bound on -log p(x).
    """
    recon = reconstruction_loss(x_logits, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    return recon + beta * kl, recon, kl


class VAE(nn.Module):
    """Encoder, reparameterisation and decoder together.

    ``forward`` is for training; ``encode``, ``decode``, ``sample`` and ``reconstruct``
    are for looking at the trained model and run under ``torch.no_grad()``.
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: x (B, 1, H, W). Returns: x_logits (B, 1, H, W), mu and logvar (B, n_latent)."""
        mu, logvar = self.encoder(x)                   # 1. q(z|x)
        z = reparameterise(mu, logvar, generator)      # 2. z = mu + sigma * eps
        x_logits = self.decoder(z)                     # 3. p(x|z)
        return x_logits, mu, logvar

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior means mu of images x (B, 1, H, W) -> (B, n_latent): the latent map."""
        return self.encoder(x.to(self.device))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, n_latent) -> mean images (B, 1, H, W) in [0, 1]."""
        return self.decoder.decode(z.to(self.device))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """New images: z ~ N(0, I), then the decoder's mean image. Returns (n, 1, H, W)."""
        z = torch.randn(n, self.config.n_latent, generator=generator, device=self.device)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Encode to mu (no noise) and decode: (B, 1, H, W) -> (B, 1, H, W) in [0, 1]."""
        return self.decode(self.encode(x))


def _binary(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return x if is_binary(x) else binarise(x, generator)


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
             batch_size: int = 512) -> dict[str, float]:
    """The two ELBO parts on a set of images (e.g. the validation split), in nats per image.

    Args:
        x: (N, 1, H, W) 0/1 images; grey images are binarised first with ``generator``
            (pass a freshly seeded one to score the same binary images every time).
        generator: draws the binarisation (if needed) and the codes z.
    Returns:
        {"recon": mean -log p(x|z), "kl": mean KL, "neg_elbo": their sum}, where
        neg_elbo is an estimate of an upper bound on the mean -log p(x).
    """
    x = _binary(x.to(model.device), generator)
    recon_sum = kl_sum = 0.0
    for xb in x.split(batch_size):
        x_logits, mu, logvar = model(xb, generator)
        recon_sum += reconstruction_loss(x_logits, xb).sum().item()
        kl_sum += kl_divergence(mu, logvar).sum().item()
    n = len(x)
    return {"recon": recon_sum / n, "kl": kl_sum / n, "neg_elbo": (recon_sum + kl_sum) / n}


@torch.no_grad()
def log_likelihood(model: VAE, x: torch.Tensor, n_samples: int = 1000,
                   generator: torch.Generator | None = None, chunk: int = 100) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) per image (Burda et al., 2015, eq. 8).

    1. Draw K codes z_k ~ q(z|x) from the encoder.
    2. Weight each by w_k = p(x|z_k) p(z_k) / q(z_k|x).
    3. log p(x) ~ log (1/K) sum_k w_k, computed with logsumexp.
    For K = 1 its expectation is the ELBO; it grows with K towards log p(x), and is a lower
    bound on log p(x) in expectation for every K.

    Args:
        x: (N, 1, H, W) 0/1 images (grey ones are binarised with ``generator``).
        n_samples: K, codes per image.
        generator: for repeatable draws.
        chunk: codes decoded at once per image (memory: N * chunk decoder outputs).
    Returns:
        (N,) estimates of log p(x) in nats.
    """
    x = _binary(x.to(model.device), generator)
    mu, logvar = model.encoder(x)                                    # (N, L) each
    std = torch.exp(0.5 * logvar)
    log_w = []
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        eps = torch.randn((k,) + mu.shape, generator=generator, device=mu.device)  # (k, N, L)
        z = mu + std * eps                                           # (k, N, L)
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)     # (k, N)
        logits = model.decoder(rearrange(z, "k n l -> (k n) l"))     # (k * N, 1, H, W)
        log_px_z = -reconstruction_loss(logits, x.repeat(k, 1, 1, 1)).view(k, -1)  # (k, N)
        log_w.append(log_px_z + log_prior - log_q)
    log_w = torch.cat(log_w)                                         # (K, N)
    return torch.logsumexp(log_w, 0) - math.log(n_samples)


def train_vae(cfg: VAEConfig | None = None, data=None, n_steps: int = 2500, *,
              device: torch.device | str | None = None, seed: int = 0, progress: bool = True,
              batch_size: int = 128, lr: float = 3e-3, beta: float = 1.0,
              eval_every: int = 100) -> Run:
    """Train a VAE on the 8x8 digits (or any (N, 1, H, W) images in [0, 1]).

    The global random state is left as it was.

    Args:
        cfg: model sizes (default ``VAEConfig()``: 2-D latent).
        data: a ``coursekit.data.DigitSplit`` (default ``load_digits()``), or a tensor of
            training images (N, 1, H, W) in [0, 1]; every batch is binarised afresh
            (``binarise``), so the model learns 0/1 images whose mean is the grey digit.
        n_steps: optimisation steps (write it with ``coursekit.budget``).
        device: where to train (default: the CPU).
        seed: seeds the weights, the mini-batches and the noise eps.
        progress: show a progress bar.
        batch_size, lr: Adam mini-batch size and learning rate.
        beta: weight of the KL term (1 for a plain VAE).
        eval_every: log the validation ELBO parts every this many steps (when a
            validation split is given).
    Returns:
        A ``Run``: the trained VAE in eval mode (``model``), a ``History`` with "loss",
        "recon", "kl" per step (and "val_recon", "val_kl", "val_neg_elbo") and
        ``history.seconds_per_step`` (validation excluded), the config, the seconds.
    """
    config = cfg
    config = config or VAEConfig()
    if data is None:
        from coursekit.data import load_digits
        data = load_digits(seed=seed)
    x_train = data if isinstance(data, torch.Tensor) else data.x_train
    x_val = None if isinstance(data, torch.Tensor) else data.x_val
    device = torch.device(device) if device is not None else torch.device("cpu")
    x_train = x_train.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    # one fixed binarisation of the validation images, so that its curve is comparable
    x_val_bin = None if x_val is None else binarise(
        x_val.to(device), torch.Generator(device=device).manual_seed(seed + 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    eval_seconds = 0.0

    def step(i: int) -> dict[str, float]:
        nonlocal eval_seconds
        idx = torch.randint(len(x_train), (batch_size,), generator=gen, device=device)
        x = binarise(x_train[idx], gen)                         # (B, 1, H, W) of 0/1
        x_logits, mu, logvar = model(x, gen)
        loss, recon, kl = negative_elbo(x, x_logits, mu, logvar, beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if x_val is not None and (i % eval_every == 0 or i == n_steps - 1):
            t0 = time.perf_counter()
            val = evaluate(model, x_val_bin, gen)
            history.log(i, **{f"val_{k}": v for k, v in val.items()})
            eval_seconds += time.perf_counter() - t0
        return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}

    start = time.perf_counter()
    train(step, n_steps, desc=f"VAE (latent {config.n_latent})", history=history, show=progress)
    seconds = time.perf_counter() - start
    # time per optimisation step, validation excluded
    history.seconds_per_step = (seconds - eval_seconds) / max(n_steps, 1)
    model.eval()
    return Run(model, history, config, seconds)
