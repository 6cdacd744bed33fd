"""Chapter 04 (GANs): the checks, the snapshot scrubber widget, and the lesson's inline
code against coursekit.models.gan."""
from __future__ import annotations

import nbformat
import pytest
import torch
from einops import rearrange
from torch.nn import functional as F

from coursekit.checks import CheckFailure, ch04
from coursekit.data import ring_centers, ring_of_gaussians
from coursekit.models import gan
from nbtools import exec_tagged_cells, notebook


def stub(*args, **kwargs):
    raise NotImplementedError()


# -- wrong answers a learner might write -------------------------------------------------

def d_loss_swapped(real, fake):
    return F.softplus(real).mean() + F.softplus(-fake).mean()


def d_loss_sum(real, fake):
    return F.softplus(-real).sum() + F.softplus(fake).sum()


def d_loss_real_only(real, fake):
    return F.softplus(-real).mean()


def d_loss_unstable(real, fake):
    return -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())


def d_loss_cat_mean(real, fake):   # one mean over both batches: half the loss, wrong weights
    return torch.cat([F.softplus(-real), F.softplus(fake)]).mean()


def d_loss_negated(real, fake):
    return -gan.discriminator_loss(real, fake)


def g_loss_minimax(fake):
    return -F.softplus(fake).mean()


def g_loss_negated(fake):
    return -F.softplus(-fake).mean()


def g_loss_unstable(fake):
    return -torch.log(torch.sigmoid(fake)).mean()


def g_loss_detached(fake):
    return F.softplus(-fake.detach()).mean()


def g_loss_sum(fake):
    return F.softplus(-fake).sum()


def pack_transposed(x, m):
    return rearrange(x, "(m b) d -> b (m d)", m=m)


def pack_interleaved(x, m):
    return rearrange(x, "(b m) d -> b (d m)", m=m)


def pack_not_flat(x, m):
    return rearrange(x, "(b m) d -> b m d", m=m)


def pack_reshape(x, m):            # a correct answer written differently
    return x.reshape(-1, m * x.shape[1])


def _dist(samples, centres):
    return torch.cdist(samples.float(), centres.float()).min(1)


def mode_stats_any_count(samples, centres, std):       # one sample is enough to "cover"
    d, k = _dist(samples, centres)
    good = d < 3 * std
    return int((torch.bincount(k[good], minlength=len(centres)) > 0).sum()), good.float().mean().item()


def mode_stats_one_std(samples, centres, std):
    d, k = _dist(samples, centres)
    good = d < std
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), good.float().mean().item()


def mode_stats_nearest_only(samples, centres, std):    # forgets the 3-std test for coverage
    d, k = _dist(samples, centres)
    share = torch.bincount(k, minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), (d < 3 * std).float().mean().item()


def mode_stats_share_of_good(samples, centres, std):   # divides by the good samples only
    d, k = _dist(samples, centres)
    good = d < 3 * std
    share = torch.bincount(k[good], minlength=len(centres)).float() / max(int(good.sum()), 1)
    return int((share >= 0.01).sum()), good.float().mean().item()


def mode_stats_count_not_share(samples, centres, std):
    d, k = _dist(samples, centres)
    good = d < 3 * std
    share = torch.bincount(k[good], minlength=len(centres)).float() / len(samples)
    return int((share >= 0.01).sum()), int(good.sum())


def mode_stats_reference(samples, centres, std):
    s = gan.mode_stats(samples, centres, std)
    return s.modes_covered, s.high_quality


def _step(G, D, opt_g, opt_d, x_real, z, *, loss="nonsaturating", detach=True,
          zero_d=True, order="dg", zero_all_first=False):
    """A configurable train step, to produce typical mistakes."""
    if zero_all_first:
        opt_d.zero_grad()
        opt_g.zero_grad()
    x_fake = G(z)
    steps = []

    def d_step():
        fake = x_fake.detach() if detach else x_fake
        loss_d = gan.discriminator_loss(D(x_real), D(fake))
        if zero_d and not zero_all_first:
            opt_d.zero_grad()
        loss_d.backward(retain_graph=True)
        opt_d.step()
        steps.append(loss_d.item())

    def g_step():
        loss_g = gan.GENERATOR_LOSSES[loss](D(x_fake))
        if not zero_all_first:
            opt_g.zero_grad()
        loss_g.backward(retain_graph=True)
        opt_g.step()
        steps.append(loss_g.item())

    if order == "dg":
        d_step()
        g_step()
        return steps[0], steps[1]
    g_step()
    d_step()
    return steps[1], steps[0]


