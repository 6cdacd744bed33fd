"""Generative adversarial networks (GANs), small enough to train on a laptop CPU.

A generator G turns noise z into samples; a discriminator D scores samples as real or
fake; the two are trained against each other ("Generative Adversarial Nets",
Goodfellow et al., 2014). This file holds:

* MLP generators and discriminators, for points in the plane and for 8x8 digits;
* ``IslandLatent``, a latent made of K learnable Gaussian islands ("DeLiGAN", Gurumurthy
  et al., 2017), so that G can put separate modes apart without bridges between them;
* the losses as plain functions: ``discriminator_loss``, ``generator_loss_minimax``
  and ``generator_loss_nonsaturating``;
* ``pack``, the one-line change of PacGAN ("PacGAN: The power of two samples in
  generative adversarial networks", Lin et al., 2018) that lets D judge several samples
  at once and so see, and punish, a generator that lacks variety;
* ``train_step`` (one update of D, then one of G), ``sample`` and ``train_gan``;
* ``mode_stats``, the modes-covered / high-quality metric of the 2-D benchmarks
  ("VEEGAN", Srivastava et al., 2017), shared by the lesson, its checks and the benchmark;
* ``train_digit_gan(n_steps, device=..., seed=...)``, the digit GAN other chapters compare with
  (``ck.zoo.load("digit-gan")`` caches it).

Glossary: ``z`` noise (B, noise_dim); ``x`` real samples; ``x_fake = G(z)``;
``logits`` are D's raw scores, D(x) = sigmoid(logit) is the probability "real".
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from coursekit.evaluate import ModeStats, mode_stats  # noqa: F401  (the metric lives in evaluate)
from coursekit.models.ema import EMA
from coursekit.models.presets import Presets
from coursekit.runtime import budget
from coursekit.train import Run, train

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


@dataclass
class GANConfig(Presets):
    """Everything that defines one GAN and how it is trained."""

    data_dim: int = 2                 # numbers in one sample: 2 for points, 64 for 8x8 digits
    image_size: int = 0               # > 0: samples are (B, 1, size, size) images; data_dim = size**2
    output: str = "linear"            # G's last step: "linear" (points) or "sigmoid" (pixels in [0, 1])
    latent_dim: int = 2               # size of the latent vector that G's network starts from
    hidden: int = 128                 # width of every hidden layer
    n_layers: int = 3                 # hidden layers in each network
    n_islands: int = 0                # K > 0: latent = K learnable Gaussian islands (DeLiGAN); 0 = N(0, I)
    island_std: float = 0.2           # initial standard deviation of each island
    island_lr: float = 1.0            # learning-rate multiplier of the islands' centres and widths
    pack: int = 1                     # PacGAN degree m: D judges m samples at once (1 = plain GAN)
    loss: str = "nonsaturating"       # generator loss: "nonsaturating" or "minimax"
    lr: float = 2e-3                  # Adam learning rate of G and D at the start of training
    lr_decay: bool = True             # decay both learning rates linearly to 0 over training
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's betas (a small beta1 is usual for GANs)
    batch_size: int = 256             # D's batch of packed samples: batch_size * pack points each
    standardise: bool = False         # linear output: G and D work in units of the data's std
    ema: float = 0.99                 # decay of the moving average of G's weights (0 = none)

    def __post_init__(self):
        if self.loss not in ("nonsaturating", "minimax"):
            raise ValueError(f"loss must be 'nonsaturating' or 'minimax', got {self.loss!r}")
        if self.output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {self.output!r}")
        if self.image_size and self.data_dim != self.image_size ** 2:
            raise ValueError(f"image_size={self.image_size} needs data_dim={self.image_size ** 2}, "
                             f"got {self.data_dim}")
        if self.pack < 1:
            raise ValueError(f"pack must be >= 1, got {self.pack}")
        if self.n_islands < 0:
            raise ValueError(f"n_islands must be >= 0, got {self.n_islands}")

    @property
    def noise_dim(self) -> int:
        """Size of the noise z that G takes: latent_dim, plus 1 to pick an island."""
        return self.latent_dim + (1 if self.n_islands else 0)


PRESETS: dict[str, GANConfig] = {
    # the textbook GAN on the ring of 8 Gaussians, constant learning rate, no averaging:
    # the mode-collapse demonstration
    "ring-plain": GANConfig(lr_decay=False, ema=0.0),
    # the fix: a latent of 64 Gaussian islands in 8 dimensions (DeLiGAN), with the
    # learning rate decayed to 0 and G's weights averaged (measured in benchmarks/gan.py:
    # 8/8 modes and about 99% high quality on four seeds; packing pairs for D, PacGAN,
    # lowered the high-quality share to 72-84%, so it is off)
    "ring-islands": GANConfig(latent_dim=8, n_islands=64),
    # the same fix on the 5x5 grid of 25 Gaussians, with narrower islands (std 0.1)
    "grid-islands": GANConfig(latent_dim=8, n_islands=64, island_std=0.1),
    # 8x8 digits in [0, 1]: wider MLPs, a 32-dimensional latent of 32 islands
    "digits": GANConfig(data_dim=64, image_size=8, output="sigmoid", latent_dim=32, hidden=256,
                        n_layers=2, n_islands=32, lr=1e-3, batch_size=128),
    # a few-second model for tests
    "tiny": GANConfig(hidden=16, n_layers=2, batch_size=32),
}


def preset(name: str, **changes) -> GANConfig:
    """``GANConfig.preset(name, **changes)``, kept for the lessons' ``gan.preset(...)``."""
    return GANConfig.preset(name, **changes)


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------


