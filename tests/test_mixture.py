"""coursekit.models.mixture against torch.distributions and scikit-learn."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from coursekit.models.mixture import PRESETS, GaussianMixture, MixtureConfig, gaussian_log_prob


def random_params(K=3, D=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(K, D, generator=g, dtype=torch.float64) * 2
    A = torch.randn(K, D, D, generator=g, dtype=torch.float64)
    Sigma = A @ A.transpose(1, 2) + 0.3 * torch.eye(D, dtype=torch.float64)
    pi = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    return pi, mu, Sigma


def blobs(n=1200, seed=0):
    """Two well-separated Gaussian blobs with weights 0.7 / 0.3."""
    g = torch.Generator().manual_seed(seed)
    n0 = int(0.7 * n)
    a = torch.randn(n0, 2, generator=g) * 0.5 + torch.tensor([-3.0, 0.0])
    b = torch.randn(n - n0, 2, generator=g) @ torch.tensor([[0.6, 0.0], [0.3, 0.4]]) + torch.tensor([3.0, 1.0])
    return torch.cat([a, b])


@pytest.mark.parametrize("D", [1, 2, 3])
def test_gaussian_log_prob_matches_torch_distributions(D):
    _, mu, Sigma = random_params(K=4, D=D, seed=D)
    x = torch.randn(50, D, dtype=torch.float64)
    got = gaussian_log_prob(x, mu, Sigma)
    assert got.shape == (50, 4)
    ref = torch.stack([MultivariateNormal(mu[k], Sigma[k]).log_prob(x) for k in range(4)], 1)
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10)


def test_log_prob_and_responsibilities_match_the_mixture_formula():
    pi, mu, Sigma = random_params()
    gmm = GaussianMixture(n_components=3)
    gmm.pi, gmm.mu, gmm.Sigma = pi, mu, Sigma
    x = torch.randn(40, 2, dtype=torch.float64) * 3
    pdf = torch.stack([pi[k] * MultivariateNormal(mu[k], Sigma[k]).log_prob(x).exp()
                       for k in range(3)], 1)                                    # (N, K)
    torch.testing.assert_close(gmm.log_prob(x), pdf.sum(1).log(), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(gmm.responsibilities(x), pdf / pdf.sum(1, keepdim=True),
                               atol=1e-10, rtol=1e-10)


def test_em_never_lowers_the_likelihood_and_recovers_two_blobs():
    x = blobs()
    gmm = GaussianMixture(n_components=2, n_iter=200).fit(x)
    h = gmm.history
    assert all(b >= a - 1e-9 for a, b in zip(h, h[1:])), "EM lowered the log-likelihood"
    order = torch.argsort(gmm.mu[:, 0])
    torch.testing.assert_close(gmm.pi[order], torch.tensor([0.7, 0.3], dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(gmm.mu[order], torch.tensor([[-3.0, 0.0], [3.0, 1.0]], dtype=torch.float64),
                               atol=0.1, rtol=0)
    torch.testing.assert_close(gmm.Sigma[order[0]], 0.25 * torch.eye(2, dtype=torch.float64), atol=0.05, rtol=0)
    assert h[-1] == pytest.approx(gmm.log_prob(x).mean().item(), rel=1e-9)


def test_em_reaches_scikit_learns_likelihood():
    from sklearn.mixture import GaussianMixture as SkGMM
    from coursekit.data import make_moons
    x, _ = make_moons(400, noise=0.1, seed=0)
    ours = GaussianMixture(n_components=4, n_iter=300, tol=1e-8).fit(x)
    sk = SkGMM(n_components=4, covariance_type="full", n_init=5, max_iter=500, tol=1e-8,
               reg_covar=ours.config.reg, random_state=0).fit(x.double().numpy())
    # Different starts may end in different local optima: ours must be as good within 0.05 nats.
    assert ours.history[-1] >= sk.score(x.double().numpy()) - 0.05


def test_samples_are_seeded_and_follow_the_mixture():
    pi, mu, Sigma = random_params(seed=3)
    gmm = GaussianMixture(n_components=3)
    gmm.pi, gmm.mu, gmm.Sigma = pi, mu, Sigma
    a = gmm.sample(20_000, generator=torch.Generator().manual_seed(0))
    b = gmm.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert a.shape == (20_000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    mean = (pi[:, None] * mu).sum(0)
    second = (pi[:, None, None] * (Sigma + mu[:, :, None] * mu[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    torch.testing.assert_close(a.double().mean(0), mean, atol=0.08, rtol=0)
    torch.testing.assert_close(torch.cov(a.double().T), cov, atol=0.25, rtol=0.05)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="n_components"):
        MixtureConfig(n_components=0)
    with pytest.raises(ValueError, match="reg"):
        MixtureConfig(reg=-1.0)
    with pytest.raises(RuntimeError, match="fit"):
        GaussianMixture().log_prob(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="at least"):
        GaussianMixture(n_components=5).fit(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        GaussianMixture().fit(torch.zeros(10))
    assert GaussianMixture(PRESETS["small"]).config.n_components == 3
    assert GaussianMixture(PRESETS["moons"], n_iter=5).config.n_iter == 5
    assert math.isfinite(GaussianMixture(n_components=1).fit(blobs(50)).history[-1])