def step_reference(G, D, opt_g, opt_d, x_real, z):
    out = gan.train_step(G, D, opt_g, opt_d, x_real, z)
    return out["loss_d"], out["loss_g"]


def step_correct_own(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z)


def step_minimax(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, loss="minimax")


def step_g_first(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, order="gd")


def step_no_zero_d(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, zero_d=False)


def step_no_detach_zero_first(G, D, opt_g, opt_d, x_real, z):
    return _step(G, D, opt_g, opt_d, x_real, z, detach=False, zero_all_first=True)


def step_returns_dict(G, D, opt_g, opt_d, x_real, z):
    return gan.train_step(G, D, opt_g, opt_d, x_real, z)


CASES = [
    # (check, answer that must pass or None, wrong answers that must fail)
    (ch04.check_discriminator_loss, [gan.discriminator_loss],
     [stub, d_loss_swapped, d_loss_sum, d_loss_real_only, d_loss_unstable, d_loss_cat_mean,
      d_loss_negated, 1.0]),
    (ch04.check_generator_loss_nonsaturating, [gan.generator_loss_nonsaturating],
     [stub, g_loss_minimax, g_loss_negated, g_loss_unstable, g_loss_detached, g_loss_sum,
      gan.generator_loss_minimax]),
    (ch04.check_pack, [gan.pack, pack_reshape],
     [stub, pack_transposed, pack_interleaved, pack_not_flat]),
    (ch04.check_mode_stats, [mode_stats_reference],
     [stub, mode_stats_any_count, mode_stats_one_std, mode_stats_nearest_only,
      mode_stats_share_of_good, mode_stats_count_not_share]),
    (ch04.check_train_step, [step_reference, step_correct_own],
     [stub, step_minimax, step_g_first, step_no_zero_d, step_no_detach_zero_first,
      step_returns_dict]),
]

PASSING = [(check, ans) for check, good, _ in CASES for ans in good]
FAILING = [(check, ans) for check, _, bad in CASES for ans in bad]


def _name(x):
    return getattr(x, "__name__", repr(x))


@pytest.mark.parametrize("check, answer", PASSING, ids=[f"{_name(c)}-{_name(a)}" for c, a in PASSING])
def test_check_passes_on_a_correct_answer(check, answer, capsys):
    check(answer)
    assert capsys.readouterr().out.startswith(f"PASSED {check.__name__}")


@pytest.mark.parametrize("check, answer", FAILING, ids=[f"{_name(c)}-{_name(a)}" for c, a in FAILING])
def test_check_fails_on_a_wrong_answer(check, answer):
    with pytest.raises(CheckFailure) as info:
        check(answer)
    message = str(info.value)
    assert message.startswith(f"{check.__name__} failed")
    assert "hint" in message                           # always tells the learner what to try
    if answer is stub:
        assert "not written yet" in message


@pytest.mark.parametrize("answer, words", [
    (g_loss_minimax, "minimax"),
    (pack_transposed, "consecutive"),
    (d_loss_unstable, "softplus"),
    (mode_stats_any_count, "1%"),
])
def test_failure_messages_name_the_mistake(answer, words):
    check = {g_loss_minimax: ch04.check_generator_loss_nonsaturating, pack_transposed: ch04.check_pack,
             d_loss_unstable: ch04.check_discriminator_loss,
             mode_stats_any_count: ch04.check_mode_stats}[answer]
    with pytest.raises(CheckFailure, match=words):
        check(answer)


# -- the solutions notebook calls each check under its own grade_id ----------------------

def test_solution_check_cells_match_the_check_module():
    nb = nbformat.read(notebook("solutions", "04"), as_version=4)
    checks = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            checks[meta["grade_id"]] = cell.source
    expected = {n for n in dir(ch04) if n.startswith("check_")}
    assert set(checks) == expected
    for grade_id, source in checks.items():
        assert f"ch04.{grade_id}(" in source


# -- the snapshot scrubber widget ---------------------------------------------------------

@pytest.fixture(scope="module")
def ring_snapshots():
    x, _ = ring_of_gaussians(400)
    g = torch.Generator().manual_seed(0)
    snaps = [{"step": 0, "samples": 0.1 * torch.randn(200, 2, generator=g),
              "loss_d": float("nan"), "loss_g": float("nan")},
             {"step": 50, "samples": ring_centers()[:1].repeat(200, 1), "loss_d": 1.2, "loss_g": 0.8},
             {"step": 100, "samples": ring_centers().repeat(25, 1), "loss_d": 1.38, "loss_g": 0.7}]
    return x, snaps


