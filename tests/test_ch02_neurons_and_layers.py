"""Chapter 02: the lesson's inline code matches coursekit, the solutions notebook is wired to
the checks, and the neuron playground redraws and reports what it shows. Right and wrong
answers for the checks are in tests/answers/ch02.py (run by tests/test_check_contract.py)."""
from __future__ import annotations

import math
import re

import nbformat
import pytest
import torch

import coursekit as ck
from coursekit.checks import CheckFailure, ch02
from coursekit.models.mlp import ACTIVATIONS, MLP, Dense, Neuron
from nbtools import exec_tagged_cells, notebook

ATOL = 1e-6


# -- 1. the lesson's inline code equals the package ----------------------------------------

@pytest.fixture(scope="module")
def lesson():
    return exec_tagged_cells(notebook("notebooks", "02"))


def test_inline_activations_match_the_package(lesson):
    assert set(lesson["ACTIVATIONS"]) == set(ACTIVATIONS)
    z = torch.linspace(-5, 5, 101)
    for name, f in ACTIVATIONS.items():
        assert torch.allclose(lesson["ACTIVATIONS"][name](z), f(z), atol=ATOL), name


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_inline_neuron_matches_package_neuron(lesson, activation):
    ck.seed_everything(0)
    w, b = torch.randn(4), 0.3
    unit = Neuron(w, b, activation)
    for x in (torch.randn(4), torch.randn(9, 4)):
        with torch.no_grad():
            assert torch.allclose(lesson["neuron"](x, w, b, activation), unit(x), atol=ATOL)


@pytest.mark.parametrize("d_in,d_out", [(3, 4), (1, 1), (16, 2)])
def test_inline_dense_matches_package_dense(lesson, d_in, d_out):
    ck.seed_everything(0)
    W, b = lesson["init_dense"](d_in, d_out)
    ck.seed_everything(0)
    layer = Dense(d_in, d_out)
    assert torch.equal(W, layer.weight.detach()) and torch.equal(b, layer.bias.detach())
    x = torch.randn(5, d_in)
    with torch.no_grad():
        assert torch.allclose(lesson["dense"](x, W, b), layer(x), atol=ATOL)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("sizes", [[2, 1], [2, 16, 16, 1], [3, 7, 5, 4]])
def test_inline_mlp_matches_package_mlp_under_the_same_seed(lesson, sizes, activation):
    ck.seed_everything(0)
    params = lesson["init_mlp"](sizes)
    ck.seed_everything(0)
    net = MLP(sizes, activation)
    x = torch.randn(13, sizes[0])
    with torch.no_grad():
        expected = net(x)
    got = lesson["mlp_forward"](x, params, activation)
    assert got.shape == expected.shape == (13, sizes[-1])
    assert torch.allclose(got, expected, atol=ATOL)