def mlp(n_in: int, n_out: int, hidden: int, n_layers: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """``n_layers`` hidden layers of width ``hidden`` with activation ``act()``, then a linear layer."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class IslandLatent(nn.Module):
    """A latent made of K separate Gaussian islands with learnable centres and widths.

    From "DeLiGAN: Generative Adversarial Networks for Diverse and Limited Data"
    (Gurumurthy et al., 2017). A continuous G maps a connected latent (one Gaussian) to
    a connected set, so between separate modes it must leave a trail of samples; with
    islands it need not. Each island is picked with probability 1/K:

        k = floor(K * Phi(z_0)),   latent = mu_k + sigma_k * (z_1, ..., z_d)

    where Phi, the standard normal CDF, turns the first noise coordinate into a uniform
    number, so all of G's randomness stays in one tensor z.
    """

    def __init__(self, n_islands: int, latent_dim: int, init_std: float = 0.2):
        super().__init__()
        self.n_islands = n_islands
        self.mu = nn.Parameter(2 * torch.rand(n_islands, latent_dim) - 1)            # (K, d)
        self.log_sigma = nn.Parameter(torch.full((n_islands, latent_dim), math.log(init_std)))

    def island(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the island each noise vector picks, (B,) int64."""
        u = torch.special.ndtr(z[:, 0])                                              # (B,) in (0, 1)
        return (u * self.n_islands).long().clamp_(0, self.n_islands - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = self.island(z)                                                           # (B,)
        return self.mu[k] + self.log_sigma[k].exp() * z[:, 1:]                      # (B, d)


class MLPGenerator(nn.Module):
    """G: noise z (B, noise_dim) -> samples (B, data_dim), or (B, 1, H, W) images.

    ReLU hidden layers. A linear output is multiplied by ``scale`` (the data's standard
    deviation, set by ``train_gan``) so the network itself works with numbers near 1.
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.net = mlp(cfg.latent_dim, cfg.data_dim, cfg.hidden, cfg.n_layers, nn.ReLU)
        self.latent = (IslandLatent(cfg.n_islands, cfg.latent_dim, cfg.island_std)
                       if cfg.n_islands else nn.Identity())
        self.register_buffer("scale", torch.ones(()))  # data's std; train_gan sets it

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(self.latent(z))                             # (B, data_dim)
        x = torch.sigmoid(x) if self.cfg.output == "sigmoid" else x * self.scale
        if self.cfg.image_size:
            x = rearrange(x, "b (c h w) -> b c h w", c=1, h=self.cfg.image_size)  # (B, 1, H, W)
        return x


class MLPDiscriminator(nn.Module):
    """D: samples (B * pack, data_dim) or images (B * pack, 1, H, W) -> one logit per pack (B,).

    Leaky-ReLU hidden layers; the input is divided by ``scale`` (see MLPGenerator).
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.net = mlp(cfg.data_dim * cfg.pack, 1, cfg.hidden, cfg.n_layers,
                       lambda: nn.LeakyReLU(0.2))
        self.register_buffer("scale", torch.ones(()))  # data's std; train_gan sets it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pack(x.flatten(1) / self.scale, self.cfg.pack)       # (B, pack * data_dim)
        return self.net(x).squeeze(1)                            # (B,)


def make_gan(cfg: GANConfig, device=None) -> tuple[MLPGenerator, MLPDiscriminator]:
    """Build the generator and the discriminator that ``cfg`` describes (G first, then D)."""
    G, D = MLPGenerator(cfg), MLPDiscriminator(cfg)
    return G.to(device), D.to(device)


# ---------------------------------------------------------------------------------------
# Losses (Goodfellow et al., 2014), written on D's logits for numerical stability:
#   log D(x) = -softplus(-logit),   log(1 - D(x)) = -softplus(logit)
# ---------------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: -[log D(x) + log(1 - D(G(z)))], averaged over the batch.

    Binary cross-entropy with label 1 for real and 0 for fake samples.

    Args:
        real_logits: D's logits on real samples, shape (B,).
        fake_logits: D's logits on generated samples, shape (B',).
    Returns:
        A 0-d tensor.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss in the original minimax game: log(1 - D(G(z))), averaged (to minimise).

    Its gradient vanishes when D confidently rejects the fakes (D(G(z)) near 0), which
    is exactly the situation at the start of training.
    """
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: -log D(G(z)), averaged (Goodfellow et al., 2014, sec. 3).

    Same fixed point as the minimax loss, but strong gradients when D rejects the fakes.
    """
    return F.softplus(-fake_logits).mean()


GENERATOR_LOSSES = {"minimax": generator_loss_minimax, "nonsaturating": generator_loss_nonsaturating}


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """PacGAN packing: join each run of ``m`` consecutive samples into one input.

    Args:
        x: (B * m, d) samples (all real or all fake).
        m: packing degree.
    Returns:
        (B, m * d): row i holds samples i*m ... i*m + m - 1 side by side.
    """
    if x.shape[0] % m:
        raise ValueError(f"cannot pack {x.shape[0]} samples in groups of {m}")
    return rearrange(x, "(b m) d -> b (m d)", m=m)                    # (B, m * d)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------


def train_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, x_real: torch.Tensor, z: torch.Tensor,
               loss: str = "nonsaturating") -> dict[str, float]:
    """One step of Algorithm 1 of Goodfellow et al. (2014): update D, then G.

    Args:
        x_real: real samples, (B * pack, data_dim) or images (B * pack, 1, H, W).
        z: noise for the fakes, (B * pack, noise_dim).
        loss: the generator loss, "nonsaturating" or "minimax".
    Returns:
        loss_d, loss_g and D's mean probability "real" on real and fake samples.
    """
    # 1. Generate fakes x_fake = G(z).
    x_fake = G(z)
    # 2. D step: descend -[log D(x) + log(1 - D(G(z)))]; detach so G gets no gradient.
    real_logits, fake_logits = D(x_real), D(x_fake.detach())
    loss_d = discriminator_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    # 3. G step: descend the generator loss, scored by the just-updated D.
    loss_g = GENERATOR_LOSSES[loss](D(x_fake))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item()}


