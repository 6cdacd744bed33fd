"""Chapter 03: what is specific to this chapter (the answer table of its checks is
tests/answers/ch03.py, run by test_check_contract.py): every check refuses a result
passed instead of a function, the learning-rate explorer widget, the lesson's inline
code against coursekit's, and the notebooks' structure."""
from __future__ import annotations

import nbformat
import pytest
import torch

import coursekit as ck
from coursekit.autograd import Value
from coursekit.checks import ch03
from coursekit.checks.assertions import CheckFailure
from nbtools import exec_tagged_cells, notebook

GRADED = ["check_div", "check_softplus", "check_backward", "check_numerical_grad",
          "check_mlp_grads", "check_nesterov_step", "check_adamw_step"]


@pytest.mark.parametrize("name", GRADED)
def test_check_fails_when_given_a_result_not_a_function(name):
    with pytest.raises(CheckFailure, match="should be a function"):
        getattr(ch03, name)(3.0)


@pytest.mark.parametrize("name", GRADED)
def test_every_check_declares_its_bans(name):
    assert ch03.BANS[name], f"{name} bans nothing"


def test_the_tripwires_are_removed_after_a_check():
    before = (Value.__mul__, Value.backward, torch.Tensor.backward, torch.optim.AdamW)
    from answers.ch03 import div_composed
    with pytest.raises(CheckFailure):
        ch03.check_div(div_composed)
    assert (Value.__mul__, Value.backward, torch.Tensor.backward, torch.optim.AdamW) == before


# -- the learning-rate explorer ------------------------------------------------------------

@pytest.fixture(scope="module")
def explorer():
    return ck.widgets.lr_explorer(surface="bowl", optimizer="sgd", lr=0.05, steps=40)


def test_explorer_is_a_plot_widget_with_the_four_controls(explorer):
    assert isinstance(explorer, ck.widgets.PlotWidget)
    assert set(explorer.controls) == {"surface", "optimizer", "lr", "steps"}
    assert explorer.error == "" and explorer.png.startswith(b"\x89PNG")
    assert tuple(explorer.path.shape) == (41, 2) and len(explorer.losses) == 41


def test_explorer_redraws_when_the_learning_rate_moves(explorer):
    explorer.set(surface="bowl", optimizer="sgd", lr=0.05, steps=40)
    before, n, loss_before = explorer.png, explorer.n_draws, explorer.final_loss
    explorer.set(lr=0.1)
    assert explorer.n_draws == n + 1 and explorer.png != before
    assert explorer.final_loss < loss_before          # a larger stable step gets further
    assert not explorer.diverged and "fell" in explorer.status


def test_explorer_shows_divergence_with_a_message_not_a_crash(explorer):
    explorer.set(surface="bowl", optimizer="sgd", lr=0.14, steps=40)  # just above 2/15
    assert explorer.error == "" and explorer.diverged and "grew" in explorer.status
    explorer.set(lr=5.0)
    assert explorer.error == "" and explorer.diverged and "Diverged at step" in explorer.status
    assert explorer.result.blew_up_at is not None
    assert torch.isfinite(explorer.path).all()       # the path stops before it blows up


def test_explorer_stability_threshold_is_two_over_the_largest_curvature():
    from coursekit.widgets.lr_explorer import descend
    assert not descend("bowl", "sgd", 0.13, 300).diverged
    assert descend("bowl", "sgd", 0.136, 300).diverged


