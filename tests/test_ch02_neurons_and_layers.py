"""Chapter 02: the lesson's inline code matches coursekit, the checks accept right answers
and reject the stub and typical wrong ones, the solutions notebook is wired to the checks,
and the neuron playground redraws and reports what it shows."""
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


# -- 2. the checks: right answers pass, the stub and wrong answers fail --------------------

def stub(*args, **kwargs):
    raise NotImplementedError()


def ref_neuron_forward(x, w, b):
    return 1 / (1 + torch.exp(-(torch.einsum("nd,d->n", x, w) + b)))


def ref_relu(z):
    return z * (z > 0)


def ref_sigmoid(z):
    return torch.where(z >= 0, 1 / (1 + torch.exp(-z.abs())),
                       torch.exp(-z.abs()) / (1 + torch.exp(-z.abs())))


def ref_sigmoid_grad(z):
    e = torch.exp(-z.abs())
    return e / (1 + e) ** 2


def ref_dense_layer(x, W, b):
    return torch.einsum("ni,io->no", x, W) + b


def ref_collapse_linear(layers):
    d_in = layers[0][0].shape[0]
    eye = torch.eye(d_in)
    out = torch.cat([eye, torch.zeros(1, d_in)])         # rows: basis vectors, then 0
    for W, b in layers:
        out = out @ W + b
    b = out[-1]                                          # f(0) = b
    return out[:-1] - b, b                               # f(e_i) - f(0) = row i of W


def ref_count_parameters(sizes):
    return MLP(list(sizes)).n_params()


REFERENCES = {
    "check_neuron_forward": ref_neuron_forward, "check_relu": ref_relu,
    "check_sigmoid": ref_sigmoid, "check_sigmoid_grad": ref_sigmoid_grad,
    "check_dense_layer": ref_dense_layer, "check_collapse_linear": ref_collapse_linear,
    "check_count_parameters": ref_count_parameters,
}


@pytest.mark.parametrize("check", sorted(REFERENCES))
def test_check_passes_on_an_independent_reference(check, capsys):
    getattr(ch02, check)(REFERENCES[check])
    assert capsys.readouterr().out.startswith(f"PASSED {check}")


@pytest.mark.parametrize("check", sorted(REFERENCES))
def test_check_fails_on_the_stub(check):
    with pytest.raises(CheckFailure, match="not written yet"):
        getattr(ch02, check)(stub)


@pytest.mark.parametrize("check", sorted(REFERENCES))
def test_check_fails_when_given_a_result_instead_of_a_function(check):
    with pytest.raises(CheckFailure, match="should be a function"):
        getattr(ch02, check)(torch.zeros(3))


def _in_place_relu(z):
    return z.clamp_(min=0)


def _collapse_reversed(layers):
    W, b = layers[-1]
    for W_prev, b_prev in reversed(layers[:-1]):
        W = W @ W_prev                                   # the wrong order
        b = b + b_prev
    return W, b


def _collapse_without_biases(layers):
    W = layers[0][0]
    for W_next, _ in layers[1:]:
        W = W @ W_next
    return W, torch.zeros(W.shape[1])


def _collapse_summed_biases(layers):
    W = layers[0][0]
    for W_next, _ in layers[1:]:
        W = W @ W_next
    return W, sum(b for _, b in layers)


def _collapse_last_bias(layers):
    W = layers[0][0]
    for W_next, _ in layers[1:]:
        W = W @ W_next
    return W, layers[-1][1]


