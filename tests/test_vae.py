"""coursekit.models.vae and the latent grid explorer (chapter 05).

Oracles: torch.distributions for the KL and the Gaussian samples, a hand-written
Bernoulli log-likelihood for the reconstruction term, finite differences for the
gradients of the trick, and the lesson's inline cells for the package itself.
"""
import math

import pytest
import torch

from coursekit.models import vae as V
from nbtools import exec_tagged_cells, notebook

NANO = V.VAEConfig.preset("vae-nano")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# -- configuration and shapes -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(V.PRESETS))
def test_presets_build_models_with_the_right_shapes(name):
    config = V.VAEConfig.preset(name)
    model = V.VAE(config)
    x = torch.rand(5, 1, config.image_size, config.image_size, generator=_gen(0))
    x_logits, mu, logvar = model(x)
    assert x_logits.shape == x.shape
    assert mu.shape == logvar.shape == (5, config.n_latent)
    assert model.sample(3).shape == (3, 1, 8, 8)
    assert model.encode(x).shape == (5, config.n_latent)


def test_preset_overrides_and_unknown_names():
    assert V.VAEConfig.preset("digits-2d", n_latent=3).n_latent == 3
    assert V.VAEConfig.preset("digits-2d").n_pixels == 64
    with pytest.raises(KeyError, match="presets"):
        V.VAEConfig.preset("digits-99d")


# -- the reparameterisation trick ---------------------------------------------------------------

@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (1.5, 0.5), (-2.0, 3.0)])
def test_reparameterise_matches_the_gaussian_it_stands_for(mu, sigma):
    n = 40000
    mus = torch.full((n, 1), mu)
    logvar = torch.full((n, 1), 2 * math.log(sigma))
    z = V.reparameterise(mus, logvar, generator=_gen(1))
    # mean within 5 standard errors; standard deviation within 3%
    assert abs(z.mean().item() - mu) < 5 * sigma / math.sqrt(n)
    assert z.std().item() == pytest.approx(sigma, rel=0.03)


def test_reparameterise_gradients_match_finite_differences():
    """d z / d logvar from autograd equals a central difference with the same eps."""
    mu = torch.randn(6, 3, generator=_gen(2), dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(6, 3, generator=_gen(3), dtype=torch.float64, requires_grad=True)
    z = V.reparameterise(mu, logvar, generator=_gen(4))
    z.sum().backward()
    h = 1e-6
    with torch.no_grad():
        up = V.reparameterise(mu, logvar + h, generator=_gen(4))
        down = V.reparameterise(mu, logvar - h, generator=_gen(4))
    assert torch.allclose(logvar.grad, (up - down) / (2 * h), atol=1e-6)
    assert torch.allclose(mu.grad, torch.ones_like(mu))


def test_reparameterise_is_repeatable_with_a_generator_and_fresh_without():
    mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
    assert torch.equal(V.reparameterise(mu, logvar, _gen(7)), V.reparameterise(mu, logvar, _gen(7)))
    assert not torch.equal(V.reparameterise(mu, logvar), V.reparameterise(mu, logvar))


# -- the two parts of the ELBO --------------------------------------------------------------------

@pytest.mark.parametrize("seed, b, l", [(0, 4, 2), (1, 7, 5), (2, 1, 8)])
def test_kl_matches_torch_distributions(seed, b, l):
    g = _gen(seed)
    mu, logvar = torch.randn(b, l, generator=g), 1.5 * torch.randn(b, l, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(l), torch.ones(l))
    expected = torch.distributions.kl_divergence(q, p).sum(1)                 # (B,)
    assert torch.allclose(V.kl_divergence(mu, logvar), expected, atol=1e-5, rtol=1e-5)


def test_kl_is_zero_exactly_at_the_prior():
    assert torch.equal(V.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))


@pytest.mark.parametrize("binary", [False, True])
def test_reconstruction_loss_is_the_bernoulli_negative_log_likelihood(binary):
    g = _gen(5)
    x = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    if binary:
        x = (x > 0.5).double()
    logits = 3 * torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=(1, 2, 3))  # (B,)
    assert torch.allclose(V.reconstruction_loss(logits, x), expected, atol=1e-9)


