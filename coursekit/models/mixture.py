"""A Gaussian mixture model fitted by expectation-maximisation (EM), written out in torch.

The density model of chapter 01: it learns p(x) for points x in R^D, so it can score
points (``log_prob``) and draw new ones (``sample``). The density is a weighted sum of K
Gaussian bumps::

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k)

EM ("Maximum Likelihood from Incomplete Data via the EM Algorithm", Dempster, Laird and
Rubin, 1977) alternates two steps; the equation numbers are those of Bishop's "Pattern
Recognition and Machine Learning" (2006), section 9.2.2:

    E-step  gamma_nk = pi_k N(x_n | mu_k, Sigma_k) / sum_j pi_j N(x_n | mu_j, Sigma_j)  (9.23)
    M-step  N_k      = sum_n gamma_nk                                                    (9.27)
            mu_k     = (1 / N_k) sum_n gamma_nk x_n                                      (9.24)
            Sigma_k  = (1 / N_k) sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T               (9.25)
            pi_k     = N_k / N                                                           (9.26)

Each EM iteration never lowers the log-likelihood of the training data.

Usage::

    from coursekit.models.mixture import GaussianMixture, MixtureConfig
    gmm = GaussianMixture(MixtureConfig(n_components=8)).fit(x)   # x: (N, 2)
    new_points = gmm.sample(500, generator=torch.Generator().manual_seed(0))
    gmm.log_prob(x).mean()
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import einsum, rearrange

from coursekit.models.presets import Presets


@dataclass
class MixtureConfig(Presets):
    """Settings of a Gaussian mixture and its EM fit."""

    n_components: int = 8  # K: how many Gaussian bumps
    n_iter: int = 100      # most EM iterations to run
    tol: float = 1e-6      # stop early when the mean log-likelihood gains less than this
    reg: float = 1e-3      # added to every covariance's diagonal: keeps bumps from collapsing
    seed: int = 0          # picks the data points that start as the means

    def __post_init__(self):
        if not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"n_components must be an int >= 1, got {self.n_components!r}")
        if not isinstance(self.n_iter, int) or self.n_iter < 0:
            raise ValueError(f"n_iter must be an int >= 0, got {self.n_iter!r}")
        if not self.reg >= 0:
            raise ValueError(f"reg must be >= 0, got {self.reg!r}")


# Named presets: one bump, a few, enough for a curved shape like a moon.
PRESETS = {
    "single": MixtureConfig(n_components=1),
    "small": MixtureConfig(n_components=3),
    "moons": MixtureConfig(n_components=8),
}


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, Sigma: torch.Tensor) -> torch.Tensor:
    """log N(x_n | mu_k, Sigma_k) for every point n and every component k.

    Args:
        x: (N, D) points; mu: (K, D) means; Sigma: (K, D, D) covariances.
    Returns:
        (N, K) log densities.
    """
    D = x.shape[1]
    L = torch.linalg.cholesky(Sigma)                                   # (K, D, D), Sigma = L L^T
    diff = rearrange(x, "n d -> 1 d n") - rearrange(mu, "k d -> k d 1")  # (K, D, N)
    z = torch.linalg.solve_triangular(L, diff, upper=False)           # (K, D, N), z = L^-1 (x - mu)
    maha = rearrange((z ** 2).sum(1), "k n -> n k")                   # (N, K) squared Mahalanobis
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (K,) log |Sigma_k|
    return -0.5 * (D * math.log(2 * math.pi) + logdet + maha)


class GaussianMixture:
    """A mixture of K full-covariance Gaussians in D dimensions.

    Args:
        config: a ``MixtureConfig``; keyword arguments override its fields,
            e.g. ``GaussianMixture(n_components=4)``.

    Attributes (after ``fit``):
        pi: (K,) mixing weights, summing to 1.
        mu: (K, D) means.
        Sigma: (K, D, D) covariances.
        history: mean training log-likelihood of the starting parameters and after each
            EM iteration (never decreasing); ``history[-1]`` is that of the fitted model.
    """

    def __init__(self, config: MixtureConfig | None = None, **overrides):
        base = config or MixtureConfig()
        self.config = MixtureConfig(**{**vars(base), **overrides})
        self.pi: torch.Tensor | None = None
        self.mu: torch.Tensor | None = None
        self.Sigma: torch.Tensor | None = None
        self.history: list[float] = []

    def _require_fitted(self) -> None:
        if self.mu is None:
            raise RuntimeError("this GaussianMixture has not been fitted yet: call .fit(x) first")

    def joint_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_k + log N(x_n | mu_k, Sigma_k): (N, D) -> (N, K)."""
        self._require_fitted()
        x = torch.as_tensor(x).to(self.mu)
        return torch.log(self.pi) + gaussian_log_prob(x, self.mu, self.Sigma)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_n) = logsumexp_k (log pi_k + log N(x_n | mu_k, Sigma_k)): (N, D) -> (N,)."""
        return torch.logsumexp(self.joint_log_prob(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """gamma_nk, equation (9.23): how much component k explains point n. (N, D) -> (N, K)."""
        return torch.softmax(self.joint_log_prob(x), dim=1)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "GaussianMixture":
        """Fit the mixture to points ``x`` (N, D) by EM; returns self.

        Starts from K distinct data points as means (drawn with ``config.seed``), the
        data's covariance for every component, and equal weights.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"fit expects points of shape (N, D), got {getattr(x, 'shape', type(x))}")
        cfg = self.config
        N, D = x.shape
        if N < cfg.n_components:
            raise ValueError(f"need at least n_components = {cfg.n_components} points, got {N}")
        x = x.to(torch.float64)
        eye = torch.eye(D, dtype=x.dtype, device=x.device)
        # 0. Initialise: random distinct points as means, the data covariance, equal weights.
        g = torch.Generator().manual_seed(cfg.seed)
        start = torch.randperm(N, generator=g)[:cfg.n_components].to(x.device)
        self.mu = x[start].clone()                                              # (K, D)
        data_cov = torch.cov(x.T).reshape(D, D) + cfg.reg * eye                  # (D, D)
        self.Sigma = data_cov.expand(cfg.n_components, D, D).clone()           # (K, D, D)
        self.pi = torch.full((cfg.n_components,), 1.0 / cfg.n_components,
                             dtype=x.dtype, device=x.device)                   # (K,)
        self.history = []
        for _ in range(cfg.n_iter):
            # 1. E-step (9.23): responsibilities from the current parameters. The same
            #    numbers give the log-likelihood of those parameters, tracked in history.
            joint = self.joint_log_prob(x)                                      # (N, K)
            log_px = torch.logsumexp(joint, dim=1, keepdim=True)                # (N, 1)
            self.history.append(log_px.mean().item())
            if len(self.history) > 1 and self.history[-1] - self.history[-2] < cfg.tol:
                return self                                                     # converged
            gamma = torch.exp(joint - log_px)                                   # (N, K)
            # 2. M-step (9.27, 9.24, 9.25, 9.26): weighted counts, means, covariances, weights.
            Nk = gamma.sum(0).clamp_min(1e-10)                                  # (K,)
            self.mu = einsum(gamma, x, "n k, n d -> k d") / Nk[:, None]         # (K, D)
            diff = rearrange(x, "n d -> n 1 d") - self.mu                       # (N, K, D)
            self.Sigma = einsum(gamma, diff, diff, "n k, n k d, n k e -> k d e") / Nk[:, None, None]
            self.Sigma = self.Sigma + cfg.reg * eye                             # (K, D, D)
            self.pi = Nk / N                                                    # (K,)
        # 3. The likelihood of the final parameters, so that history[-1] describes them.
        self.history.append(self.log_prob(x).mean().item())
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` new points: pick a component k ~ pi, then x = mu_k + L_k eps.

        Args:
            n: number of points.
            generator: a CPU ``torch.Generator`` for reproducible samples.
        Returns:
            (n, D) float32 points, on the device of the fitted parameters.
        """
        self._require_fitted()
        # 1. Which bump each point comes from.
        k = torch.multinomial(self.pi.cpu(), n, replacement=True, generator=generator)  # (n,)
        # 2. A standard normal draw, shaped by that bump's covariance: Sigma = L L^T.
        eps = torch.randn(n, self.mu.shape[1], generator=generator, dtype=torch.float64)  # (n, D)
        L = torch.linalg.cholesky(self.Sigma.cpu())                        # (K, D, D)
        x = self.mu.cpu()[k] + einsum(L[k], eps, "n d e, n e -> n d")       # (n, D)
        return x.to(device=self.mu.device, dtype=torch.float32)

    def __repr__(self) -> str:
        c = self.config
        fitted = f", iterations={len(self.history)}" if self.history else ""
        return f"GaussianMixture(n_components={c.n_components}{fitted})"
