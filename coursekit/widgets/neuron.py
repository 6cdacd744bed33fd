"""The neuron playground (chapter 02): one neuron, two weights, a bias, an activation.

Move the sliders and watch two views of the same neuron ``a = f(w1*x1 + w2*x2 + b)``:

* left, the plane: shaded by the neuron's output, with the decision boundary (the
  line where ``z = w1*x1 + w2*x2 + b`` is 0), the weight vector drawn as an arrow
  (it points to where the output grows), the data, and the mistakes circled;
* right, a side view: how many points of each class fall at each value of ``z``
  (histograms), with the activation curve ``f(z)`` drawn over them.

The neuron says "class 1" when ``z > 0``: the playground thresholds the pre-activation
``z``, not the output, so changing the activation changes the shape of the output
surface but, by construction, never where the boundary is. (Not every activation in the
menu is increasing: ReLU is flat below 0 and GELU dips to about -0.17 near z = -0.75; but
each has ``f(z) > f(0)`` exactly when ``z > 0``, so thresholding the output at ``f(0)``
would draw the same line.) A single neuron cuts the plane with a straight line.

Example::

    w = ck.widgets.neuron_playground(dataset="moons")
    w                      # shows the controls and the picture in a notebook
    w.set(w1=1.0, w2=-2.0, bias=0.5)
    w.accuracy             # fraction of points on the right side of the line
"""
from __future__ import annotations

from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from coursekit.models.mlp import ACTIVATIONS, Neuron
from coursekit.widgets.base import PlotWidget

DATASETS = ("blobs", "moons", "spirals")