def test_scrubber_redraws_and_reports_the_snapshot(ring_snapshots):
    from coursekit.widgets import snapshot_scrubber

    x, snaps = ring_snapshots
    w = snapshot_scrubber(snaps, real=x, centres=ring_centers(), std=0.02)
    assert w.current_step == 100 and w.stats.modes_covered == 8   # starts at the last one
    assert "step 100" in w.title_text and "8/8 modes" in w.title_text
    assert "loss_d 1.380" in w.title_text
    first = w.png
    w.set(index=1)
    assert w.current_step == 50 and w.stats.modes_covered == 1 and w.png != first
    assert w.n_draws == 2 and w.error == ""
    w.set(index=0)
    assert w.stats.modes_covered == 0 and "loss" not in w.title_text   # NaN losses hidden
    before = w.png
    w.set(show_real=False)
    assert w.png != before and w.current_step == 0


def test_scrubber_keeps_axis_limits_fixed(ring_snapshots):
    from coursekit.widgets import snapshot_scrubber

    x, snaps = ring_snapshots
    w = snapshot_scrubber(snaps, real=x)
    (x0, x1), _ = w._limits
    assert x0 < -2 and x1 > 2                            # the whole ring stays in view
    assert w.stats is None                               # no centres given: no statistics


def test_scrubber_shows_images_and_accepts_a_run():
    from coursekit.widgets import snapshot_scrubber

    x = torch.rand(300, 1, 8, 8)
    run = gan.train_gan(gan.preset("digits", hidden=4, batch_size=8), x, 4, snapshot_every=2,
                        n_snapshot=16, show=False)
    w = snapshot_scrubber(run)
    assert w.current_step == 4 and w.error == ""
    png = w.png
    w.set(index=0)
    assert w.current_step == 0 and w.png != png


@pytest.mark.parametrize("bad, words", [([], "at least one"), ([{"samples": torch.zeros(3, 2)}], "step")])
def test_scrubber_rejects_bad_snapshots(bad, words):
    from coursekit.widgets import snapshot_scrubber

    with pytest.raises(ValueError, match=words):
        snapshot_scrubber(bad)


# -- the lesson's inline code gives the same numbers as coursekit -------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "04"))


def test_inline_networks_match_the_package(lesson):
    for pack in (1, 4):
        cfg = gan.GANConfig(pack=pack)
        torch.manual_seed(0)
        G_inline, D_inline = lesson["Generator"](), lesson["Discriminator"](pack=pack)
        torch.manual_seed(0)
        G_pkg, D_pkg = gan.make_gan(cfg)
        z = torch.randn(8, 2)
        torch.testing.assert_close(G_inline(z), G_pkg(z), rtol=0, atol=0)
        x = torch.randn(8, 2)
        torch.testing.assert_close(D_inline(x), D_pkg(x), rtol=0, atol=0)


def test_inline_losses_and_pack_match_the_package(lesson):
    real, fake = 3 * torch.randn(16), 3 * torch.randn(16)
    for name in ("discriminator_loss",):
        torch.testing.assert_close(lesson[name](real, fake), getattr(gan, name)(real, fake))
    for name in ("generator_loss_minimax", "generator_loss_nonsaturating"):
        torch.testing.assert_close(lesson[name](fake), getattr(gan, name)(fake))
    x = torch.randn(12, 2)
    torch.testing.assert_close(lesson["pack"](x, 4), gan.pack(x, 4))


def test_inline_train_step_matches_the_package(lesson):
    cfg = gan.GANConfig(pack=2, hidden=32)
    params = []
    for step in (lesson["train_step"], gan.train_step):
        torch.manual_seed(0)
        G, D = gan.make_gan(cfg)
        opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
        x, _ = ring_of_gaussians(64, seed=0)
        z = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            out = step(G, D, opt_g, opt_d, x, z)
        params.append(torch.cat([p.flatten() for p in list(G.parameters()) + list(D.parameters())]))
        assert "loss_d" in out and "loss_g" in out
    torch.testing.assert_close(params[0], params[1], rtol=0, atol=0)


def test_check_mode_stats_names_per_mode_values_instead_of_a_count():
    def per_mode(samples, centres, std):              # forgot to count the covered modes
        stats = gan.mode_stats(samples, centres, std)
        return stats.shares >= 0.01, stats.high_quality

    with pytest.raises(CheckFailure, match="single number") as err:
        ch04.check_mode_stats(per_mode)
    assert "a tensor of shape (8,)" in str(err.value)