@pytest.mark.parametrize("beta", [1.0, 0.5, 4.0])
def test_negative_elbo_is_recon_plus_beta_kl(beta):
    g = _gen(6)
    x = torch.rand(5, 1, 8, 8, generator=g)
    logits, mu, logvar = torch.randn(5, 1, 8, 8, generator=g), torch.randn(5, 2, generator=g), \
        torch.randn(5, 2, generator=g)
    loss, recon, kl = V.negative_elbo(x, logits, mu, logvar, beta)
    assert recon.item() == pytest.approx(V.reconstruction_loss(logits, x).mean().item(), rel=1e-6)
    assert kl.item() == pytest.approx(V.kl_divergence(mu, logvar).mean().item(), rel=1e-6)
    assert loss.item() == pytest.approx(recon.item() + beta * kl.item(), rel=1e-6)


def test_negative_elbo_bounds_the_exact_log_likelihood_of_a_tiny_model():
    """On a decoder with 1 pixel and a 1-D latent, -log p(x) by numerical integration
    is below the negative ELBO averaged over many draws of eps (Jensen's inequality)."""
    torch.manual_seed(0)
    config = V.VAEConfig(image_size=1, n_hidden=8, n_latent=1)
    model = V.VAE(config).double()
    x = torch.tensor([[[[1.0]]]], dtype=torch.float64)                       # (1, 1, 1, 1)
    zs = torch.linspace(-8, 8, 20001, dtype=torch.float64).view(-1, 1)      # (M, 1)
    with torch.no_grad():
        log_px_z = -V.reconstruction_loss(model.decoder(zs), x.expand(len(zs), 1, 1, 1))
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(zs[:, 0])
        log_px = torch.logsumexp(log_px_z + log_pz, 0) + math.log(zs[1, 0] - zs[0, 0])
        xs = x.expand(20000, 1, 1, 1)
        neg_elbo = V.negative_elbo(xs, *model(xs, _gen(0)))[0]
    assert -log_px.item() <= neg_elbo.item() + 1e-3


def test_importance_sampled_log_likelihood_matches_the_exact_one_and_tops_the_elbo():
    """On a 1-pixel model with a 1-D latent, log p(x) by numerical integration is matched by
    the estimate with many codes, and the estimate grows with K above the ELBO."""
    torch.manual_seed(1)
    config = V.VAEConfig(image_size=1, n_hidden=8, n_latent=1)
    model = V.VAE(config).double()
    for x_value in (0.0, 1.0):
        x = torch.tensor([[[[x_value]]]], dtype=torch.float64)
        zs = torch.linspace(-8, 8, 20001, dtype=torch.float64).view(-1, 1)
        with torch.no_grad():
            log_px_z = -V.reconstruction_loss(model.decoder(zs), x.expand(len(zs), 1, 1, 1))
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(zs[:, 0])
            exact = (torch.logsumexp(log_px_z + log_pz, 0) + math.log(zs[1, 0] - zs[0, 0])).item()
            xs = x.expand(4000, 1, 1, 1)
            elbo = -V.negative_elbo(xs, *model(xs, _gen(0)))[0].item()
        model.float()
        est = {k: V.log_likelihood(model, x.float().expand(200, 1, 1, 1), n_samples=k,
                                   generator=_gen(k)).mean().item() for k in (1, 10, 1000)}
        model.double()
        assert est[1] == pytest.approx(elbo, abs=0.02)
        assert elbo - 0.02 <= est[10] <= est[1000] + 0.02
        assert est[1000] == pytest.approx(exact, abs=0.01)
        assert elbo <= exact + 1e-3


def test_binarise_draws_zeros_and_ones_with_the_grey_level_as_probability():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 2, 2).expand(20000, 1, 2, 2)
    b = V.binarise(x, _gen(3))
    assert V.is_binary(b) and not V.is_binary(x)
    assert torch.allclose(b.mean(0), x[0], atol=0.015)
    assert torch.equal(V.binarise(b, _gen(4)), b)                  # 0/1 images stay as they are


# -- the model's helpers ---------------------------------------------------------------------------