def test_lesson_structure():
    nb = nbformat.read(notebook("notebooks", "02"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == "import coursekit as ck\ndevice = ck.setup(seed=0)"
    text = "\n".join(c.source for c in nb.cells)
    assert "Learning objectives" in nb.cells[0].source
    for needed in ("ck.budget(", "ck.train(", "neuron_playground(", "## Recap",
                   "## Further reading", "xlabel=", "plt.show()"):
        assert needed in text, needed
    assert all(not c.outputs for c in code), "commit the lesson with outputs cleared"


# -- 2. the checks (right and wrong answers: tests/answers/ch02.py) --------------------------

CHECKS = sorted(n for n in dir(ch02) if n.startswith("check_"))


@pytest.mark.parametrize("check", CHECKS)
def test_check_fails_when_given_a_result_instead_of_a_function(check):
    with pytest.raises(CheckFailure, match="should be a function"):
        getattr(ch02, check)(torch.zeros(3))


@pytest.mark.parametrize("residual", [False, True])
def test_the_collapse_reference_reproduces_the_stack(residual):
    """The (W, b) the check expects equals the stack on random inputs (independent algebra)."""
    from answers.ch02 import collapse_probe
    for _, layers, res in ch02._stack_cases(seed=3):
        if res != residual:
            continue
        W, b = ch02._collapse_reference(layers, residual)
        W2, b2 = collapse_probe(layers, residual)
        assert torch.allclose(W, W2, atol=1e-5) and torch.allclose(b, b2, atol=1e-5)
        x = torch.randn(7, W.shape[0])
        assert torch.allclose(x @ W + b, ch02._run_stack(x, layers, residual), atol=1e-4)


def test_checks_draw_new_cases_from_the_seed():
    a = [x for _, x, _, _ in ch02._neuron_cases(0)]
    b = [x for _, x, _, _ in ch02._neuron_cases(1)]
    assert not all(torch.equal(p, q) for p, q in zip(a, b))


# -- 3. the solutions notebook is wired to the checks --------------------------------------

@pytest.fixture(scope="module")
def solutions():
    return nbformat.read(notebook("solutions", "02"), as_version=4)


def _check_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade")]


def test_every_check_cell_calls_the_check_named_by_its_grade_id(solutions):
    cells = _check_cells(solutions)
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in cells]
    public = sorted(n for n in dir(ch02) if n.startswith("check_"))
    assert sorted(grade_ids) == public, "one check cell per check function, and no other"
    for cell, gid in zip(cells, grade_ids):
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and not meta["solution"] and meta["points"] > 0
        assert "check" in cell.metadata.get("tags", [])
        assert f"ck.checks.ch02.{gid}(" in cell.source


def test_every_answer_cell_has_markers_and_comes_before_its_check(solutions):
    order = []
    for cell in solutions.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            assert meta["grade_id"].endswith("_answer") and not meta["grade"]
            order.append(meta["grade_id"][: -len("_answer")])
        elif cell.cell_type == "code" and meta.get("grade"):
            assert order and order[-1] == meta["grade_id"][len("check_"):], meta["grade_id"]
    assert len(order) >= 3


def _answer_namespace(solutions, stubbed: bool) -> dict:
    ns = {"torch": torch, "math": math, "ck": ck}
    for cell in solutions.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            source = cell.source
            if stubbed:
                source = re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                                r"\1# YOUR CODE HERE\n\1raise NotImplementedError()",
                                source, flags=re.S)
            exec(compile(source, "answer", "exec"), ns)
    return ns


def test_solution_answers_pass_and_stubs_fail_every_check(solutions, capsys):
    answers = _answer_namespace(solutions, stubbed=False)
    stubs = _answer_namespace(solutions, stubbed=True)
    for cell in _check_cells(solutions):
        gid = cell.metadata["nbgrader"]["grade_id"]
        fn = answers[gid[len("check_"):]]
        getattr(ch02, gid)(fn)
        assert f"PASSED {gid}" in capsys.readouterr().out
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch02, gid)(stubs[gid[len("check_"):]])


def test_solutions_committed_clean(solutions):
    assert all(not c.outputs for c in solutions.cells if c.cell_type == "code")
    assert "widgets" not in solutions.metadata


# -- 4. the neuron playground ---------------------------------------------------------------

@pytest.fixture(scope="module")
def playground():
    return ck.widgets.neuron_playground(dataset="moons", w1=1.0, w2=1.0, bias=0.0)


def _accuracy(points, labels, w1, w2, b):
    z = points[:, 0] * w1 + points[:, 1] * w2 + b
    return ((z > 0).long() == labels).float().mean().item()


def test_playground_is_a_plot_widget_with_the_documented_controls(playground):
    from coursekit.widgets.base import PlotWidget
    assert isinstance(playground, PlotWidget)
    assert set(playground.controls) == {"w1", "w2", "bias", "activation", "dataset"}
    assert list(playground.controls["activation"].options) == list(ACTIVATIONS)
    assert playground.error == "" and playground.png.startswith(b"\x89PNG")


