"""The RLHF explorer: reward and KL over training, for one or several runs (several betas).

    explorer = ck.widgets.rlhf_explorer({"RL beta=0.05": rl_run, "RL beta=0": hacked_run})
    explorer                                   # in a notebook: the widget
    explorer.set(run="RL beta=0", step=40)     # in code or tests
    explorer.reward, explorer.kl, explorer.sample

Left: the reward model's score, and the raters' hidden rating, of the policy's samples at
each step; right: the KL to the reference. A vertical line marks the chosen step; the
title shows the sample drawn at the nearest recorded step before it.
"""
from __future__ import annotations

import ipywidgets as W

from coursekit.widgets.base import PlotWidget


class RLHFExplorer(PlotWidget):
    """A PlotWidget with a run dropdown and a step slider.

    Attributes (the state tests can read; all refer to the figure drawn last):
        run: the label of the run shown. step: the step shown.
        reward, kl, score: the run's reward-model score, KL and hidden rating at that step.
        sample: (step, response) recorded at or before that step.
    """

    def __init__(self, runs: dict):
        if not runs:
            raise ValueError("pass at least one run: {label: PolicyRun}")
        for label, run in runs.items():
            if not hasattr(run, "history") or not hasattr(run, "samples"):
                raise TypeError(f"{label!r} is not a PolicyRun from coursekit.rlhf.train_rl")
            for metric in ("reward", "kl", "score"):
                run.history[metric]                                    # KeyError names what is missing
        self.runs = dict(runs)
        first = next(iter(self.runs.values()))
        n = len(first.history["reward"])
        controls = {"run": W.Dropdown(options=list(self.runs), description="run"),
                    "step": W.IntSlider(value=n - 1, min=0, max=max(self._longest() - 1, 0),
                                        description="step", continuous_update=False)}
        super().__init__(controls, self._draw_run, figsize=(9, 3.4),
                         title="RL from human feedback: reward model score, hidden rating and KL over training")

    def _longest(self) -> int:
        return max(len(r.history["reward"]) for r in self.runs.values())

    def _draw_run(self, fig, values) -> None:
        run = self.runs[values["run"]]
        reward, kl, score = run.history["reward"], run.history["kl"], run.history["score"]
        step = min(values["step"], len(reward) - 1)
        self.run, self.step = values["run"], step
        self.reward, self.kl, self.score = reward[step], kl[step], score[step]
        earlier = [s for s in run.samples if s[0] <= step]
        self.sample = (earlier[-1][0], earlier[-1][2]) if earlier else (None, "")
        steps = range(len(reward))
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(steps, reward, label="reward model score")
        ax.plot(steps, score, label="hidden rating (raters)")
        ax.axvline(step, color="grey", linestyle="--")
        ax.set_xlabel("RL step")
        ax.set_ylabel("mean over the batch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(steps, kl, color="tab:red")
        ax2.axvline(step, color="grey", linestyle="--")
        ax2.set_xlabel("RL step")
        ax2.set_ylabel("KL to the reference (nats per response)")
        ax2.grid(alpha=0.3)
        shown = self.sample[1].replace("\n", " ")
        fig.suptitle(f"{self.run}, step {step}: reward {self.reward:.2f}, KL {self.kl:.2f}\n"
                     f"sample (step {self.sample[0]}): \u201c{shown}\u201d", fontsize=9)


def rlhf_explorer(runs) -> RLHFExplorer:
    """Scrub through RL runs: reward, hidden rating and KL per step, and the samples.

    Args:
        runs: a ``PolicyRun`` from ``coursekit.rlhf.train_rl``, or {label: PolicyRun}
            (e.g. one per beta).
    Returns:
        An RLHFExplorer (display it in a notebook; ``.set(run=..., step=...)``).
    """
    if hasattr(runs, "history"):
        runs = {"RL": runs}
    return RLHFExplorer(runs)
