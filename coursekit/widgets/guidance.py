"""The guidance explorer: samples of a class-conditional diffusion model as the guidance scale moves.

    explorer = ck.widgets.guidance_explorer(ck.zoo.load("digit-cfg"))
    explorer                                    # in a notebook: the widget
    explorer.set(w=3.0)                         # in code or tests
    explorer.samples, explorer.accuracy         # what is drawn now

One row per requested digit, ``n_per_row`` samples in each. The starting noise is drawn
once, so moving the slider changes only the guidance: the same noise turns into a vaguer
digit at w = 0 (the unconditional model ignores the request) and a bolder, more uniform
one at large w. Each row is labelled with the share of its samples the course's digit
classifier reads as the requested digit.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


class GuidanceExplorer(PlotWidget):
    """A PlotWidget with a guidance-scale slider over a grid of guided samples.

    Attributes (the state tests can read; all refer to the figure drawn last):
        labels: (R * n_per_row,) the requested digits, row by row.
        samples: (R * n_per_row, 1, 8, 8) the samples in [0, 1].
        predicted: (R * n_per_row,) the classifier's reading of each sample.
        accuracy: share of samples read as the requested digit.
        row_accuracy: one share per row.
    """

    def __init__(self, run, digits, n_per_row: int, n_steps: int, seed: int, w_max: float):
        from coursekit.evaluate import digit_classifier

        digits = [int(d) for d in digits]
        n_classes = run.model.n_classes
        if not digits or any(not 0 <= d < n_classes for d in digits):
            raise ValueError(f"digits must be a non-empty list of classes in 0..{n_classes - 1}, got {digits}")
        if not isinstance(n_per_row, int) or n_per_row < 1:
            raise ValueError(f"n_per_row must be a positive int, got {n_per_row!r}")
        self.run, self.digits, self.n_per_row, self.n_steps = run, digits, n_per_row, n_steps
        self.labels = torch.tensor(digits).repeat_interleave(n_per_row)              # (R * n,)
        cfg = run.model.config
        shape = (len(self.labels), cfg.in_channels, cfg.image_size, cfg.image_size)
        self.noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))  # fixed x_T
        self.classifier = digit_classifier()
        controls = {"w": W.FloatSlider(value=2.0, min=0.0, max=w_max, step=0.25, description="guidance w",
                                       continuous_update=False)}
        super().__init__(controls, self._draw_grid, figsize=(0.55 * n_per_row + 1.2, 0.55 * len(digits) + 0.6),
                         title="Classifier-free guidance: one row per requested digit")

    @torch.no_grad()
    def sample(self, w: float) -> torch.Tensor:
        """The grid's samples at guidance scale ``w``, in [0, 1]: (R * n_per_row, 1, 8, 8)."""
        from coursekit.models.cond_diffusion import guided_sample
        from coursekit.models.diffusion import from_model_range

        x = guided_sample(self.run.model, self.run.schedule, self.labels, w=w, n_steps=self.n_steps,
                          noise=self.noise)
        return from_model_range(x).cpu()

    def _draw_grid(self, fig, values) -> None:
        w = float(values["w"])
        self.samples = self.sample(w)
        with torch.no_grad():
            self.predicted = self.classifier(self.samples).argmax(1)                    # (R * n,)
        hit = (self.predicted == self.labels).float()
        self.accuracy = hit.mean().item()
        self.row_accuracy = hit.view(len(self.digits), self.n_per_row).mean(1).tolist()
        R, n = len(self.digits), self.n_per_row
        axes = fig.subplots(R, n, squeeze=False)
        for r in range(R):
            for c in range(n):
                ax = axes[r][c]
                ax.imshow(self.samples[r * n + c, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
            axes[r][0].set_ylabel(f"{self.digits[r]}: {self.row_accuracy[r]:.0%}", rotation=0, ha="right",
                                  va="center", fontsize=8)
        fig.suptitle(f"w = {w:g}: {self.accuracy:.0%} read as the requested digit", fontsize=9)


def guidance_explorer(run, digits=range(10), n_per_row: int = 8, n_steps: int = 20, seed: int = 0,
                      w_max: float = 6.0) -> GuidanceExplorer:
    """A guidance-scale slider over a grid of class-conditional samples, one row per digit.

    Args:
        run: the zoo's ``"digit-cfg"`` run (a ``CondUNet`` with its ``schedule``).
        digits: the requested classes, one row each.
        n_per_row: samples per row.
        n_steps: DDIM steps per sample.
        seed: seed of the fixed starting noise.
        w_max: the slider's largest guidance scale.
    Returns:
        A GuidanceExplorer (display it in a notebook; ``.set(w=...)`` in code).
    """
    if not hasattr(run, "schedule") or not hasattr(run.model, "n_classes"):
        raise TypeError("guidance_explorer needs a class-conditional diffusion run: ck.zoo.load('digit-cfg')")
    return GuidanceExplorer(run, digits, n_per_row, n_steps, seed, w_max)
