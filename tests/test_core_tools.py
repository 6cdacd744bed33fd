"""Check assertions, plotting helpers and the PlotWidget base."""
import ipywidgets as W
import pytest
import torch

from coursekit.checks.assertions import (CheckFailure, as_tensor, call, expect_close, fail,
                                         passed, require_callable)
from coursekit.plots import plot_decision_boundary, scatter2d, show_images
from coursekit.widgets.base import PlotWidget


def test_failure_message_has_case_expected_got_hint():
    with pytest.raises(CheckFailure) as info:
        fail("check_x", "x(1)", torch.tensor([1.0]), torch.tensor([2.0]), "add one")
    text = str(info.value)
    assert text.splitlines()[0] == "check_x failed: x(1)"
    assert "expected: tensor of shape (1,)" in text and "[2.0]" in text and "hint:     add one" in text
    assert isinstance(info.value, AssertionError)


def test_passed_prints_one_line(capsys):
    passed("check_x", "3 cases")
    assert capsys.readouterr().out == "PASSED check_x: 3 cases\n"


@pytest.mark.parametrize("value, shape, match", [
    ([1, 2], (2,), "should be a torch.Tensor"),
    (torch.zeros(3, 2), (2, 3), r"wrong shape.*shape \(2, 3\).*shape \(3, 2\)"),
    (torch.zeros(2, 5), (2, -1, 1), r"shape \(2, any, 1\)"),
])
def test_wrong_types_and_shapes_are_named(value, shape, match):
    with pytest.raises(CheckFailure, match=f"(?s){match}"):
        as_tensor("check_x", value, "your output", shape=shape)


def test_expect_close_reports_largest_difference_and_nans():
    expect_close("check_x", "case", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    with pytest.raises(CheckFailure, match="largest difference 0.5"):
        expect_close("check_x", "case", torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]))
    with pytest.raises(CheckFailure, match="NaN"):
        expect_close("check_x", "case", torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_call_turns_learner_errors_into_readable_failures():
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not written yet"):
        call("check_x", stub, 1)
    with pytest.raises(CheckFailure, match="raised ZeroDivisionError"):
        call("check_x", lambda x: x / 0, 1)
    with pytest.raises(CheckFailure, match="pass the function itself"):
        require_callable("check_x", 3.0, "relu")
    with pytest.raises(CheckFailure, match="wrong number of arguments"):
        require_callable("check_x", lambda a, b: a, "relu", n_args=1)


def test_show_images_grid_and_bad_shape():
    ax = show_images(torch.rand(6, 1, 8, 8), nrow=3, titles=list("abcdef"))
    assert ax.images[0].get_array().shape == (2 * 9 + 1, 3 * 9 + 1)
    with pytest.raises(ValueError, match=r"got shape \(2, 5, 8, 8\)"):
        show_images(torch.rand(2, 5, 8, 8))


def test_scatter_and_boundary_label_axes():
    ax = scatter2d(torch.randn(10, 2), torch.arange(10) % 2, title="t")
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "t"
    ax = plot_decision_boundary(lambda g: torch.sigmoid(g[:, 0]), torch.randn(20, 2), resolution=20)
    assert ax.get_xlabel()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        scatter2d(torch.randn(10, 3))


def _line_widget():
    return PlotWidget({"slope": W.FloatSlider(value=1.0, min=-2, max=2),
                       "kind": W.Dropdown(options=["line", "bad"], value="line")},
                      lambda fig, v: (_ for _ in ()).throw(ValueError("cannot draw that"))
                      if v["kind"] == "bad" else fig.add_subplot().plot([0, 1], [0, v["slope"]]))


def test_plot_widget_redraws_when_a_control_moves():
    w = _line_widget()
    before, draws = w.png, w.n_draws
    w.controls["slope"].value = -1.5
    assert w.n_draws == draws + 1 and w.png != before and w.png[:4] == b"\x89PNG"


def test_plot_widget_keeps_its_image_on_a_bad_value():
    w = _line_widget()
    before = w.png
    w.controls["kind"].value = "bad"
    assert w.png == before and "cannot draw that" in w.error and "Could not draw" in w.message.value
    w.set(kind="line", slope=0.5)
    assert w.error == "" and w.png != before
    with pytest.raises(KeyError, match="controls"):
        w.set(nope=1)


def test_digit_quality_is_the_same_inside_no_grad_and_after_other_randomness():
    from coursekit.data import load_digits
    from coursekit.evaluate import digit_classifier, digit_quality
    digit_classifier.cache_clear()
    x = load_digits(seed=0).x_val[:200]
    torch.manual_seed(123)
    with torch.no_grad():
        first = digit_quality(x)
    digit_classifier.cache_clear()
    torch.manual_seed(999)
    assert digit_quality(x) == first
    assert first["confidence"] > 0.9 and first["classes_covered"] == 10


def test_show_images_with_integer_vmin_keeps_grey_levels():
    ax = show_images(torch.full((1, 1, 4, 4), 0.5), vmin=0, vmax=1)
    assert ax.images[0].get_array()[2, 2] == 0.5


class _LyingTensor(torch.Tensor):
    """A tensor subclass that claims to be close to anything."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.Tensor.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_expect_close_sees_through_tensor_subclasses():
    from coursekit.checks.assertions import CheckFailure, expect_close, plain_tensor
    liar = torch.zeros(3).as_subclass(_LyingTensor)
    assert torch.allclose(liar, torch.ones(3))              # the trick works on torch itself
    assert type(plain_tensor(liar)) is torch.Tensor
    with pytest.raises(CheckFailure):
        expect_close("check_x", "a lying tensor", liar, torch.ones(3))
    expect_close("check_x", "a right answer in a subclass", torch.ones(3).as_subclass(_LyingTensor),
                 torch.ones(3))
