"""Chapter 12 (latent space): what is specific to the chapter. The lesson's inline versions
against coursekit.latent, slerp's geometry, Spearman against a brute-force count, directions
found on synthetic data, the latent sliders widget, and the exercises (the solutions pass,
the released stubs fail). The checks' answer table is run by tests/test_check_contract.py."""
from __future__ import annotations

import math

import nbformat
import pytest
import torch

from coursekit import latent as L
from coursekit.authoring.release import make_exercise
from coursekit.checks import CheckFailure, ch12
from nbtools import exec_answers, exec_tagged_cells, notebook

CHECKS = {"check_slerp": "slerp", "check_spearman": "spearman",
          "check_attribute_direction": "attribute_direction", "check_lerp_steps": "lerp_steps"}


# -- the lesson's inline versions against the package ---------------------------------------

@pytest.fixture(scope="module")
def inline():
    return exec_tagged_cells(notebook("notebooks", "12"), "inline",
                             namespace={"torch": torch, "math": math})


def test_inline_lerp_and_slerp_equal_the_package(inline):
    g = torch.Generator().manual_seed(0)
    for d in (2, 8, 64):
        z0, z1 = torch.randn(d, generator=g), 3 * torch.randn(d, generator=g)
        for t in (0.0, 0.25, 0.5, 0.9, 1.0):
            assert torch.allclose(inline["lerp"](z0, z1, t), L.lerp(z0, z1, t), atol=1e-6)
            assert torch.allclose(inline["slerp"](z0, z1, t), L.slerp(z0, z1, t), rtol=1e-4, atol=1e-5)


def test_inline_path_smoothness_equals_the_package(inline):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Sigmoid())
    path = L.path(torch.randn(3), torch.randn(3), 11, "slerp")             # (11, 3)
    assert torch.allclose(inline["path_smoothness"](net, path), L.path_smoothness(net, path), atol=1e-6)
    batch = L.path(torch.randn(4, 3), torch.randn(4, 3), 7, "lerp")       # (7, 4, 3)
    steps = L.path_smoothness(net, batch)
    assert steps.shape == (6, 4)
    for b in range(4):
        assert torch.allclose(steps[:, b], inline["path_smoothness"](net, batch[:, b]), atol=1e-6)


def test_inline_attributes_spearman_and_direction_equal_the_package(inline):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 1, 8, 8, generator=g)
    assert torch.allclose(inline["ink"](x), L.ink(x), atol=1e-5)
    assert torch.allclose(inline["slant"](x), L.slant(x), atol=1e-5)
    u, v = torch.randn(30, generator=g), torch.randn(30, generator=g)     # no ties
    assert inline["spearman"](u, v).item() == pytest.approx(L.spearman(u, v).item(), abs=1e-9)
    z, a = torch.randn(200, 5, generator=g), torch.randn(200, generator=g)
    assert torch.allclose(inline["mean_difference_direction"](z, a), L.mean_difference_direction(z, a),
                          atol=1e-6)


# -- slerp's geometry --------------------------------------------------------------------------

def test_slerp_reaches_both_ends_and_has_the_batch_shape():
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    p = L.slerp(z0, z1, torch.linspace(0, 1, 9))
    assert p.shape == (9, 5, 7)
    assert torch.allclose(p[0], z0, atol=1e-5) and torch.allclose(p[-1], z1, atol=1e-5)
    assert L.path(z0, z1, 4, "lerp").shape == (4, 5, 7)


def test_slerp_keeps_the_norm_and_turns_at_constant_speed_on_the_sphere():
    g = torch.Generator().manual_seed(3)
    z0 = torch.nn.functional.normalize(torch.randn(6, 32, generator=g), dim=1) * 4
    z1 = torch.nn.functional.normalize(torch.randn(6, 32, generator=g), dim=1) * 4
    p = L.slerp(z0, z1, torch.linspace(0, 1, 21))                           # (21, 6, 32)
    assert torch.allclose(p.norm(dim=-1), torch.full((21, 6), 4.0), atol=1e-4)
    u = p / p.norm(dim=-1, keepdim=True)
    angles = torch.arccos((u[1:] * u[:-1]).sum(-1).clamp(-1, 1))             # (20, 6)
    total = torch.arccos((z0 * z1).sum(-1) / 16)
    assert torch.allclose(angles, (total / 20).expand(20, 6), atol=1e-3)
    assert (L.lerp(z0, z1, 0.5).norm(dim=-1) < 4 - 1e-3).all()              # the chord dips