@pytest.mark.parametrize("surface", ["bowl", "rosenbrock", "himmelblau"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_explorer_every_surface_and_optimizer_draws(explorer, surface, optimizer):
    explorer.set(surface=surface, optimizer=optimizer, lr=1e-3, steps=20)
    assert explorer.error == ""
    assert explorer.final_loss < explorer.losses[0]   # a tiny step always goes downhill


def test_explorer_optimizer_and_steps_change_the_path(explorer):
    explorer.set(surface="rosenbrock", optimizer="sgd", lr=1e-3, steps=100)
    sgd_end = explorer.path[-1].clone()
    explorer.set(optimizer="momentum")
    assert not torch.allclose(explorer.path[-1], sgd_end)
    assert explorer.final_loss < 0.5                  # momentum gets far along the valley
    explorer.set(steps=10)
    assert tuple(explorer.path.shape) == (11, 2)


def test_explorer_path_follows_coursekit_optim():
    from coursekit.widgets.lr_explorer import SURFACES, descend
    run = descend("himmelblau", "adam", 0.1, 5)
    xy = torch.tensor(SURFACES["himmelblau"].start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([xy], lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        SURFACES["himmelblau"].f(xy[0], xy[1]).backward()
        opt.step()
    assert torch.allclose(run.path[-1], xy.detach(), atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"surface": "saddle"}, {"optimizer": "rmsprop"},
                                    {"lr": 0.0}, {"steps": 0}])
def test_explorer_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ck.widgets.lr_explorer(**kwargs)


# -- the lesson's inline code matches coursekit ---------------------------------------------

@pytest.fixture(scope="module")
def lesson_ns():
    return exec_tagged_cells(notebook("notebooks", "03"))


def _expression(V, x1, x2, x3):
    a, b, c = V(x1), V(x2), V(x3)
    d = (a * b + c / a - 2) ** 2
    e = d.tanh() + (b - c).relu() * a.sigmoid() + (c * c + 1).log() - (-a).exp() / 3
    out = e * d + 1.5 - b
    out.backward()
    return out.data, [a.grad, b.grad, c.grad]


@pytest.mark.parametrize("point", [(0.7, -1.2, 0.4), (-1.5, 0.3, 2.0), (0.2, 0.9, -0.6)])
def test_inline_value_gives_the_same_numbers_as_coursekit(lesson_ns, point):
    inline_value = lesson_ns["Value"]
    assert inline_value is not Value                  # the lesson's own class
    got = _expression(inline_value, *point)
    ref = _expression(Value, *point)
    assert got[0] == pytest.approx(ref[0], abs=1e-12)
    assert got[1] == pytest.approx(ref[1], abs=1e-12)


@pytest.mark.parametrize("name, make_ref", [
    ("SGD", lambda ps: ck.optim.SGD(ps, lr=0.1)),
    ("Momentum", lambda ps: ck.optim.SGD(ps, lr=0.1, momentum=0.9)),
    ("Adam", lambda ps: ck.optim.Adam(ps, lr=0.05)),
])
def test_inline_optimisers_follow_coursekit(lesson_ns, name, make_ref):
    torch.manual_seed(0)
    start = [torch.randn(4, 3), torch.randn(3)]
    a = [p.clone().requires_grad_(True) for p in start]
    b = [p.clone().requires_grad_(True) for p in start]
    inline_opt = {"SGD": lambda ps: lesson_ns["SGD"](ps, lr=0.1),
                  "Momentum": lambda ps: lesson_ns["Momentum"](ps, lr=0.1, momentum=0.9),
                  "Adam": lambda ps: lesson_ns["Adam"](ps, lr=0.05)}[name](a)
    ref_opt = make_ref(b)
    for _ in range(10):
        for ps, opt in ((a, inline_opt), (b, ref_opt)):
            opt.zero_grad()
            loss = ((ps[0] @ ps[1]).sin() ** 2).sum() + (ps[1] ** 2).sum()
            loss.backward()
            opt.step()
    for pa, pb in zip(a, b):
        assert torch.allclose(pa, pb, atol=1e-6)


# -- notebook structure ----------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["notebooks", "solutions", "exercises"])
def test_notebook_starts_with_the_run_this_first_cell(folder):
    nb = nbformat.read(notebook(folder, "03"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == "import coursekit as ck\ndevice = ck.setup(seed=0)"
    assert "widgets" not in nb.metadata               # no widget state committed
    if folder == "exercises":
        assert all(not c.outputs for c in code)       # exercises are committed clean


def test_every_check_cell_calls_the_check_it_is_graded_as():
    nb = nbformat.read(notebook("solutions", "03"), as_version=4)
    graded = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    ids = [c.metadata.nbgrader.grade_id for c in graded]
    assert ids == GRADED
    for cell, grade_id in zip(graded, ids):
        assert f"ck.checks.ch03.{grade_id}(" in cell.source
        assert hasattr(ch03, grade_id)


def test_exercise_notebook_has_stubs_and_no_solutions():
    text = notebook("exercises", "03").read_text()
    assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert text.count("raise NotImplementedError()") >= len(GRADED)