def _load(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from coursekit import data
    if name == "blobs":
        return data.two_blobs(n, distance=2.5, std=0.6, seed=seed)
    if name == "moons":
        return data.make_moons(n, noise=0.15, seed=seed)
    if name == "spirals":
        return data.spirals(n, n_arms=2, noise=0.04, turns=1.25, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} or pass points=")


class NeuronPlayground(PlotWidget):
    """A PlotWidget for one 2-input neuron; see ``neuron_playground``.

    Attributes (updated at every redraw, for tests and for the lesson's text):
        points, labels: the data shown, (N, 2) float and (N,) int in {0, 1}.
        z: (N,) pre-activations ``w1*x1 + w2*x2 + b`` of the data.
        output: (N,) the neuron's outputs ``f(z)``.
        predictions: (N,) 1 where ``z > 0`` else 0.
        accuracy: fraction of points whose prediction equals their label.
        boundary: the two end points ``((x1, x2), (x1, x2))`` of the drawn decision
            line inside the view, or None when the line is not in view (w1 = w2 = 0,
            or the whole view on one side).
        drawn: a summary of the last picture (dataset, activation, weights, bias,
            number of points and mistakes, panel titles).
    """

    def __init__(self, datasets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 dataset: str, w1: float, w2: float, bias: float, activation: str,
                 resolution: int = 70):
        self._datasets = datasets
        self.resolution = resolution
        self.accuracy = float("nan")
        self.z = self.output = self.predictions = torch.empty(0)
        self.boundary = None
        self.drawn: dict[str, Any] = {}
        slider = dict(min=-4.0, max=4.0, step=0.1, readout_format=".1f", continuous_update=False,
                      layout=W.Layout(width="260px"))
        controls = {
            "w1": W.FloatSlider(value=w1, description="w1", **slider),
            "w2": W.FloatSlider(value=w2, description="w2", **slider),
            "bias": W.FloatSlider(value=bias, description="bias b", **slider),
            "activation": W.Dropdown(options=list(ACTIVATIONS), value=activation,
                                     description="activation", layout=W.Layout(width="220px")),
            "dataset": W.Dropdown(options=list(datasets), value=dataset, description="data",
                                  layout=W.Layout(width="220px")),
        }
        super().__init__(controls, self._draw_neuron, figsize=(10, 4.4),
                         title="Neuron playground: a = f(w1·x1 + w2·x2 + b)")

    @property
    def points(self) -> torch.Tensor:
        return self._datasets[self.controls["dataset"].value][0]

    @property
    def labels(self) -> torch.Tensor:
        return self._datasets[self.controls["dataset"].value][1]

    # -- drawing -------------------------------------------------------------------------
    def _draw_neuron(self, fig: Figure, values: dict) -> None:
        from matplotlib.colors import Normalize

        x, y = self._datasets[values["dataset"]]
        w1, w2, b = float(values["w1"]), float(values["w2"]), float(values["bias"])
        neuron = Neuron([w1, w2], b, values["activation"])

        # 1. the neuron on the data: z, a = f(z), class 1 where z > 0
        with torch.no_grad():
            z = neuron.pre_activation(x)                        # (N,)
            out = neuron(x)                                     # (N,)
        pred = (z > 0).long()
        correct = pred == y
        self.z, self.output, self.predictions = z, out, pred
        self.accuracy = correct.float().mean().item()

        # 2. the neuron on a grid covering the data (for the shaded surface)
        lo = x.min(0).values - 0.5
        hi = x.max(0).values + 0.5
        r = self.resolution
        gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], r), torch.linspace(lo[1], hi[1], r),
                                indexing="xy")                  # (R, R) each
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # (R*R, 2)
        with torch.no_grad():
            surface = neuron(grid).reshape(r, r)                # (R, R)
        mid = neuron.act(torch.tensor(0.0)).item()              # output at the boundary
        if values["activation"] == "sigmoid":
            norm = Normalize(0.0, 1.0)
        elif values["activation"] == "tanh":
            norm = Normalize(-1.0, 1.0)
        else:                                                   # unbounded: centre on f(0)
            span = max((surface - mid).abs().max().item(), 1e-3)
            norm = Normalize(mid - span, mid + span)

        ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        fig.subplots_adjust(left=0.07, right=0.93, bottom=0.13, top=0.9, wspace=0.45)
        extent = (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())
        shade = ax.imshow(surface.numpy(), extent=extent, origin="lower", cmap="coolwarm", norm=norm, alpha=0.5,
                          interpolation="bilinear", aspect="equal")
        cbar = fig.colorbar(shade, ax=ax, fraction=0.046, pad=0.03)
        cbar.set_label("neuron output a")
        self.boundary = self._boundary_segment(w1, w2, b, lo, hi)
        if self.boundary is not None:
            (xa, ya), (xb, yb) = self.boundary
            ax.plot([xa, xb], [ya, yb], color="k", lw=2, label="boundary z = 0")
            cx, cy = (xa + xb) / 2, (ya + yb) / 2
            scale = 0.6 / (w1 ** 2 + w2 ** 2) ** 0.5
            ax.annotate("", xy=(cx + w1 * scale, cy + w2 * scale), xytext=(cx, cy),
                        arrowprops=dict(arrowstyle="->", color="k", lw=1.5))
        xy = x.numpy()                                          # matplotlib wants arrays
        ax.scatter(xy[:, 0], xy[:, 1], c=(y == 1).float().numpy(), cmap="coolwarm", vmin=0,
                   vmax=1, s=14, edgecolors="none")
        wrong = ~correct
        miss = wrong.numpy()
        ax.scatter(xy[miss, 0], xy[miss, 1], s=42, facecolors="none", edgecolors="k", linewidths=0.8,
                   label=f"mistakes ({int(wrong.sum())})")
        ax.set_xlim(lo[0].item(), hi[0].item())
        ax.set_ylim(lo[1].item(), hi[1].item())
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        left_title = f"accuracy {self.accuracy:.1%} on {len(x)} points"
        ax.set_title(left_title)
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8)

        # 3. the side view: how the data spreads along z, and the activation curve f(z)
        z_lim = max(z.abs().max().item(), 1.0) * 1.1
        bins = torch.linspace(-z_lim, z_lim, 31).tolist()
        for cls, colour in ((0, "tab:blue"), (1, "tab:red")):
            side.hist(z[y == cls].tolist(), bins=bins, color=colour, alpha=0.4,
                      label=f"class {cls}")
        side.axvline(0.0, color="gray", ls="--", lw=1)
        side.set_xlabel("pre-activation z = w1·x1 + w2·x2 + b")
        side.set_ylabel("number of points")
        side.legend(loc="upper left", fontsize=7)
        curve = side.twinx()
        zs = torch.linspace(-z_lim, z_lim, 200)
        with torch.no_grad():
            curve.plot(zs.numpy(), neuron.act(zs).numpy(), color="k", lw=2)
        curve.set_ylabel(f"output a = {values['activation']}(z)")
        right_title = f"side view: class 1 where z > 0 (there a > f(0) = {mid:g})"
        side.set_title(right_title)
        side.grid(alpha=0.3)

        self.drawn = {
            "dataset": values["dataset"], "activation": values["activation"],
            "w": (w1, w2), "bias": b, "n_points": len(x), "n_mistakes": int(wrong.sum()),
            "boundary_drawn": self.boundary is not None,
            "titles": (left_title, right_title),
        }

    @staticmethod
    def _boundary_segment(w1: float, w2: float, b: float, lo: torch.Tensor, hi: torch.Tensor):
        """End points of the line w1*x1 + w2*x2 + b = 0 clipped to the box [lo, hi]."""
        (x_lo, y_lo), (x_hi, y_hi) = lo.tolist(), hi.tolist()
        hits = []
        if abs(w2) > 1e-12:                                     # crossings of x1 = const edges
            for xv in (x_lo, x_hi):
                yv = -(w1 * xv + b) / w2
                if y_lo <= yv <= y_hi:
                    hits.append((xv, yv))
        if abs(w1) > 1e-12:                                     # crossings of x2 = const edges
            for yv in (y_lo, y_hi):
                xv = -(w2 * yv + b) / w1
                if x_lo <= xv <= x_hi:
                    hits.append((xv, yv))
        unique = []
        for p in hits:
            if all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > 1e-9 for q in unique):
                unique.append(p)
        return (unique[0], unique[1]) if len(unique) >= 2 else None