def test_every_control_redraws_the_image(playground):
    playground.set(w1=1.0, w2=1.0, bias=0.0, activation="sigmoid", dataset="moons")
    for change in [{"w1": -2.0}, {"w2": 3.0}, {"bias": 1.5}, {"activation": "relu"},
                   {"dataset": "spirals"}]:
        before, draws = playground.png, playground.n_draws
        playground.set(**change)
        assert playground.error == "", change
        assert playground.n_draws == draws + 1, change
        assert playground.png != before, change
        name, value = next(iter(change.items()))
        expected = {"w1": ("w", 0), "w2": ("w", 1), "bias": ("bias", None)}.get(name)
        if expected is None:
            assert playground.drawn[name] == value
        elif expected[1] is None:
            assert playground.drawn["bias"] == value
        else:
            assert playground.drawn["w"][expected[1]] == value


def test_moving_a_slider_in_the_ui_redraws(playground):
    draws, before = playground.n_draws, playground.png
    playground.controls["w1"].value = -1.3          # what a browser does
    assert playground.n_draws == draws + 1 and playground.png != before
    assert playground.drawn["w"][0] == pytest.approx(-1.3)


@pytest.mark.parametrize("dataset,w1,w2,b", [("blobs", 1.0, 1.0, 0.0), ("moons", 1.0, -2.0, 0.5),
                                           ("spirals", -0.5, 2.0, -1.0), ("moons", -3.0, 0.2, 1.1)])
def test_accuracy_and_boundary_match_an_independent_computation(playground, dataset, w1, w2, b):
    playground.set(w1=w1, w2=w2, bias=b, dataset=dataset, activation="sigmoid")
    expected = _accuracy(playground.points, playground.labels, w1, w2, b)
    assert playground.accuracy == pytest.approx(expected, abs=1e-9)
    assert playground.drawn["n_mistakes"] == round((1 - expected) * len(playground.points))
    assert f"{expected:.1%}" in playground.drawn["titles"][0]
    (xa, ya), (xb, yb) = playground.boundary
    for px, py in ((xa, ya), (xb, yb)):                  # both ends lie on the line z = 0
        assert abs(w1 * px + w2 * py + b) < 1e-4
    assert torch.allclose(playground.output, torch.sigmoid(playground.z))


def test_activation_changes_the_surface_but_not_the_boundary(playground):
    playground.set(w1=1.0, w2=-2.0, bias=0.5, dataset="moons", activation="sigmoid")
    accuracy, boundary, png = playground.accuracy, playground.boundary, playground.png
    for act in ["tanh", "relu", "gelu", "identity"]:
        playground.set(activation=act)
        assert playground.accuracy == accuracy and playground.boundary == boundary
        assert playground.png != png
        assert torch.allclose(playground.output, ACTIVATIONS[act](playground.z))


def test_a_line_suits_blobs_not_spirals(playground):
    playground.set(w1=1.0, w2=0.0, bias=0.0, dataset="blobs")
    assert playground.accuracy > 0.95
    pts, lab = playground._datasets["spirals"]
    best = max(_accuracy(pts, lab, math.cos(t), math.sin(t), b)
               for t in torch.linspace(0, 2 * math.pi, 73).tolist()
               for b in torch.linspace(-1, 1, 21).tolist())
    assert best < 0.75


def test_zero_weights_draw_no_line_and_do_not_crash(playground):
    playground.set(w1=0.0, w2=0.0, bias=0.5, dataset="moons")
    assert playground.error == "" and playground.boundary is None
    assert not playground.drawn["boundary_drawn"]
    assert playground.accuracy == pytest.approx(playground.labels.float().mean().item())


def test_custom_points_and_bad_arguments():
    pts = torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 0.0], [0.5, 3.0]])
    lab = torch.tensor([1, 1, 0, 0])
    w = ck.widgets.neuron_playground(points=pts, labels=lab, w1=1.0, w2=0.0, bias=0.0)
    assert w.controls["dataset"].value == "custom" and w.accuracy == pytest.approx(0.75)
    with pytest.raises(ValueError, match="activation"):
        ck.widgets.neuron_playground(activation="swish")
    with pytest.raises(ValueError, match="both"):
        ck.widgets.neuron_playground(points=pts)
    with pytest.raises(ValueError, match="0 or 1"):
        ck.widgets.neuron_playground(points=pts, labels=torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="dataset"):
        ck.widgets.neuron_playground(dataset="circles")