def test_slerp_falls_back_to_the_line_for_parallel_and_opposite_codes():
    a = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]])
    b = torch.stack([3 * a[0], -a[1]])
    t = torch.linspace(0, 1, 5)
    p = L.slerp(a, b, t)
    assert not torch.isnan(p).any()
    assert torch.allclose(p, L.lerp(a, b, t), atol=1e-6)


# -- Spearman against a brute-force count ------------------------------------------------------

def _brute_spearman(x, y):
    """Ranks by counting (ties get the mean of their places), then Pearson, in plain Python."""
    def ranks(v):
        return [sum(w < u for w in v) + (sum(w == u for w in v) + 1) / 2 for u in v]
    rx, ry = ranks(x.tolist()), ranks(y.tolist())
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den


@pytest.mark.parametrize("seed, n, levels", [(0, 10, 3), (1, 25, 5), (2, 40, 100), (3, 7, 2)])
def test_spearman_matches_a_brute_force_count(seed, n, levels):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (n,), generator=g).float()
    y = x + torch.randint(0, levels, (n,), generator=g).float()
    assert L.spearman(x, y).item() == pytest.approx(_brute_spearman(x, y), abs=1e-9)


def test_spearman_is_one_for_any_increasing_relation_and_ranks_average_ties():
    t = torch.linspace(-2, 2, 15)
    assert L.spearman(t, t.exp()).item() == pytest.approx(1.0)
    assert L.spearman(t, -t ** 3).item() == pytest.approx(-1.0)
    assert L.ranks(torch.tensor([3.0, 1, 3, 2, 3, 1])).tolist() == [5, 1.5, 5, 3, 5, 1.5]


# -- directions on synthetic data ----------------------------------------------------------------

def test_directions_recover_a_planted_direction():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(3000, 6, generator=g) + 1.0
    true = torch.nn.functional.normalize(torch.tensor([1.0, -2.0, 0.5, 0.0, 0.0, 1.0]), dim=0)
    attribute = z @ true + 0.05 * torch.randn(3000, generator=g) + 7
    assert (L.regression_direction(z, attribute) @ true).item() > 0.999
    assert (L.mean_difference_direction(z, attribute) @ true).item() > 0.95
    other = torch.tensor([1.0, 0, 0, 0, 0, 0])
    d = L.orthogonalise(true, other)
    assert abs((d @ other).item()) < 1e-6 and d.norm().item() == pytest.approx(1.0)


def test_class_direction_joins_the_class_means():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 14.0]])
    labels = torch.tensor([3, 3, 8, 8])
    assert L.class_direction(z, labels, 3, 8).tolist() == [10.0, 12.0]


def test_attributes_measure_ink_and_slant():
    leaning_right = torch.zeros(1, 1, 8, 8)
    leaning_left = torch.zeros(1, 1, 8, 8)
    upright = torch.zeros(1, 1, 8, 8)
    for r in range(8):
        leaning_right[0, 0, r, 7 - r] = 1          # top at the right
        leaning_left[0, 0, r, r] = 1
        upright[0, 0, r, 3] = 1
    assert L.ink(leaning_right).item() == 8
    assert L.slant(leaning_right).item() == pytest.approx(1.0)
    assert L.slant(leaning_left).item() == pytest.approx(-1.0)
    assert L.slant(upright).item() == pytest.approx(0.0, abs=1e-6)


# -- the widget ----------------------------------------------------------------------------------

