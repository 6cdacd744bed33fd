"""A small training-loop helper: progress bar, loss history, one-call plot, and ``Run``,
what every ``train_<family>`` of the second half returns."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm


def progress(iterable: Iterable | int, desc: str = "", **kwargs):
    """A tqdm progress bar that renders as a widget in notebooks and as text elsewhere.

    ``progress(100)`` is shorthand for ``progress(range(100))``.
    """
    if isinstance(iterable, int):
        iterable = range(iterable)
    kwargs.setdefault("mininterval", 0.25)
    return tqdm(iterable, desc=desc, **kwargs)


@dataclass
class History:
    """Metrics recorded during training: ``{name: [(step, value), ...]}``."""

    records: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def log(self, step: int, **metrics: float) -> None:
        """Record one value per metric at ``step`` (tensors are turned into floats)."""
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().item()
            self.records.setdefault(name, []).append((int(step), float(value)))

    def __getitem__(self, name: str) -> list[float]:
        """All values of one metric, in order."""
        if name not in self.records:
            known = ", ".join(self.records) or "none yet"
            raise KeyError(f"no metric {name!r} was logged; logged metrics: {known}")
        return [v for _, v in self.records[name]]

    def state(self) -> dict:
        """The records as plain lists (what a checkpoint stores, ``weights_only`` safe)."""
        return {k: [list(r) for r in v] for k, v in self.records.items()}

    @classmethod
    def from_state(cls, state: dict) -> "History":
        """The History that ``state()`` described."""
        return cls({k: [(int(s), float(v)) for s, v in recs] for k, recs in state.items()})

    def last(self, name: str) -> float:
        """The latest value of one metric."""
        return self[name][-1]

    def mean_last(self, name: str, n: int = 20) -> float:
        """The mean of the last ``n`` values of a metric (a less noisy 'final loss')."""
        values = self[name][-n:]
        return sum(values) / len(values)

    def plot(self, names: Iterable[str] | None = None, ax=None, logy: bool = False,
             smooth: int = 1, title: str | None = None):
        """Plot metrics against training step; returns the matplotlib Axes."""
        from coursekit.plots import plot_history
        return plot_history(self, names=names, ax=ax, logy=logy, smooth=smooth, title=title)


@dataclass
class Run:
    """What a ``train_<family>(cfg, data, n_steps, *, device, seed, progress)`` returns.

    Attributes:
        model: the trained network, in eval mode, on the training device.
        history: the metrics logged during training.
        config: the configuration it was built from (a dataclass).
        seconds: wall-clock time of the training loop.
    """

    model: Any
    history: History
    config: Any
    seconds: float = 0.0


def train(step_fn: Callable[[int], float | torch.Tensor | Mapping[str, float]],
          n_steps: int, desc: str = "training", history: History | None = None,
          log_every: int = 1, show: bool = True) -> History:
    """Call ``step_fn(step)`` ``n_steps`` times under a progress bar and log what it returns.

    Args:
        step_fn: does one optimisation step and returns the loss (a float or a
            0-d tensor) or a dict of named metrics, e.g. ``{"loss_d": .., "loss_g": ..}``.
        n_steps: how many steps to run; write it with ``coursekit.budget``.
        desc: label of the progress bar.
        history: an existing History to append to (for training in several parts).
        log_every: record metrics every this many steps.
        show: show the progress bar.
    Returns:
        The History of logged metrics.
    Raises:
        FloatingPointError: when a metric becomes NaN or infinite, naming the step.
    """
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    history = history if history is not None else History()
    start = 1 + max((s for rec in history.records.values() for s, _ in rec), default=-1)
    bar = progress(range(start, start + n_steps), desc=desc, disable=not show)
    for step in bar:
        out = step_fn(step)
        metrics = out if isinstance(out, Mapping) else {"loss": out}
        if step % log_every == 0 or step == start + n_steps - 1:
            history.log(step, **metrics)
            latest = {k: history.last(k) for k in metrics}
            for k, v in latest.items():
                if not math.isfinite(v):
                    raise FloatingPointError(
                        f"{k} became {v} at step {step}: try a smaller learning rate")
            bar.set_postfix({k: f"{v:.4f}" for k, v in latest.items()}, refresh=False)
    return history