def test_helpers_run_without_gradients_and_return_images_in_unit_range():
    torch.manual_seed(0)
    model = V.VAE(NANO)
    x = torch.rand(6, 1, 8, 8, generator=_gen(8))
    for out in (model.sample(6, generator=_gen(9)), model.reconstruct(x), model.decode(torch.zeros(6, 2))):
        assert out.shape == (6, 1, 8, 8)
        assert not out.requires_grad
        assert 0.0 <= out.min().item() and out.max().item() <= 1.0
    assert not model.encode(x).requires_grad
    assert torch.equal(model.sample(4, generator=_gen(3)), model.sample(4, generator=_gen(3)))


def test_reconstruct_is_the_decoded_posterior_mean():
    torch.manual_seed(1)
    model = V.VAE(NANO)
    x = torch.rand(3, 1, 8, 8, generator=_gen(2))
    with torch.no_grad():
        mu, _ = model.encoder(x)
        expected = torch.sigmoid(model.decoder(mu))
    assert torch.allclose(model.reconstruct(x), expected)


# -- training --------------------------------------------------------------------------------------

def test_train_vae_lowers_the_validation_negative_elbo_and_is_repeatable():
    from coursekit.data import load_digits
    data = load_digits(seed=0)
    before = V.evaluate(V.VAE(NANO), data.x_val, _gen(0))["neg_elbo"]
    torch.manual_seed(5)
    state = torch.get_rng_state()
    run = V.train_vae(NANO, data, n_steps=150, lr=3e-3, eval_every=50, progress=False)
    assert torch.equal(torch.get_rng_state(), state)                # no global side effect
    model, history = run.model, run.history
    assert run.config == NANO and run.seconds > 0
    after = V.evaluate(model, data.x_val, _gen(0))
    assert after["neg_elbo"] < before - 8, (before, after)          # about 44 -> below 34 nats
    assert after["neg_elbo"] == pytest.approx(after["recon"] + after["kl"])
    assert len(history["loss"]) == 150 and len(history["val_neg_elbo"]) == 4  # steps 0, 50, 100, 149
    assert history.seconds_per_step > 0
    again = V.train_vae(NANO, data, n_steps=150, lr=3e-3, eval_every=50, progress=False).model
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_train_vae_accepts_a_plain_tensor_of_images():
    x = torch.rand(64, 1, 8, 8, generator=_gen(3))
    history = V.train_vae(NANO, x, n_steps=5, batch_size=16, progress=False).history
    assert "val_recon" not in history.records and len(history["recon"]) == 5


# -- the lesson's inline model is the package's ------------------------------------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "05"))


@pytest.mark.parametrize("n_hidden, n_latent", [(256, 2), (32, 5)])
def test_inline_vae_matches_the_package_under_the_same_seed(lesson, n_hidden, n_latent):
    torch.manual_seed(0)
    inline = lesson["VAE"](n_hidden=n_hidden, n_latent=n_latent)
    torch.manual_seed(0)
    package = V.VAE(V.VAEConfig(n_hidden=n_hidden, n_latent=n_latent))
    for (name_a, a), (name_b, b) in zip(inline.named_parameters(), package.named_parameters()):
        assert name_a == name_b and torch.equal(a, b), name_a
    x = torch.rand(9, 1, 8, 8, generator=_gen(5))
    out_a = lesson["negative_elbo"](x, *inline(x, _gen(6)), beta=0.7)
    out_b = V.negative_elbo(x, *package(x, _gen(6)), beta=0.7)
    for a, b in zip(out_a, out_b):
        assert torch.equal(a, b)


def test_inline_functions_match_the_package(lesson):
    g = _gen(7)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    logits, x = torch.randn(4, 1, 8, 8, generator=g), torch.rand(4, 1, 8, 8, generator=g)
    assert torch.equal(lesson["kl_divergence"](mu, logvar), V.kl_divergence(mu, logvar))
    assert torch.equal(lesson["reconstruction_loss"](logits, x), V.reconstruction_loss(logits, x))
    assert torch.equal(lesson["reparameterise"](mu, logvar, _gen(1)), V.reparameterise(mu, logvar, _gen(1)))


# -- the latent grid explorer -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def explorer():
    import coursekit as ck
    torch.manual_seed(0)
    model = V.VAE(NANO)
    points = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [0.0, 1.0]])
    return model, ck.widgets.latent_grid_explorer(model, points=points, labels=torch.tensor([3, 7, 1]))


