"""The bans: found on the answer's code (aliases, helpers, defaults, methods) and caught
while it runs (getattr, torch.ops, a swallowed tripwire), and nothing a right answer
does trips them."""
from __future__ import annotations

import functools
import math

import pytest
import torch

from coursekit.autograd import Value
from coursekit.checks.assertions import CheckFailure, call, hidden_seed, plain
from coursekit.checks.forbidden import ban, no_banned_calls, scan

RELU = [ban("torch.relu", "torch.Tensor.relu", "torch.nn.functional.relu", ops=["aten::relu"],
            reason="the exercise asks you to write ReLU yourself")]
TANH = [ban("coursekit.autograd.Value.tanh", reason="the exercise asks for tanh's backward rule")]

r = torch.relu
F = torch.nn.functional
table = {"act": torch.relu}
part = functools.partial(torch.relu)


def _helper(z):
    return torch.nn.functional.relu(z)


DODGES = {
    "direct call": lambda z: torch.relu(z),
    "tensor method": lambda z: z.relu(),
    "module alias": lambda z: r(z),
    "functional alias": lambda z: F.relu(z),
    "through a helper": lambda z: _helper(z),
    "default argument": lambda z, f=torch.relu: f(z),
    "in a dict": lambda z: table["act"](z),
    "partial": lambda z: part(z),
    "getattr": lambda z: getattr(torch, "re" + "lu")(z),
    "torch.ops": lambda z: torch.ops.aten.relu(z),
    "nn.ReLU module": lambda z: torch.nn.ReLU()(z),
}


def _swallowing(z):
    try:
        return getattr(torch, "re" + "lu")(z)
    except BaseException:                       # the tripwire is caught and ignored
        return z.clamp(min=0)


DODGES["swallowed tripwire"] = _swallowing


@pytest.mark.parametrize("how", sorted(DODGES))
def test_every_dodge_is_refused_and_named(how):
    with pytest.raises(CheckFailure) as info:
        call("check_relu", DODGES[how], torch.randn(6), bans=RELU, what="relu(z)")
    message = str(info.value)
    assert "relu" in message and "write ReLU yourself" in message, message
    assert torch.relu(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0], "a tripwire was left behind"


@pytest.mark.parametrize("answer", [lambda z: torch.clamp(z, min=0), lambda z: z * (z > 0),
                                    lambda z: torch.where(z > 0, z, torch.zeros_like(z))])
def test_a_right_answer_is_not_refused(answer):
    z = torch.randn(6)
    assert torch.equal(call("check_relu", answer, z, bans=RELU), z.clamp(min=0))


def test_the_static_scan_reports_the_line_of_the_learners_code():
    def relu(z):
        y = z + 0
        return y.relu()
    (finding,) = scan(relu, RELU)
    assert finding.where == "line 3 of relu" and "torch.Tensor.relu" in finding.what


def test_a_method_of_the_same_name_elsewhere_is_allowed():
    def tanh(x):
        t = math.tanh(x.data)                   # math.tanh is fine; Value.tanh is not
        out = Value(t, (x,), "tanh")

        def _backward():
            x.grad += (1 - t ** 2) * out.grad
        out._backward = _backward
        return out
    assert scan(tanh, TANH) == []
    assert scan(lambda x: x.tanh(), TANH)


def test_classes_are_scanned_through_their_methods():
    class Block(torch.nn.Module):
        def forward(self, x):
            return self.act(x)

        def act(self, x):
            return F.relu(x)
    assert scan(Block, RELU) and scan(Block(), RELU)


def test_the_guard_restores_everything_even_when_the_block_fails():
    before = (torch.relu, torch.Tensor.relu, F.relu)
    with pytest.raises(ZeroDivisionError):
        with no_banned_calls(RELU):
            1 / 0
    assert (torch.relu, torch.Tensor.relu, F.relu) == before


def test_tensor_subclasses_come_back_plain():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func is torch.equal:
                return True
            return super().__torch_function__(func, types, args, kwargs or {})
    got = call("c", lambda: (torch.zeros(2).as_subclass(Liar), [torch.ones(1).as_subclass(Liar)]))
    assert type(got[0]) is torch.Tensor and type(got[1][0]) is torch.Tensor
    assert not torch.equal(got[0], torch.ones(2))
    assert type(plain({"a": torch.zeros(1).as_subclass(Liar)})["a"]) is torch.Tensor


def test_hidden_seeds_follow_the_grading_secret(monkeypatch):
    monkeypatch.delenv("COURSEKIT_GRADING_SECRET", raising=False)
    fixed = hidden_seed("adam")
    assert hidden_seed("adam") == fixed != hidden_seed("momentum")
    monkeypatch.setenv("COURSEKIT_GRADING_SECRET", "s3cret")
    assert hidden_seed("adam") != fixed
    assert hidden_seed("adam") == hidden_seed("adam")
