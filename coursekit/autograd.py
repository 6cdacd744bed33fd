"""A scalar automatic-differentiation engine, written to be read in one sitting.

Each ``Value`` holds one number (``data``), the derivative of the final output with
respect to it (``grad``), the values it was computed from (``inputs``) and a small
function (``_backward``) that applies the chain rule for the operation that made it.
``backward()`` orders the graph so that every value comes after its inputs, then walks
that order in reverse, calling each ``_backward`` once.

Inspired by Andrej Karpathy's micrograd (2020), which showed how little code reverse-mode
automatic differentiation needs; this version is written independently for the course.

    >>> a, b = Value(0.5), Value(-1.5)
    >>> loss = (a * b + 1).tanh()
    >>> loss.backward()
    >>> round(a.grad, 4)      # d loss / d a = (1 - tanh(a*b + 1)**2) * b
    -1.41
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

Number = Union[int, float]


class Value:
    """One scalar node of a computation graph.

    Args:
        data: the number this node holds.
        inputs: the Values this one was computed from (empty for a leaf).
        op: the name of the operation that produced it ("+", "*", "tanh", ...).
        label: an optional name, used when printing or drawing the graph.

    Attributes:
        grad: d(output)/d(this value), filled in by ``output.backward()``; gradients
            add up (+=) over every path from this value to the output.
    """

    def __init__(self, data: Number, inputs: tuple["Value", ...] = (), op: str = "",
                 label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self.inputs = tuple(inputs)
        self.op = op
        self.label = label
        self._backward: Callable[[], None] = lambda: None   # a leaf has nothing to pass on

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.6g}, grad={self.grad:.6g})"

    # -- binary operations ---------------------------------------------------------------
    def __add__(self, other: "Value | Number") -> "Value":
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():                     # d(a + b)/da = 1, d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other: "Value | Number") -> "Value":
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():                     # d(a * b)/da = b, d(a * b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k: Number) -> "Value":
        if not isinstance(k, (int, float)) or isinstance(k, bool):
            raise TypeError(f"Value ** k needs a plain number k, got {type(k).__name__}; "
                            "for a Value exponent write (k * x.log()).exp()")
        if self.data < 0 and not float(k).is_integer():
            raise ValueError(f"{self.data} ** {k} is not a real number")
        out = Value(self.data ** k, (self,), f"**{k:g}")

        def _backward():                     # d(x**k)/dx = k * x**(k-1)
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    # everything else is built from the three operations above
    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other: "Value | Number") -> "Value":
        return self + (-_as_value(other))

    def __truediv__(self, other: "Value | Number") -> "Value":
        return self * _as_value(other) ** -1

    def __radd__(self, other: Number) -> "Value":      # 2 + x
        return self + other

    def __rmul__(self, other: Number) -> "Value":      # 2 * x
        return self * other

    def __rsub__(self, other: Number) -> "Value":      # 2 - x
        return _as_value(other) - self

    def __rtruediv__(self, other: Number) -> "Value":  # 2 / x
        return _as_value(other) / self

    # -- functions of one value ---------------------------------------------------------
    def exp(self) -> "Value":
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():                     # d exp(x)/dx = exp(x)
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self) -> "Value":
        if self.data <= 0:
            raise ValueError(f"log needs a positive value, got {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():                     # d log(x)/dx = 1 / x
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward():                     # d tanh(x)/dx = 1 - tanh(x)**2
            self.grad += (1.0 - t * t) * out.grad
        out._backward = _backward
        return out

    def relu(self) -> "Value":
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():                     # slope 1 where x > 0, else 0
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self) -> "Value":
        x = self.data                        # two forms, so that exp never overflows
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        out = Value(s, (self,), "sigmoid")

        def _backward():                     # d sigmoid(x)/dx = s * (1 - s)
            self.grad += s * (1.0 - s) * out.grad
        out._backward = _backward
        return out

    # -- the backward pass --------------------------------------------------------------
    def topological_order(self) -> list["Value"]:
        """Every Value this one depends on (itself included), each after its inputs.

        A depth-first search without recursion, so deep graphs (long sums) work too:
        a node is pushed twice, once to visit its inputs and once to be emitted after them.
        """
        order: list[Value] = []
        visited: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node.inputs)
        return order

    def backward(self) -> None:
        """Fill in ``grad`` of every Value this one depends on (reverse-mode autodiff).

        1. Seed: d(self)/d(self) = 1.
        2. Visit the nodes from the output back to the leaves (reverse topological
           order), so a node's ``grad`` is complete before it is passed on.
        3. Each node's ``_backward`` applies the chain rule: it adds
           (local derivative) * (its own grad) to each of its inputs.
        Gradients accumulate: zero the leaves' ``grad`` before calling this again.
        """
        order = self.topological_order()
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


def _as_value(x: "Value | Number") -> Value:
    """Wrap a plain number as a constant leaf; leave a Value as it is."""
    if isinstance(x, Value):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Value(x)
    raise TypeError(f"cannot combine a Value with {type(x).__name__}; use a Value or a number")