WRONG = [
    # (check, wrong answer, a phrase the failure message must contain)
    ("check_neuron_forward", lambda x, w, b: x @ w + b, "through the sigmoid"),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w), "bias is missing"),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w) + b, "before the activation"),
    ("check_neuron_forward", lambda x, w, b: torch.relu(x @ w + b), "not ReLU"),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid((x * w).sum() + b), "wrong shape"),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid(w @ x + b), "raised RuntimeError"),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid(x @ w + b).tolist(), "torch.Tensor"),
    ("check_relu", torch.abs, "not change sign"),
    ("check_relu", lambda z: torch.clamp(z, max=0), "not min(0, z)"),
    ("check_relu", lambda z: (z > 0).float(), "not 1"),
    ("check_relu", lambda z: z > 0, "floating-point"),
    ("check_relu", _in_place_relu, "in place"),
    ("check_relu", lambda z: max(z, 0), "raised RuntimeError"),
    ("check_relu", lambda z: z.clamp(min=0).mean(), "wrong shape"),
    ("check_sigmoid", lambda z: torch.exp(z) / (1 + torch.exp(z)), "NaN"),
    ("check_sigmoid", lambda z: 1 / (1 + torch.exp(z)), "check the sign"),
    ("check_sigmoid", lambda z: torch.exp(-z) / (1 + torch.exp(-z)), "1 - sigmoid"),
    ("check_sigmoid", torch.tanh, "that is tanh"),
    ("check_sigmoid", lambda z: 1 / (1 + torch.exp(-2 * z)), "sigmoid(0) = 0.5"),
    ("check_sigmoid_grad", lambda z: torch.sigmoid(z) * (1 + torch.sigmoid(z)), "(1 - sigmoid(z))"),
    ("check_sigmoid_grad", lambda z: torch.sigmoid(z) * (1 - z), "both factors"),
    ("check_sigmoid_grad", torch.sigmoid, "not its slope"),
    ("check_sigmoid_grad", lambda z: torch.exp(-z) / (1 + torch.exp(-z)) ** 2, "NaN"),
    ("check_sigmoid_grad", lambda z: torch.full_like(z, 0.25), "peaks at 0.25"),
    ("check_dense_layer", lambda x, W, b: x @ W, "bias b is missing"),
    ("check_dense_layer", lambda x, W, b: W @ x + b, "raised RuntimeError"),
    ("check_dense_layer", lambda x, W, b: (x @ W + b).T, "wrong shape"),
    ("check_dense_layer", lambda x, W, b: x @ W.T + b if W.shape[0] == W.shape[1] else x @ W + b,
     "not x @ W.T"),
    ("check_collapse_linear", _collapse_without_biases, "biases are missing"),
    ("check_collapse_linear", _collapse_summed_biases, "cannot simply be added"),
    ("check_collapse_linear", _collapse_last_bias, "only the last bias"),
    ("check_collapse_linear", _collapse_reversed, "failed"),
    ("check_collapse_linear", lambda layers: layers[0][0], "two things"),
    ("check_collapse_linear", lambda layers: (layers[0][0], layers[0][1]), "the matrix W"),
    ("check_count_parameters", lambda s: sum(a * c for a, c in zip(s[:-1], s[1:])),
     "biases are missing"),
    ("check_count_parameters", lambda s: sum(a * c for a, c in zip(s[:-1], s[1:])) + sum(s),
     "input features have no bias"),
    ("check_count_parameters", lambda s: sum(a * c + a for a, c in zip(s[:-1], s[1:])), "not d_in"),
    ("check_count_parameters", lambda s: sum(s), "d_in * d_out weights"),
    ("check_count_parameters", lambda s: str(ref_count_parameters(s)), "Python int"),
]


@pytest.mark.parametrize("check,answer,phrase", WRONG,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_check_fails_on_typical_wrong_answers_with_a_helpful_message(check, answer, phrase):
    with pytest.raises(CheckFailure) as info:
        getattr(ch02, check)(answer)
    message = str(info.value)
    assert message.startswith(f"{check} failed"), message
    assert phrase in message, message


@pytest.mark.parametrize("check,answer", [
    ("check_relu", lambda z: torch.clamp(z, min=0.0)),
    ("check_relu", lambda z: torch.where(z > 0, z, 0.0)),
    ("check_sigmoid", torch.sigmoid),
    ("check_sigmoid_grad", lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))),
    ("check_neuron_forward", lambda x, w, b: torch.sigmoid(torch.mv(x, w) + b)),
    ("check_count_parameters", lambda s: torch.tensor(ref_count_parameters(s))),
])
def test_check_accepts_other_correct_answers(check, answer, capsys):
    getattr(ch02, check)(answer)
    assert "PASSED" in capsys.readouterr().out


def test_references_in_the_checks_are_not_hard_coded():
    # the collapsed (W, b) the check expects must reproduce the stack (independent algebra)
    for _, layers in ch02._stack_cases():
        W, b = ref_collapse_linear(layers)
        W2, b2 = ch02._collapse_reference(layers)
        assert torch.allclose(W, W2, atol=1e-5) and torch.allclose(b, b2, atol=1e-5)


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
