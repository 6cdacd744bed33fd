"""Chapter 03: the checks (pass on answers, fail on stubs and usual mistakes), the
learning-rate explorer widget, and the lesson's inline code against coursekit's."""
from __future__ import annotations

import math

import nbformat
import pytest
import torch

import coursekit as ck
from coursekit.autograd import Value
from coursekit.checks import ch03
from coursekit.checks.assertions import CheckFailure
from nbtools import exec_tagged_cells, notebook

# -- reference answers (written here, independently of the solution notebook) -------------


def mul_ref(a, b):
    out = Value(a.data * b.data, (a, b), "*")

    def _backward():
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad
    out._backward = _backward
    return out


def tanh_ref(x):
    t = math.tanh(x.data)
    out = Value(t, (x,), "tanh")

    def _backward():
        x.grad += (1 - t ** 2) * out.grad
    out._backward = _backward
    return out


def numgrad_ref(f, x, h=1e-5):
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).view(-1)
        e[i] = h
        e = e.view(x.shape)
        grad.view(-1)[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def momentum_ref(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(momentum).add_(p.grad)
            p -= lr * v


def adam_ref(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            m_hat = m[i] / (1 - beta1 ** t)
            v_hat = v[i] / (1 - beta2 ** t)
            p -= lr * m_hat / (v_hat.sqrt() + eps)


def stub1(a):
    raise NotImplementedError()


def stub2(a, b):
    raise NotImplementedError()


def stub3(f, x, h=1e-5):
    raise NotImplementedError()


def stub4(params, velocities, lr, momentum):
    raise NotImplementedError()


def stub8(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    raise NotImplementedError()


CHECKS = [
    (ch03.check_mul, mul_ref, stub2),
    (ch03.check_tanh, tanh_ref, stub1),
    (ch03.check_numerical_grad, numgrad_ref, stub3),
    (ch03.check_momentum_step, momentum_ref, stub4),
    (ch03.check_adam_step, adam_ref, stub8),
]
IDS = [c.__name__ for c, _, _ in CHECKS]


@pytest.mark.parametrize("check, answer, stub", CHECKS, ids=IDS)
def test_check_passes_on_reference(check, answer, stub, capsys):
    check(answer)
    assert capsys.readouterr().out.startswith(f"PASSED {check.__name__}")


@pytest.mark.parametrize("check, answer, stub", CHECKS, ids=IDS)
def test_check_passes_on_other_seed(check, answer, stub, capsys):
    check(answer, seed=123)                      # what the hidden tests run
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("check, answer, stub", CHECKS, ids=IDS)
def test_check_fails_on_stub(check, answer, stub):
    with pytest.raises(CheckFailure, match="not written yet"):
        check(stub)


@pytest.mark.parametrize("check", [c for c, _, _ in CHECKS], ids=IDS)
def test_check_fails_when_given_a_result_not_a_function(check):
    with pytest.raises(CheckFailure, match="should be a function"):
        check(3.0)


# -- typical wrong answers, each with the hint it should get ------------------------------

def _mul_with(backward):
    def mul(a, b):
        out = Value(a.data * b.data, (a, b), "*")
        out._backward = lambda: backward(a, b, out)
        return out
    return mul


def _tanh_with(backward):
    def tanh(x):
        out = Value(math.tanh(x.data), (x,), "tanh")
        out._backward = lambda: backward(x, out)
        return out
    return tanh


def _set(obj, **kw):
    for k, v in kw.items():
        setattr(obj, k, v)


def _mul_overwrite(a, b, out):
    _set(a, grad=b.data * out.grad)
    _set(b, grad=a.data * out.grad)


def _mul_no_chain(a, b, out):
    a.grad += b.data
    b.grad += a.data


def _mul_swapped(a, b, out):
    a.grad += a.data * out.grad
    b.grad += b.data * out.grad


def _tanh_uses_x(x, out):
    x.grad += (1 - x.data ** 2) * out.grad


def _tanh_no_chain(x, out):
    x.grad += 1 - out.data ** 2


def _tanh_overwrite(x, out):
    x.grad = (1 - out.data ** 2) * out.grad


def _tanh_no_square(x, out):
    x.grad += (1 - out.data) * out.grad


def numgrad_forward(f, x, h=1e-5):
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).view(-1)
        e[i] = h
        grad.view(-1)[i] = (f(x + e.view(x.shape)) - f(x)) / h
    return grad


def numgrad_over_h(f, x, h=1e-5):
    return numgrad_ref(f, x, h) * 2


def numgrad_not_restored(f, x, h=1e-5):
    grad = torch.zeros_like(x)
    flat = x.view(-1)
    for i in range(x.numel()):
        flat[i] += h
        up = f(x)
        flat[i] -= 2 * h
        grad.view(-1)[i] = (up - f(x)) / (2 * h)      # forgets to add h back
    return grad


def numgrad_flat(f, x, h=1e-5):
    return numgrad_ref(f, x, h).reshape(-1)


def momentum_plain(params, velocities, lr, momentum):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def momentum_rebinds(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v = momentum * v + p.grad
            p -= lr * v


def momentum_dampened(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(momentum).add_((1 - momentum) * p.grad)
            p -= lr * v


def momentum_lr_inside(params, velocities, lr, momentum):
    with torch.no_grad():
        for p, v in zip(params, velocities):
            v.mul_(momentum).add_(lr * p.grad)
            p -= v


def momentum_no_grad_mode(params, velocities, lr, momentum):
    for p, v in zip(params, velocities):
        v.mul_(momentum).add_(p.grad)
        p -= lr * v                                   # RuntimeError: leaf requires grad


def momentum_new_tensors(params, velocities, lr, momentum):
    for i, (p, v) in enumerate(zip(params, velocities)):
        v.mul_(momentum).add_(p.grad)
        params[i] = (p - lr * v).detach().requires_grad_(True)


def adam_no_bias_correction(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            p -= lr * m[i] / (v[i].sqrt() + eps)


def adam_t_minus_one(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    adam_ref(params, m, v, t - 1, lr, beta1, beta2, eps)


def adam_eps_inside(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            p -= lr * (m[i] / (1 - beta1 ** t)) / (v[i] / (1 - beta2 ** t) + eps).sqrt()


def adam_g_not_squared(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad
            p -= lr * (m[i] / (1 - beta1 ** t)) / ((v[i] / (1 - beta2 ** t)).sqrt() + eps)


def adam_rebinds(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for p, m_i, v_i in zip(params, m, v):
            m_i = beta1 * m_i + (1 - beta1) * p.grad
            v_i = beta2 * v_i + (1 - beta2) * p.grad ** 2
            p -= lr * (m_i / (1 - beta1 ** t)) / ((v_i / (1 - beta2 ** t)).sqrt() + eps)


def adam_power_wrong(params, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    with torch.no_grad():
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            p -= lr * (m[i] / (1 - beta1) ** t) / ((v[i] / (1 - beta2) ** t).sqrt() + eps)


WRONG = [
    ("mul returns a float", ch03.check_mul, lambda a, b: a.data * b.data, "should return a Value"),
    ("mul wrong forward", ch03.check_mul, lambda a, b: mul_ref(a, b) + 1, "forward value"),
    ("mul without inputs", ch03.check_mul, lambda a, b: Value(a.data * b.data), "out.inputs"),
    ("mul without _backward", ch03.check_mul, lambda a, b: Value(a.data * b.data, (a, b), "*"),
     "no gradient arrived"),
    ("mul overwrites grad", ch03.check_mul, _mul_with(_mul_overwrite), "+="),
    ("mul forgets out.grad", ch03.check_mul, _mul_with(_mul_no_chain), "out.grad"),
    ("mul swaps derivatives", ch03.check_mul, _mul_with(_mul_swapped), "with respect to a is b"),
    ("tanh returns a float", ch03.check_tanh, lambda x: math.tanh(x.data), "should return a Value"),
    ("tanh derivative from x", ch03.check_tanh, _tanh_with(_tanh_uses_x), "not 1 - x**2"),
    ("tanh forgets out.grad", ch03.check_tanh, _tanh_with(_tanh_no_chain), "chain rule"),
    ("tanh overwrites grad", ch03.check_tanh, _tanh_with(_tanh_overwrite), "+="),
    ("tanh without square", ch03.check_tanh, _tanh_with(_tanh_no_square), "square the output"),
    ("tanh wrong forward", ch03.check_tanh,
     lambda x: tanh_ref(x) * 2, "forward value"),
    ("numgrad one-sided", ch03.check_numerical_grad, numgrad_forward, "central difference"),
    ("numgrad divides by h", ch03.check_numerical_grad, numgrad_over_h, "divide by 2 * h"),
    ("numgrad leaves x changed", ch03.check_numerical_grad, numgrad_not_restored, "unchanged"),
    ("numgrad flat result", ch03.check_numerical_grad, numgrad_flat, "wrong shape"),
    ("numgrad returns a list", ch03.check_numerical_grad,
     lambda f, x, h=1e-5: numgrad_ref(f, x, h).tolist(), "torch.Tensor"),
    ("momentum ignored", ch03.check_momentum_step, momentum_plain, "velocity is ignored"),
    ("momentum rebinds v", ch03.check_momentum_step, momentum_rebinds, "rebinds a local name"),
    ("momentum dampened", ch03.check_momentum_step, momentum_dampened, "(1 - momentum)"),
    ("momentum lr inside v", ch03.check_momentum_step, momentum_lr_inside, "keep lr out"),
    ("momentum outside no_grad", ch03.check_momentum_step, momentum_no_grad_mode, "torch.no_grad()"),
    ("momentum new tensors", ch03.check_momentum_step, momentum_new_tensors, "in place"),
    ("adam without bias correction", ch03.check_adam_step, adam_no_bias_correction,
     "correct the bias"),
    ("adam t - 1", ch03.check_adam_step, adam_t_minus_one, "t starts at 1"),
    ("adam eps inside sqrt", ch03.check_adam_step, adam_eps_inside, "outside the square root"),
    ("adam g not squared", ch03.check_adam_step, adam_g_not_squared, "squared gradient"),
    ("adam rebinds m", ch03.check_adam_step, adam_rebinds, "rebinds a local name"),
    ("adam (1 - beta)**t", ch03.check_adam_step, adam_power_wrong, "power t"),
]


@pytest.mark.parametrize("check, answer, fragment", [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_check_fails_on_typical_mistake_with_a_useful_hint(check, answer, fragment):
    with pytest.raises(CheckFailure) as info:
        check(answer)
    message = str(info.value)
    assert message.startswith(f"{check.__name__} failed")
    assert fragment in message, message


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
    assert ids == ["check_mul", "check_tanh", "check_numerical_grad", "check_momentum_step",
                   "check_adam_step"]
    for cell, grade_id in zip(graded, ids):
        assert f"ck.checks.ch03.{grade_id}(" in cell.source
        assert hasattr(ch03, grade_id)


def test_exercise_notebook_has_stubs_and_no_solutions():
    text = notebook("exercises", "03").read_text()
    assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert text.count("raise NotImplementedError()") >= 5