def neuron_playground(dataset: str = "moons", points: torch.Tensor | None = None,
                      labels: torch.Tensor | None = None, w1: float = 1.0, w2: float = 1.0,
                      bias: float = 0.0, activation: str = "sigmoid", n: int = 200,
                      seed: int = 0) -> NeuronPlayground:
    """Sliders for one neuron's two weights and bias, a menu for its activation.

    Args:
        dataset: the 2-D data to start on: "blobs" (a line separates them), "moons"
            (a line gets most of them) or "spirals" (a line is hopeless).
        points, labels: your own data instead, (N, 2) and (N,) with labels in {0, 1};
            it appears in the data menu as "custom".
        w1, w2, bias: starting values (sliders run from -4 to 4).
        activation: starting activation, a name from ``ACTIVATIONS``.
        n, seed: size and seed of the built-in data sets.
    Returns:
        A ``NeuronPlayground`` (a ``PlotWidget``); display it as the last line of a
        cell. ``.set(w1=..., w2=..., bias=..., activation=..., dataset=...)`` changes
        controls from code; ``.accuracy``, ``.boundary`` and ``.drawn`` describe the
        current picture.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
    datasets = {name: _load(name, n, seed) for name in DATASETS}
    if points is not None or labels is not None:
        if points is None or labels is None:
            raise ValueError("pass both points (N, 2) and labels (N,), or neither")
        pts = torch.as_tensor(points).detach().float().cpu()
        lab = torch.as_tensor(labels).detach().long().cpu()
        if pts.dim() != 2 or pts.shape[1] != 2 or lab.shape != (pts.shape[0],):
            raise ValueError(f"points must be (N, 2) and labels (N,), got {tuple(pts.shape)} "
                             f"and {tuple(lab.shape)}")
        if not set(lab.unique().tolist()) <= {0, 1}:
            raise ValueError("labels must be 0 or 1 (a single neuron separates two classes)")
        datasets["custom"] = (pts, lab)
        dataset = "custom"
    elif dataset not in datasets:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS} or pass points=")
    return NeuronPlayground(datasets, dataset, w1, w2, bias, activation)
