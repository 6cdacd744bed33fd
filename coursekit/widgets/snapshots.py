"""The training-snapshot scrubber: a slider over samples saved during training.

Used in chapter 04 to watch a GAN learn (or fail to learn) the ring of 8 Gaussians,
and for any model that stores snapshots as ``{"step", "samples", ...}`` dicts.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import torch

from coursekit.widgets.base import PlotWidget


class SnapshotScrubber(PlotWidget):
    """A PlotWidget whose slider picks one training snapshot.

    Attributes (besides PlotWidget's ``png``, ``n_draws``, ``error``):
        snapshots: the list of snapshot dicts.
        current: the snapshot drawn last (a dict).
        current_step: its training step.
        stats: for 2-D samples with ``centres``, the ``ModeStats`` of the snapshot drawn
            last, else None.
        title_text: the figure title drawn last.
    """

    def __init__(self, snapshots: Sequence[dict], real: torch.Tensor | None = None,
                 centres: torch.Tensor | None = None, std: float | None = None,
                 figsize: tuple[float, float] = (5.5, 5.5), title: str = ""):
        self.snapshots = list(snapshots)
        self.real = None if real is None else torch.as_tensor(real).detach().float().cpu()
        self.centres = None if centres is None else torch.as_tensor(centres).detach().float().cpu()
        self.std = std
        self.current: dict = {}
        self.current_step: int | None = None
        self.stats = None
        self.title_text = ""
        self._limits = self._plot_limits()
        controls = {
            "index": W.IntSlider(value=len(self.snapshots) - 1, min=0,
                                 max=len(self.snapshots) - 1, step=1, description="snapshot",
                                 continuous_update=False),
            "show_real": W.Checkbox(value=self.real is not None, description="show real data",
                                    disabled=self.real is None),
        }
        super().__init__(controls, self._draw_snapshot, figsize=figsize, title=title)

    # the limits stay fixed while scrubbing, so that motion on screen is motion of samples
    def _plot_limits(self):
        points = [s["samples"] for s in self.snapshots if _is_points(s["samples"])]
        if self.real is not None and self.real.dim() == 2:
            points.append(self.real)
        if not points:
            return None
        allp = torch.cat([torch.as_tensor(p).float().cpu() for p in points])
        lo = torch.quantile(allp, 0.005, dim=0)
        hi = torch.quantile(allp, 0.995, dim=0)
        if self.real is not None and self.real.dim() == 2:   # always show all of the data
            lo = torch.minimum(lo, self.real.min(0).values)
            hi = torch.maximum(hi, self.real.max(0).values)
        pad = 0.1 * (hi - lo).max().item() + 1e-3
        return (lo[0].item() - pad, hi[0].item() + pad), (lo[1].item() - pad, hi[1].item() + pad)

    def _draw_snapshot(self, fig, values: dict[str, Any]) -> None:
        from coursekit.plots import show_images

        snap = self.snapshots[values["index"]]
        samples = torch.as_tensor(snap["samples"]).detach().float().cpu()
        ax = fig.add_subplot(1, 1, 1)
        parts = [f"step {snap['step']}"]
        losses = [f"{k} {snap[k]:.3f}" for k in ("loss_d", "loss_g")
                  if k in snap and not math.isnan(float(snap[k]))]
        if losses:
            parts.append(", ".join(losses))
        stats = None
        if _is_points(samples):
            if values["show_real"] and self.real is not None:
                ax.scatter(self.real[:, 0], self.real[:, 1], s=4, color="0.75", label="real data")
            ax.scatter(samples[:, 0], samples[:, 1], s=4, color="C3", alpha=0.6, label="generated")
            if self.centres is not None and self.std is not None:
                from coursekit.models.gan import mode_stats
                stats = mode_stats(samples, self.centres, self.std)
                parts.append(f"{stats.modes_covered}/{stats.n_modes} modes, "
                             f"{100 * stats.high_quality:.0f}% high quality")
            if self._limits is not None:
                ax.set_xlim(*self._limits[0])
                ax.set_ylim(*self._limits[1])
            ax.set_aspect("equal")
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            ax.legend(loc="upper right", fontsize=8, markerscale=3)
            ax.grid(alpha=0.3)
        else:
            images = samples[:64]
            show_images(images, ax=ax, vmin=0.0, vmax=1.0)
        self.title_text = " | ".join(parts)
        ax.set_title(self.title_text, fontsize=9)
        self.current = snap
        self.current_step = int(snap["step"])
        self.stats = stats


def _is_points(samples) -> bool:
    samples = torch.as_tensor(samples)
    return samples.dim() == 2 and samples.shape[1] == 2


def snapshot_scrubber(snapshots, real: torch.Tensor | None = None,
                      centres: torch.Tensor | None = None, std: float | None = None,
                      figsize: tuple[float, float] = (5.5, 5.5),
                      title: str = "Training snapshots") -> SnapshotScrubber:
    """A slider over training snapshots, e.g. a GAN's samples on the ring of Gaussians.

    Args:
        snapshots: a list of dicts with "step" and "samples" ((N, 2) points or (N, 1, H, W)
            images) and optionally "loss_d" and "loss_g"; or anything with a
            ``.snapshots`` list, such as the ``GANRun`` of ``coursekit.models.gan``.
        real: real data (M, 2) drawn in grey behind 2-D samples.
        centres, std: the mixture's centres (K, 2) and standard deviation; when given,
            the title shows modes covered and the share of high-quality samples.
    Returns:
        A SnapshotScrubber (a PlotWidget): display it, or move it with
        ``widget.set(index=3)``; ``widget.current_step`` and ``widget.stats`` tell what
        is drawn.
    """
    snapshots = getattr(snapshots, "snapshots", snapshots)
    snapshots = list(snapshots)
    if not snapshots:
        raise ValueError("snapshot_scrubber needs at least one snapshot; train with "
                         "snapshot_every > 0 to collect them")
    for i, snap in enumerate(snapshots):
        if not isinstance(snap, dict) or "step" not in snap or "samples" not in snap:
            raise ValueError(f"snapshot {i} should be a dict with 'step' and 'samples', "
                             f"got {type(snap).__name__}")
    return SnapshotScrubber(snapshots, real=real, centres=centres, std=std, figsize=figsize,
                            title=title)
