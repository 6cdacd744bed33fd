"""The scaling explorer: loss against model size at a compute budget you pick (lesson 09).

    runs = coursekit.scaling.sweep([16, 32, 64], data, 300)   # one run per width
    explorer = ck.widgets.scaling_explorer(runs)
    explorer.set(log10_flops=10.5)                           # in code or tests
    explorer.losses, explorer.best_width, explorer.law       # what is drawn now

Left: each size's validation loss after the chosen budget of training compute
(C = 6 N D, so a larger model gets fewer tokens), with the best size marked, and, dashed,
the power law L(N) = a N^-alpha + c fitted to the sizes' final losses (every size trained
to the end: data is not the limit). Right: every size's loss against compute, with the
budget as a vertical line: the lower envelope of these curves is the best loss a budget buys.
"""
from __future__ import annotations

import math

import ipywidgets as W

from coursekit.widgets.base import PlotWidget


class ScalingExplorer(PlotWidget):
    """A PlotWidget with one slider, the compute budget (log10 of the FLOPs).

    Attributes (refer to the figure drawn last):
        budget: the compute budget in FLOPs.
        losses: each run's validation loss at the budget (nan when the run did not reach it
            or started after it).
        best_width: the width with the lowest loss at the budget.
        law: the ``PowerLaw`` fitted to the final losses (None with fewer than 3 sizes).
    """

    def __init__(self, runs):
        from coursekit.scaling import fit_power_law
        runs = sorted(runs, key=lambda r: r.n_params)
        if len(runs) < 2 or any(len(r.tokens) < 2 for r in runs):
            raise ValueError("scaling_explorer needs at least 2 runs, each evaluated at least twice")
        self.runs = runs
        self.law = (fit_power_law([r.n_params for r in runs], [r.val_loss[-1] for r in runs])
                    if len(runs) >= 3 else None)
        lo = math.log10(min(r.flops[0] for r in runs))
        hi = math.log10(max(r.flops[-1] for r in runs))
        start = math.log10(max(r.flops[0] for r in runs)) / 2 + math.log10(min(r.flops[-1] for r in runs)) / 2
        controls = {"log10_flops": W.FloatSlider(value=round(start, 2), min=round(lo, 2), max=round(hi, 2),
                                                 step=0.05, description="log10 FLOPs",
                                                 continuous_update=False)}
        super().__init__(controls, self._draw_budget, figsize=(10, 3.8),
                         title="Compute-optimal size: pick a budget C = 6 N D, see loss against size")

    def _draw_budget(self, fig, values) -> None:
        from coursekit.scaling import best_size
        self.budget = 10 ** values["log10_flops"]
        best, self.losses = best_size(self.runs, self.budget)
        self.best_width = best.width
        sizes = [r.n_params for r in self.runs]
        ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        ok = [(n, v) for n, v in zip(sizes, self.losses) if not math.isnan(v)]
        ax.plot([n for n, _ in ok], [v for _, v in ok], "o-", color="tab:blue",
                label=f"at {self.budget:.2g} FLOPs")
        ax.plot([best.n_params], [best.loss_at(self.budget)], "*", color="tab:red", markersize=14,
                label=f"best: width {best.width}")
        ax.plot(sizes, [r.val_loss[-1] for r in self.runs], "s", color="grey", label="final (all tokens)")
        if self.law is not None:
            grid = [sizes[0] * (sizes[-1] / sizes[0]) ** (i / 40) for i in range(41)]
            ax.plot(grid, [self.law(n) for n in grid], "--", color="grey",
                    label=f"L(N) = {self.law.a:.2f} N^-{self.law.alpha:.2f} + {self.law.c:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("validation loss (nats / token)")
        ax.set_title("loss against size at a fixed budget", fontsize=9)
        ax.legend(fontsize=7)
        for r in self.runs:
            ax2.plot(r.flops, r.val_loss, label=f"width {r.width}")
        ax2.axvline(self.budget, color="tab:red", linestyle=":")
        ax2.set_xscale("log")
        ax2.set_xlabel("training compute C = 6 N D (FLOPs)")
        ax2.set_ylabel("validation loss (nats / token)")
        ax2.set_title("loss against compute, one curve per size", fontsize=9)
        ax2.legend(fontsize=7)


def scaling_explorer(runs) -> ScalingExplorer:
    """A budget slider over a sweep's runs (``coursekit.scaling.sweep``).

    Args:
        runs: a list of ``SizeRun`` (at least 2, each evaluated at least twice).
    Returns:
        A ScalingExplorer (display it in a notebook; ``.set(log10_flops=...)`` in code).
    """
    return ScalingExplorer(list(runs))
