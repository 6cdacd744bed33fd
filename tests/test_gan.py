"""Unit tests of coursekit.models.gan against independent oracles."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from coursekit.data import grid_centers, ring_centers, ring_of_gaussians
from coursekit.models import gan

TOL = 1e-6


def _logits(seed, n=32, scale=4.0):
    return scale * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- losses: compared with binary cross-entropy on probabilities, in float64 ------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_discriminator_loss_is_bce_with_labels_1_for_real_0_for_fake(seed):
    real, fake = _logits(seed, 32), _logits(seed + 100, 20)
    oracle = (F.binary_cross_entropy(torch.sigmoid(real), torch.ones_like(real))
              + F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros_like(fake)))
    assert gan.discriminator_loss(real, fake).item() == pytest.approx(oracle.item(), abs=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generator_losses_match_their_formulas(seed):
    fake = _logits(seed)
    d = torch.sigmoid(fake)
    assert gan.generator_loss_minimax(fake).item() == pytest.approx(torch.log(1 - d).mean().item(), abs=TOL)
    assert gan.generator_loss_nonsaturating(fake).item() == pytest.approx(-torch.log(d).mean().item(), abs=TOL)


@pytest.mark.parametrize("name, expected_grad", [
    ("minimax", lambda d: -d),                 # d/dlogit log(1 - sigmoid) = -D: vanishes as D -> 0
    ("nonsaturating", lambda d: -(1 - d)),     # d/dlogit -log sigmoid = -(1 - D): ~ -1 as D -> 0
])
def test_generator_loss_gradients_with_respect_to_logits(name, expected_grad):
    fake = _logits(3, 16).requires_grad_(True)
    gan.GENERATOR_LOSSES[name](fake).backward()
    d = torch.sigmoid(fake.detach())
    torch.testing.assert_close(fake.grad, expected_grad(d) / len(d), atol=TOL, rtol=0)


def test_minimax_saturates_where_nonsaturating_does_not():
    fake = torch.tensor([-10.0], requires_grad=True)     # D is sure the fake is fake
    (g_mm,) = torch.autograd.grad(gan.generator_loss_minimax(fake), fake)
    (g_ns,) = torch.autograd.grad(gan.generator_loss_nonsaturating(fake), fake)
    assert abs(g_mm.item()) < 1e-4 and abs(g_ns.item()) > 0.99


def test_losses_are_finite_at_extreme_logits():
    big = torch.tensor([200.0])
    assert gan.discriminator_loss(big, -big).item() == pytest.approx(0.0, abs=1e-6)
    assert gan.discriminator_loss(-big, big).item() == pytest.approx(400.0, rel=1e-6)
    assert gan.generator_loss_nonsaturating(-big).item() == pytest.approx(200.0, rel=1e-6)
    assert gan.generator_loss_minimax(big).item() == pytest.approx(-200.0, rel=1e-6)


# -- packing ------------------------------------------------------------------------------

@pytest.mark.parametrize("b, m, d", [(3, 1, 2), (4, 2, 2), (2, 4, 3), (5, 4, 64)])
def test_pack_joins_consecutive_samples(b, m, d):
    x = torch.randn(b * m, d)
    out = gan.pack(x, m)
    oracle = torch.stack([torch.cat([x[i * m + j] for j in range(m)]) for i in range(b)])
    assert out.shape == (b, m * d)
    assert torch.equal(out, oracle)


def test_pack_rejects_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="groups of 4"):
        gan.pack(torch.randn(6, 2), 4)


# -- networks -----------------------------------------------------------------------------

@pytest.mark.parametrize("pack", [1, 2, 4])
def test_mlp_shapes(pack):
    cfg = gan.GANConfig(hidden=16, n_layers=2, pack=pack)
    G, D = gan.make_gan(cfg)
    x = G(torch.randn(8 * pack, cfg.latent_dim))
    assert x.shape == (8 * pack, 2)
    assert D(x).shape == (8,)


@pytest.mark.parametrize("pack", [1, 2])
def test_image_shapes_and_range(pack):
    cfg = gan.preset("digits", hidden=8, pack=pack)
    G, D = gan.make_gan(cfg)
    x = G(torch.randn(6 * pack, cfg.noise_dim))
    assert x.shape == (6 * pack, 1, 8, 8)
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0
    assert D(x).shape == (6,)
    assert D(x.reshape(6 * pack, 64)).shape == (6,)      # flat images work too


def test_pack_changes_what_the_discriminator_sees():
    """With m = 2, swapping the two samples of a pack changes D's score (it sees both)."""
    cfg = gan.GANConfig(hidden=16, n_layers=2, pack=2)
    torch.manual_seed(0)
    _, D = gan.make_gan(cfg)
    x = torch.randn(2, 2)
    assert D(x).shape == (1,)
    assert not torch.allclose(D(x), D(x.flip(0)))