@torch.no_grad()
def sample(G: nn.Module, n: int, device=None, seed: int | None = None) -> torch.Tensor:
    """Draw ``n`` samples from the generator (in eval mode, without gradients).

    Args:
        G: a generator with a config ``G.cfg``.
        n: how many samples.
        device: where to draw z (default: where G's weights are).
        seed: seed of the noise, for repeatable samples (default: torch's global RNG).
    Returns:
        (n, data_dim) samples, or (n, 1, H, W) images, on ``device``.
    """
    device = device or next(G.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    z = torch.randn(n, G.cfg.noise_dim, generator=gen).to(device)    # (n, noise_dim)
    was_training = G.training
    G.eval()
    x = G(z)
    G.train(was_training)
    return x


@dataclass
class GANRun(Run):
    """What ``train_gan`` returns: ``model`` is the generator to sample from (the
    averaged one when ``cfg.ema > 0``), ``config`` the GANConfig."""

    discriminator: nn.Module | None = None
    snapshots: list[dict] = field(default_factory=list)  # {"step", "samples", "loss_d", "loss_g"}
    raw_generator: nn.Module | None = None  # the last G itself (before averaging)

    @property
    def generator(self) -> nn.Module:
        """The generator to sample from (the same object as ``model``)."""
        return self.model


def train_gan(cfg: GANConfig, data: torch.Tensor, n_steps: int, *, device=None, seed: int = 0,
              progress: bool = True, snapshot_every: int = 0, n_snapshot: int = 1000,
              desc: str = "GAN") -> GANRun:
    """Train a GAN on ``data`` for ``n_steps`` steps of ``train_step``.

    The global random state is left as it was: the weights, minibatches and noise draw
    from streams seeded by ``seed``.

    Args:
        cfg: the configuration (``GANConfig.preset(...)``).
        data: the training set, (N, data_dim) points or (N, 1, H, W) images.
        n_steps: number of steps; write it as ``coursekit.budget(...)`` in lessons.
        device: where to train (default CPU).
        seed: seeds the weights, the minibatches and the noise.
        progress: show a progress bar.
        snapshot_every: every this many steps, store ``n_snapshot`` samples of the
            (averaged) generator for the snapshot scrubber (0 = no snapshots).
    Returns:
        A GANRun: the generator (``model``), history, config, seconds, discriminator,
        snapshots and the raw (not averaged) generator.
    """
    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        G, D = make_gan(cfg, device)
        if cfg.output == "linear" and cfg.standardise:   # both networks see data in units of its std
            with torch.no_grad():
                G.scale.fill_(data.float().std().item())
                D.scale.fill_(data.float().std().item())
        ema = EMA(G, cfg.ema) if cfg.ema > 0 else None
        G_avg = ema.model if ema is not None else G
        island_params = list(G.latent.parameters())
        other_params = [p for n, p in G.named_parameters() if not n.startswith("latent.")]
        groups = [{"params": other_params}]
        if island_params:
            groups.append({"params": island_params, "lr": cfg.lr * cfg.island_lr})
        opt_g = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
        schedules = []
        if cfg.lr_decay:
            def linear(step):
                return max(0.0, 1.0 - step / max(n_steps, 1))
            schedules = [torch.optim.lr_scheduler.LambdaLR(o, linear) for o in (opt_g, opt_d)]
        data = data.to(device)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        n_batch = cfg.batch_size * cfg.pack
        snapshots: list[dict] = []

        def snapshot(step, metrics):
            x = sample(G_avg, n_snapshot, seed=seed + 1).cpu()
            snapshots.append({"step": step, "samples": x, **metrics})

        if snapshot_every:
            snapshot(0, {"loss_d": float("nan"), "loss_g": float("nan")})

        def step_fn(step):
            idx = torch.randint(0, len(data), (n_batch,), generator=gen).to(device)
            z = torch.randn(n_batch, cfg.noise_dim, generator=gen).to(device)
            metrics = train_step(G, D, opt_g, opt_d, data[idx], z, cfg.loss)
            for s in schedules:
                s.step()
            if ema is not None:
                ema.update(G)
            if snapshot_every and (step + 1) % snapshot_every == 0:
                snapshot(step + 1, {"loss_d": metrics["loss_d"], "loss_g": metrics["loss_g"]})
            return metrics

        start = time.perf_counter()
        history = train(step_fn, n_steps, desc=desc, show=progress)
        seconds = time.perf_counter() - start
    G_avg.eval()
    return GANRun(G_avg, history, cfg, seconds, discriminator=D, snapshots=snapshots, raw_generator=G)


# ---------------------------------------------------------------------------------------
# The digit GAN other chapters use
# ---------------------------------------------------------------------------------------


def train_digit_gan(n_steps: int | None = None, *, device=None, seed: int = 0,
                    progress: bool = True) -> GANRun:
    """Train the "digits" preset on the training split of the 8x8 digits.

    Args:
        n_steps: training steps (default ``coursekit.budget(3000, fast=30)``).
        device: where to train (default CPU).
        seed: seeds the weights, minibatches and noise.
    Returns:
        A GANRun whose ``model`` is the averaged generator in eval mode:
        ``sample(run.model, n)`` gives (n, 1, 8, 8) images in [0, 1].
    """
    from coursekit.data import load_digits

    n_steps = budget(3000, fast=30) if n_steps is None else n_steps
    x = load_digits(seed=0).x_train                                     # (N, 1, 8, 8)
    return train_gan(PRESETS["digits"], x, n_steps, device=device, seed=seed, progress=progress,
                     desc="digit GAN")


__all__ = [
    "GANConfig", "PRESETS", "preset", "mlp", "IslandLatent", "MLPGenerator", "MLPDiscriminator",
    "make_gan", "discriminator_loss",
    "generator_loss_minimax", "generator_loss_nonsaturating", "GENERATOR_LOSSES", "pack",
    "train_step", "sample", "GANRun", "train_gan", "ModeStats", "mode_stats",
    "train_digit_gan",
]