@pytest.fixture()
def sliders():
    import coursekit as ck
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Sigmoid())

    def decode(z):
        return net(z).view(-1, 1, 8, 8)

    dirs = {"ink": torch.tensor([2.0, 0, 0, 0]), "slant": torch.tensor([0.0, 0, 0, 1])}
    z0 = torch.tensor([0.1, -0.2, 0.3, 0.0])
    return decode, z0, ck.widgets.latent_sliders(decode, z0, dirs)


def test_sliders_move_the_code_along_unit_directions_and_measure_the_image(sliders):
    decode, z0, w = sliders
    assert w.error == "" and torch.equal(w.z, z0)
    before, draws = w.png, w.n_draws
    w.set(ink=1.5, slant=-0.5)
    assert w.png != before and w.n_draws == draws + 1
    assert torch.allclose(w.z, z0 + torch.tensor([1.5, 0, 0, -0.5]))
    with torch.no_grad():
        expected = decode(w.z.view(1, 4))
    assert torch.allclose(w.image, expected[0, 0], atol=1e-6)
    assert w.measured["ink"] == pytest.approx(L.ink(expected).item(), abs=1e-4)
    assert w.measured["slant"] == pytest.approx(L.slant(expected).item(), abs=1e-4)
    assert w.base_measured["ink"] == pytest.approx(L.ink(decode(z0.view(1, 4))).item(), abs=1e-4)
    assert w.label is None


def test_sliders_name_the_digit_with_a_classifier():
    import coursekit as ck

    def classifier(x):                              # "digit" = 1 when the ink is high, else 0
        s = x.flatten(1).sum(1, keepdim=True)
        return torch.cat([40 - s, s - 40, torch.zeros(len(x), 8)], 1)

    def decode(z):
        return torch.sigmoid(z.sum(1, keepdim=True)).expand(-1, 64)

    w = ck.widgets.latent_sliders(decode, torch.zeros(2), {"up": torch.ones(2)}, classifier=classifier)
    assert w.label == 0 and w.base_label == 0
    w.set(up=2.0)
    assert w.label == 1 and 0.5 < w.confidence <= 1
    assert w.measured["ink"] > w.base_measured["ink"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"directions": {}}, ValueError, "at least one direction"),
    ({"directions": {"a": torch.zeros(4)}}, ValueError, "is zero"),
    ({"directions": {"a": torch.ones(3)}}, ValueError, "has shape"),
    ({"span": 0}, ValueError, "span"),
])
def test_sliders_reject_bad_arguments(kwargs, error, message):
    import coursekit as ck
    args = {"decode": lambda z: torch.zeros(len(z), 64), "z0": torch.zeros(4),
            "directions": {"a": torch.ones(4)}, **kwargs}
    with pytest.raises(error, match=message):
        ck.widgets.latent_sliders(**args)


# -- the exercises: the solutions pass, the released stubs fail ---------------------------------

def _run(nb) -> dict:
    return exec_answers(nb, {"__name__": "__exercise__"}, run_first=2)


@pytest.fixture(scope="module")
def solution_nb():
    return nbformat.read(notebook("solutions", "12"), as_version=4)


def test_every_check_has_a_check_cell_and_the_reverse(solution_nb):
    graded = {c.metadata["nbgrader"]["grade_id"] for c in solution_nb.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    public = {n for n in dir(ch12) if n.startswith("check_")}
    assert graded == public == set(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_the_solution_passes_and_the_stub_fails(solution_nb, check, capsys):
    solution = _run(solution_nb)
    getattr(ch12, check)(solution[CHECKS[check]])
    assert f"PASSED {check}" in capsys.readouterr().out
    stubs = _run(make_exercise(solution_nb, "12_latent.ipynb"))
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch12, check)(stubs[CHECKS[check]])



def test_the_slerp_check_refuses_a_package_dodge():
    with pytest.raises(CheckFailure, match="coursekit.latent.slerp"):
        ch12.check_slerp(lambda z0, z1, t: L.slerp(z0, z1, t))