def test_explorer_draws_the_decoder_at_the_chosen_point(explorer):
    model, w = explorer
    assert w.error == "" and w.n_draws >= 1
    before, draws = w.png, w.n_draws
    w.set(z1=1.5, z2=-0.5)
    assert w.png != before and w.n_draws == draws + 1
    assert torch.equal(w.z, torch.tensor([1.5, -0.5]))
    assert torch.allclose(w.digit, model.decode(torch.tensor([[1.5, -0.5]]))[0, 0])


@pytest.mark.parametrize("z1, z2, label", [(-1.8, -2.1, 3), (1.9, 1.7, 7), (0.1, 0.8, 1)])
def test_explorer_names_the_nearest_encoded_point(explorer, z1, z2, label):
    _, w = explorer
    w.set(z1=z1, z2=z2)
    assert w.nearest_label == label
    assert w.nearest_distance == pytest.approx(min(math.dist((z1, z2), p) for p in
                                                   [(-2, -2), (2, 2), (0, 1)]), abs=1e-5)


@pytest.mark.parametrize("n_grid, grid_range", [(4, 1.0), (7, 2.5), (2, 0.25)])
def test_explorer_grid_follows_its_sliders(explorer, n_grid, grid_range):
    model, w = explorer
    before = w.png
    w.set(n_grid=n_grid, grid_range=grid_range)
    assert w.png != before
    assert w.grid.shape == (n_grid, n_grid, 8, 8)
    assert w.grid_z.shape == (n_grid, n_grid, 2)
    # top-left is (-r, +r), bottom-right (+r, -r): z2 grows upwards as on the map
    assert w.grid_z[0, 0].tolist() == pytest.approx([-grid_range, grid_range])
    assert w.grid_z[-1, -1].tolist() == pytest.approx([grid_range, -grid_range])
    i, j = n_grid - 1, 0
    expected = model.decode(w.grid_z[i, j].view(1, 2))[0, 0]
    assert torch.allclose(w.grid[i, j], expected, atol=1e-6)


def test_explorer_accepts_plain_functions_and_larger_latents():
    import coursekit as ck
    w = ck.widgets.latent_grid_explorer(lambda z: torch.sigmoid(z.sum(1, keepdim=True)).expand(-1, 64),
                                        n_grid=3)
    assert w.error == "" and w.digit.shape == (8, 8) and w.nearest_label is None
    w.set(z1=2.0, z2=1.0)
    assert w.digit.mean().item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item(), abs=1e-6)
    torch.manual_seed(0)
    big = V.VAE(V.VAEConfig(n_hidden=16, n_latent=4))
    w = ck.widgets.latent_grid_explorer(big, points=torch.randn(10, 4), dims=(1, 3))
    w.set(z1=0.5, z2=-1.0)
    assert w.z.tolist() == [0.0, 0.5, 0.0, -1.0]
    assert torch.allclose(w.digit, big.decode(w.z.view(1, 4))[0, 0])


@pytest.mark.parametrize("kwargs, message", [
    ({"points": torch.zeros(5, 3)}, "points should be latent codes"),
    ({"labels": torch.zeros(5)}, "labels were given without points"),
    ({"points": torch.zeros(5, 2), "labels": torch.zeros(4)}, "4 labels for 5 points"),
    ({"dims": (0, 0)}, "dims must be two different"),
])
def test_explorer_rejects_bad_arguments(kwargs, message):
    import coursekit as ck
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=message):
        ck.widgets.latent_grid_explorer(V.VAE(NANO), **kwargs)


def test_explorer_rejects_objects_that_cannot_decode():
    import coursekit as ck
    with pytest.raises(TypeError, match="decode"):
        ck.widgets.latent_grid_explorer(42)


def test_explorer_keeps_the_old_picture_when_the_decoder_fails():
    import coursekit as ck
    calls = {"n": 0}

    def flaky(z):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("decoder broke")
        return torch.zeros(len(z), 64)

    w = ck.widgets.latent_grid_explorer(flaky, n_grid=2)
    before = w.png
    w.set(z1=1.0)
    assert "decoder broke" in w.error and w.png == before