def test_island_latent_picks_islands_uniformly_and_places_points():
    torch.manual_seed(0)
    latent = gan.IslandLatent(4, 2, init_std=0.5)
    z = torch.randn(20000, 3, generator=torch.Generator().manual_seed(1))
    k = latent.island(z)
    u = 0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2)))          # the normal CDF, written out
    assert torch.equal(k, (4 * u).floor().long().clamp(max=3))
    shares = torch.bincount(k, minlength=4).float() / len(k)
    torch.testing.assert_close(shares, torch.full((4,), 0.25), atol=0.015, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(latent(z), latent.mu[k] + 0.5 * z[:, 1:])


@pytest.mark.parametrize("changes, out_shape", [({}, (4, 2)),
                                                 (dict(data_dim=64, image_size=8, output="sigmoid"), (4, 1, 8, 8))])
def test_generators_with_islands_take_one_extra_noise_number(changes, out_shape):
    cfg = gan.GANConfig(hidden=8, n_layers=1, n_islands=5, **changes)
    assert cfg.noise_dim == cfg.latent_dim + 1
    G, _ = gan.make_gan(cfg)
    assert G(torch.randn(4, cfg.noise_dim)).shape == out_shape
    assert gan.sample(G, 4, seed=0).shape == out_shape


@pytest.mark.parametrize("bad", [dict(loss="wasserstein"), dict(image_size=8),
                                 dict(output="tanh"), dict(pack=0),
                                 dict(n_islands=-1)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        gan.GANConfig(**bad)


def test_presets():
    fix, plain = gan.preset("ring-islands"), gan.preset("ring-plain")
    assert fix.n_islands > 8 and fix.lr_decay and fix.ema > 0       # islands + averaging
    assert plain.n_islands == 0 and plain.pack == 1                 # the textbook GAN:
    assert not plain.lr_decay and plain.ema == 0                    # constant lr, no averaging
    assert gan.preset("tiny", hidden=4).hidden == 4
    assert gan.PRESETS["tiny"].hidden != 4              # preset() returns a copy
    with pytest.raises(KeyError, match="ring-plain"):
        gan.preset("nope")


# -- one training step, against a hand-written SGD update ---------------------------------

@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_train_step_equals_manual_sgd_updates(loss):
    cfg = gan.GANConfig(hidden=8, n_layers=2, pack=2)
    torch.manual_seed(0)
    G, D = gan.make_gan(cfg)
    G0, D0 = copy.deepcopy(G), copy.deepcopy(D)
    x, _ = ring_of_gaussians(16, seed=1)
    z = torch.randn(16, cfg.latent_dim)
    lr = 0.05
    out = gan.train_step(G, D, torch.optim.SGD(G.parameters(), lr), torch.optim.SGD(D.parameters(), lr),
                         x, z, loss=loss)
    # oracle: D's gradient at the old weights, then G's gradient through the NEW D
    d_real, d_fake = torch.sigmoid(D0(x)), torch.sigmoid(D0(G0(z)))
    loss_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    grads_d = torch.autograd.grad(loss_d, list(D0.parameters()))
    with torch.no_grad():
        for p, g in zip(D0.parameters(), grads_d):
            p -= lr * g
    d_new = torch.sigmoid(D0(G0(z)))
    loss_g = torch.log(1 - d_new).mean() if loss == "minimax" else -torch.log(d_new).mean()
    grads_g = torch.autograd.grad(loss_g, list(G0.parameters()))
    with torch.no_grad():
        for p, g in zip(G0.parameters(), grads_g):
            p -= lr * g
    for a, b in zip(list(D.parameters()) + list(G.parameters()),
                    list(D0.parameters()) + list(G0.parameters())):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert out["loss_d"] == pytest.approx(loss_d.item(), abs=1e-6)
    assert out["loss_g"] == pytest.approx(loss_g.item(), abs=1e-6)
    assert 0 < out["d_fake"] < 1 and 0 < out["d_real"] < 1


def test_train_step_moves_each_player_the_right_way():
    """A small SGD step raises D's logits on real data and lowers them on the fakes;
    then G's step makes its fakes look more real to the updated D."""
    cfg = gan.GANConfig(hidden=16, n_layers=2)
    torch.manual_seed(1)
    G, D = gan.make_gan(cfg)
    G_old, D_old = copy.deepcopy(G), copy.deepcopy(D)
    x, _ = ring_of_gaussians(64, seed=2)
    z = torch.randn(64, cfg.latent_dim)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), 1e-2), torch.optim.SGD(D.parameters(), 1e-2)
    gan.train_step(G, D, opt_g, opt_d, x, z)
    with torch.no_grad():
        fake_old = G_old(z)
        assert gan.discriminator_loss(D(x), D(fake_old)) < gan.discriminator_loss(D_old(x), D_old(fake_old))
        assert gan.generator_loss_nonsaturating(D(G(z))) < gan.generator_loss_nonsaturating(D(fake_old))


# -- sampling, averaging, training --------------------------------------------------------

def test_sample_is_repeatable_gradient_free_and_restores_mode():
    cfg = gan.preset("digits", hidden=8)
    G, _ = gan.make_gan(cfg)
    G.train()
    a, b = gan.sample(G, 5, seed=3), gan.sample(G, 5, seed=3)
    assert a.shape == (5, 1, 8, 8) and torch.equal(a, b)
    assert not a.requires_grad
    assert G.training                                     # put back in training mode
    assert not torch.equal(a, gan.sample(G, 5, seed=4))


def test_ema_averages_parameters_and_copies_buffers():
    from coursekit.models.ema import EMA
    cfg = gan.preset("tiny", standardise=True)
    torch.manual_seed(0)
    G, _ = gan.make_gan(cfg)
    ema = EMA(G, 0.9)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
        G.scale.fill_(3.0)
    before = [p.clone() for p in ema.model.parameters()]
    ema.update(G)
    for p_ema, p0, p in zip(ema.model.parameters(), before, G.parameters()):
        torch.testing.assert_close(p_ema, 0.9 * p0 + 0.1 * p)
    assert ema.model.scale.item() == 3.0                  # a buffer follows the model
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_train_gan_leaves_the_global_random_state_alone():
    x, _ = ring_of_gaussians(200)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    run = gan.train_gan(gan.preset("tiny"), x, 3, seed=2, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert run.model is run.generator and run.config == gan.preset("tiny") and run.seconds > 0


def test_train_gan_is_deterministic_and_records_snapshots():
    x, _ = ring_of_gaussians(500)
    runs = [gan.train_gan(gan.preset("tiny", pack=2), x, 20, seed=5, snapshot_every=5,
                          n_snapshot=50, progress=False) for _ in range(2)]
    a, b = runs
    assert [s["step"] for s in a.snapshots] == [0, 5, 10, 15, 20]
    assert a.snapshots[-1]["samples"].shape == (50, 2)
    assert a.history["loss_d"] == b.history["loss_d"]
    assert torch.equal(gan.sample(a.generator, 10, seed=0), gan.sample(b.generator, 10, seed=0))
    assert len(a.history["loss_g"]) == 20 and all(math.isfinite(v) for v in a.history["loss_g"])
    assert a.raw_generator is not a.generator            # EMA copy returned


def test_train_gan_standardises_the_data_for_mlp_nets():
    x, _ = ring_of_gaussians(500)
    plain = gan.train_gan(gan.preset("tiny"), 10 * x, 2, progress=False)
    assert plain.generator.scale.item() == 1.0                 # off by default
    run = gan.train_gan(gan.preset("tiny", standardise=True), 10 * x, 2, progress=False)
    for net in (run.generator, run.discriminator, run.raw_generator):
        assert net.scale.item() == pytest.approx(10 * x.std().item(), rel=1e-6)
    D = run.discriminator
    with torch.no_grad():                          # D sees x / scale; G's output is net * scale
        torch.testing.assert_close(D(x), D.net(x / D.scale).squeeze(1))
        z = torch.randn(5, 2)
        torch.testing.assert_close(run.generator(z), run.generator.net(z) * run.generator.scale)


def test_train_digit_gan_entry_point():
    run = gan.train_digit_gan(3, progress=False)
    G, history = run.model, run.history
    x = gan.sample(G, 4, seed=0)
    assert x.shape == (4, 1, 8, 8) and len(history["loss_d"]) == 3
    assert not G.training


# -- mode statistics: hand-made cases and a loop-based oracle ------------------------------

def _oracle_mode_stats(x, c, std):
    shares = [0] * len(c)
    good = 0
    for p in x.tolist():
        d = [math.dist(p, q) for q in c.tolist()]
        k = min(range(len(d)), key=d.__getitem__)
        if d[k] < 3 * std:
            good += 1
            shares[k] += 1
    return sum(s / len(x) >= 0.01 for s in shares), good / len(x)


@pytest.mark.parametrize("centres, std", [(ring_centers(), 0.02), (grid_centers(), 0.05)])
@pytest.mark.parametrize("seed", [0, 1])
def test_mode_stats_matches_a_loop_oracle(centres, std, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, len(centres), (600,), generator=g)
    k[k % 3 == 0] = 0                                    # unbalanced modes
    x = centres[k] + 2.0 * std * torch.randn(600, 2, generator=g)  # some beyond 3 std
    x[:30] = 3 * torch.rand(30, 2, generator=g)          # a few stray points
    stats = gan.mode_stats(x, centres, std)
    covered, quality = _oracle_mode_stats(x, centres, std)
    assert stats.modes_covered == covered
    assert stats.high_quality == pytest.approx(quality, abs=1e-6)
    assert stats.shares.sum().item() == pytest.approx(quality, abs=1e-6)


@pytest.mark.parametrize("points, covered, quality", [
    (ring_centers().repeat(10, 1), 8, 1.0),                          # every mode
    (ring_centers()[:1].repeat(80, 1), 1, 1.0),                      # collapsed to one mode
    (torch.zeros(50, 2), 0, 0.0),                                    # the origin: no mode
    (torch.cat([ring_centers()[:1].repeat(99, 1), ring_centers()[1:2]]), 2, 1.0),  # 1% counts
    (torch.cat([ring_centers()[:1].repeat(199, 1), ring_centers()[1:2]]), 1, 1.0),  # 0.5% not
])
def test_mode_stats_hand_made_cases(points, covered, quality):
    stats = gan.mode_stats(points, ring_centers(), 0.02)
    assert (stats.modes_covered, stats.high_quality) == (covered, pytest.approx(quality))
    assert "modes covered" in str(stats)
