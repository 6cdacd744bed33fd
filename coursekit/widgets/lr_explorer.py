"""The learning-rate explorer: gradient descent on a 2-D loss surface, one slider away.

Pick a surface, an optimiser (``coursekit.optim``), a learning rate (log-scale slider)
and a number of steps; the left panel draws the path on the surface's contours, the
right panel the loss at each step. A learning rate that is too high makes the path
overshoot and blow up: the run stops there and the figure says so.

    w = ck.widgets.lr_explorer(surface="bowl", optimizer="sgd", lr=0.05)
    w                        # show it in a notebook
    w.set(lr=0.2)            # what a learner does with the slider
    w.diverged, w.final_loss, w.path.shape
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as W
import numpy as np
import torch

from coursekit import optim
from coursekit.widgets.base import PlotWidget

BLOWUP = 1e6   # a coordinate this large (or a NaN / inf) counts as diverged; the run stops


@dataclass(frozen=True)
class Surface:
    """A 2-D loss surface and how to show it."""

    label: str                                    # name shown in the dropdown
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # f(x, y), elementwise
    start: tuple[float, float]                    # where descent starts
    xlim: tuple[float, float]                     # plotted range of x
    ylim: tuple[float, float]                     # plotted range of y
    minima: tuple[tuple[float, float], ...]       # global minima (loss 0), marked with stars
    note: str = ""                                # one line about what to look for
    log_levels: bool = True                       # contour levels evenly spaced in log(f)


SURFACES: dict[str, Surface] = {
    "bowl": Surface(
        label="elongated bowl", f=lambda x, y: 0.5 * (x ** 2 + 15.0 * y ** 2),
        start=(-4.0, 1.5), xlim=(-5.0, 5.0), ylim=(-3.0, 3.0), minima=((0.0, 0.0),),
        note="curvatures 1 and 15: plain SGD is stable only for lr < 2/15 = 0.133",
        log_levels=False),
    "rosenbrock": Surface(
        label="Rosenbrock valley", f=lambda x, y: (1 - x) ** 2 + 100.0 * (y - x ** 2) ** 2,
        start=(-1.2, 1.0), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), minima=((1.0, 1.0),),
        note="a steep-walled curved valley: easy to fall into, slow to follow to (1, 1)"),
    "himmelblau": Surface(
        label="Himmelblau (four minima)",
        f=lambda x, y: (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2,
        start=(0.0, 0.0), xlim=(-5.0, 5.0), ylim=(-5.0, 5.0),
        minima=((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        note="four minima: which one you reach depends on the optimiser and the rate"),
}


@dataclass
class Descent:
    """The result of one run of gradient descent on a surface."""

    path: torch.Tensor        # (n + 1, 2) positions, the start included
    losses: list[float]       # f at each position, len n + 1
    blew_up_at: int | None    # the step at which the run blew up and stopped, or None

    @property
    def diverged(self) -> bool:
        """True when the run blew up or ended with a higher loss than it started with."""
        return self.blew_up_at is not None or self.losses[-1] > self.losses[0]


def descend(surface: str, optimizer: str, lr: float, steps: int,
            start: tuple[float, float] | None = None) -> Descent:
    """Run ``steps`` steps of an optimiser from ``coursekit.optim`` on a named surface.

    Args:
        surface: a key of ``SURFACES`` ("bowl", "rosenbrock", "himmelblau").
        optimizer: "sgd", "momentum" or "adam".
        lr: the learning rate.
        steps: the number of steps.
        start: the starting point (default: the surface's own).
    Returns:
        A Descent; the path stops early (``blew_up_at``) once it leaves every sane range.
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; choose one of {list(SURFACES)}")
    s = SURFACES[surface]
    xy = torch.tensor(start or s.start, dtype=torch.float64, requires_grad=True)  # (2,)
    opt = optim.make(optimizer, [xy], lr)
    path = [xy.detach().clone()]
    losses = [s.f(xy[0], xy[1]).item()]
    blew_up_at = None
    for step in range(1, steps + 1):
        opt.zero_grad()
        s.f(xy[0], xy[1]).backward()
        opt.step()
        with torch.no_grad():
            loss = s.f(xy[0], xy[1]).item()
        if not (math.isfinite(loss) and torch.isfinite(xy).all() and xy.abs().max() < BLOWUP):
            blew_up_at = step
            break
        path.append(xy.detach().clone())
        losses.append(loss)
    return Descent(torch.stack(path), losses, blew_up_at)


@functools.lru_cache(maxsize=None)
def _grid(surface: str, n: int = 160):
    s = SURFACES[surface]
    xs = torch.linspace(*s.xlim, n, dtype=torch.float64)
    ys = torch.linspace(*s.ylim, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")     # (n, n) each
    return gx.numpy(), gy.numpy(), s.f(gx, gy).numpy()


class LRExplorer(PlotWidget):
    """A PlotWidget that also keeps the last run, for lessons and tests.

    Attributes:
        result: the Descent drawn last.
        status: the sentence shown under the title (what happened, in words).
    """

    def __init__(self, controls, figsize=(10, 4.2), title=""):
        self.result: Descent | None = None
        self.status = ""
        super().__init__(controls, self._draw_run, figsize=figsize, title=title)

    @property
    def path(self) -> torch.Tensor:
        """(n + 1, 2) positions of the last run."""
        return self.result.path

    @property
    def losses(self) -> list[float]:
        return self.result.losses

    @property
    def final_loss(self) -> float:
        """Loss at the last position before the run ended (or blew up)."""
        return self.result.losses[-1]

    @property
    def diverged(self) -> bool:
        return self.result.diverged

    def _draw_run(self, fig, values: dict) -> None:
        name = values["surface"]
        s = SURFACES[name]
        run = descend(name, values["optimizer"], values["lr"], values["steps"])
        self.result = run
        self.status = _status(run, values["steps"])

        ax, ax_loss = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        # left: contours, minima, the path
        gx, gy, z = _grid(name)
        if s.log_levels:
            levels = np.geomspace(max(z.min(), 1e-3), z.max(), 18)
        else:                                           # quadratic: evenly spaced ellipses
            levels = np.linspace(0, np.sqrt(z.max()), 14)[1:] ** 2
        ax.contour(gx, gy, z, levels=levels, cmap="viridis", linewidths=0.8)
        mins = np.array(s.minima)
        ax.scatter(mins[:, 0], mins[:, 1], marker="*", s=140, color="gold", edgecolor="k",
                   zorder=4, label="minimum")
        pts = run.path.numpy()
        ax.plot(pts[:, 0], pts[:, 1], "-o", color="crimson", ms=2.5, lw=1.2, zorder=3,
                label=f"{values['optimizer']} path")
        ax.scatter(*pts[0], color="white", edgecolor="k", s=50, zorder=5, label="start")
        ax.set_xlim(*s.xlim)
        ax.set_ylim(*s.ylim)
        ax.set_xlabel("parameter $w_1$")
        ax.set_ylabel("parameter $w_2$")
        ax.set_title(f"{s.label}: {values['optimizer']}, lr = {values['lr']:.3g}", fontsize=10)
        ax.legend(loc="best", fontsize=7)
        # right: the loss at each step
        losses = np.maximum(np.array(run.losses), 1e-12)
        ax_loss.plot(np.arange(len(losses)), losses, color="crimson")
        ax_loss.set_yscale("log")
        ax_loss.set_xlim(0, max(values["steps"], 1))
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("loss (log scale)")
        ax_loss.grid(alpha=0.3)
        ax_loss.set_title(f"loss after {len(losses) - 1} of {values['steps']} steps: "
                          f"{run.losses[-1]:.3g}", fontsize=10)
        colour = "#b00" if run.diverged else "#060"
        fig.suptitle(self.status, fontsize=10, color=colour)
        fig.text(0.5, -0.02, s.note, ha="center", fontsize=8, color="0.35")


def _status(run: Descent, steps: int) -> str:
    if run.blew_up_at is not None:
        return (f"Diverged at step {run.blew_up_at}: every step overshoots further, so the "
                "run was stopped. Lower the learning rate.")
    if run.diverged:
        return (f"The loss grew from {run.losses[0]:.3g} to {run.losses[-1]:.3g}: the learning "
                "rate is too high for the steepest direction.")
    return f"The loss fell from {run.losses[0]:.3g} to {run.losses[-1]:.3g}."


def lr_explorer(surface: str = "bowl", optimizer: str = "sgd", lr: float = 0.05,
                steps: int = 50) -> LRExplorer:
    """Build the learning-rate explorer.

    Args:
        surface: "bowl" (elongated quadratic), "rosenbrock" or "himmelblau".
        optimizer: "sgd", "momentum" (mu = 0.9) or "adam".
        lr: starting learning rate (the slider spans 1e-4 to 10, log scale).
        steps: starting number of steps (1 to 300).
    Returns:
        An LRExplorer (a PlotWidget); display it, or drive it with ``.set(lr=...)`` and
        read ``.diverged``, ``.final_loss``, ``.path``, ``.status``.
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; choose one of {list(SURFACES)}")
    if optimizer not in optim.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {list(optim.OPTIMIZERS)}")
    if not 1e-4 <= lr <= 10:
        raise ValueError(f"lr must be between 1e-4 and 10, got {lr!r}")
    if not 1 <= steps <= 300:
        raise ValueError(f"steps must be between 1 and 300, got {steps!r}")
    style = {"description_width": "initial"}
    controls = {
        "surface": W.Dropdown(options=[(s.label, key) for key, s in SURFACES.items()],
                              value=surface, description="surface", style=style),
        "optimizer": W.Dropdown(options=list(optim.OPTIMIZERS), value=optimizer,
                                description="optimiser", style=style),
        "lr": W.FloatLogSlider(value=lr, base=10, min=-4, max=1, step=0.05,
                               description="learning rate", readout_format=".3g",
                               continuous_update=False, style=style),
        "steps": W.IntSlider(value=steps, min=1, max=300, description="steps",
                             continuous_update=False, style=style),
    }
    return LRExplorer(controls, title="Gradient descent on a loss surface")
