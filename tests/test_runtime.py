"""Seeding, device choice, fast mode, the training loop and History."""
import random

import numpy as np
import pytest
import torch

import coursekit as ck


def test_setup_seeds_python_numpy_and_torch(capsys):
    ck.setup(seed=3)
    a = (random.random(), np.random.rand(), torch.rand(2))
    ck.setup(seed=3)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    ck.setup(seed=4)
    assert torch.rand(2).tolist() != a[2].tolist()
    assert "device: cpu" in capsys.readouterr().out


def test_setup_rejects_a_bad_seed():
    with pytest.raises(TypeError, match="seed must be an int"):
        ck.setup(seed="0")


@pytest.mark.parametrize("value, fast", [("1", True), ("true", True), ("0", False), ("", False)])
def test_fast_mode_and_budget(monkeypatch, value, fast):
    monkeypatch.setenv("COURSEKIT_FAST", value)
    assert ck.fast_mode() is fast
    assert ck.budget(1000, fast=10) == (10 if fast else 1000)


def test_device_override_and_clear_error(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert ck.pick_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("COURSEKIT_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            ck.pick_device()


def test_import_is_light():
    import subprocess
    import sys
    code = "import sys, coursekit; print('matplotlib.pyplot' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_train_logs_every_step_and_continues_history():
    w = torch.tensor([5.0], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)

    def step(i):
        loss = (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    hist = ck.train(step, 20, show=False)
    assert len(hist["loss"]) == 20 and hist["loss"][-1] < hist["loss"][0] * 0.1
    hist = ck.train(lambda i: {"loss": 1.0, "acc": 0.5}, 5, history=hist, show=False)
    assert [s for s, _ in hist.records["loss"]][-6:] == list(range(19, 25))
    assert hist.last("acc") == 0.5 and hist.mean_last("loss", 5) == 1.0
    with pytest.raises(KeyError, match="logged metrics: loss, acc"):
        hist["nope"]


def test_train_stops_on_nan_with_a_clear_error():
    with pytest.raises(FloatingPointError, match="loss became nan at step 3"):
        ck.train(lambda i: float("nan") if i == 3 else 1.0, 10, show=False)


def test_history_plot_has_labels():
    hist = ck.History()
    for i in range(30):
        hist.log(i, loss=1 / (i + 1))
    ax = hist.plot(smooth=5)
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "loss"
    assert len(ax.lines) == 2
