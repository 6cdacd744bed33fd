"""Chapter 04 (GANs): the checks, the snapshot scrubber widget, and the lesson's inline
code against coursekit.models.gan."""
from __future__ import annotations

import nbformat
import pytest
import torch

from coursekit.checks import ch04
from coursekit.data import ring_centers, ring_of_gaussians
from coursekit.models import gan
from nbtools import exec_tagged_cells, notebook


# The checks' right and wrong answers live in tests/answers/ch04.py and are run by
# tests/test_check_contract.py; this file keeps what is specific to the chapter.

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
                        n_snapshot=16, progress=False)
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
