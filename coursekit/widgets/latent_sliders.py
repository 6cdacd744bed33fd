"""Latent sliders (chapter 12): move a code along directions found in latent space.

One slider per direction: the code shown is z = z0 + sum_i s_i * u_i, with u_i the
unit vector of direction i and s_i its slider. The widget draws the decoded digit at z
(left) beside the one at z0 (middle), and the attributes measured on both images
(right), so the effect of a direction is read off as a number, not only seen.

Example::

    dirs = {"ink": d_ink, "slant": d_slant}               # (d,) tensors
    w = ck.widgets.latent_sliders(decode, z0, dirs, classifier=clf)
    w                                                      # shows it in a notebook
    w.set(ink=2.0)
    w.measured["ink"], w.label                             # what the tests read
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from coursekit.widgets.base import PlotWidget


def _images(out: Any) -> torch.Tensor:
    """A decoder's output -> (N, H, W) in [0, 1]."""
    x = torch.as_tensor(out).detach().float().cpu()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.dim() == 2:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(f"the decoder returned (N, {x.shape[1]}): not a square image")
        x = x.reshape(len(x), side, side)
    if x.dim() != 3:
        raise ValueError(f"the decoder should return (N, 1, H, W), (N, H, W) or (N, H*W), "
                         f"got {tuple(x.shape)}")
    return x.clamp(0, 1)


class LatentSliders(PlotWidget):
    """A PlotWidget of one slider per latent direction; see ``latent_sliders``.

    Attributes (updated at every redraw):
        z: (d,) the code decoded now; z0: (d,) the starting code.
        image, base_image: (H, W) the decoded digits at z and at z0.
        measured, base_measured: attribute name -> value on ``image`` / ``base_image``.
        label, base_label: the classifier's digit for each image (None without one);
        confidence: its probability for ``label``.
        drawn: a summary of the last picture (slider values, panel titles).
    """

    def __init__(self, decode: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                 directions: Mapping[str, torch.Tensor],
                 attributes: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                 classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 span: float = 3.0):
        from coursekit.latent import ATTRIBUTES
        if not callable(decode):
            raise TypeError(f"decode should be a function z -> images, got {type(decode).__name__}")
        self._decode = getattr(decode, "decode", decode)
        owner = getattr(self._decode, "__self__", decode)          # a model's weights say where
        try:
            self._device = next(owner.parameters()).device
        except (AttributeError, StopIteration, TypeError):
            self._device = torch.device("cpu")
        self.z0 = torch.as_tensor(z0).detach().float().reshape(-1).cpu()       # (d,)
        if not directions:
            raise ValueError("give at least one direction, e.g. {'ink': d_ink}")
        self.units: dict[str, torch.Tensor] = {}
        for name, d in directions.items():
            d = torch.as_tensor(d).detach().float().reshape(-1).cpu()
            if d.shape != self.z0.shape:
                raise ValueError(f"direction {name!r} has shape {tuple(d.shape)}, the code "
                                 f"{tuple(self.z0.shape)}")
            if d.norm() == 0:
                raise ValueError(f"direction {name!r} is zero")
            self.units[name] = d / d.norm()
        if span <= 0:
            raise ValueError(f"span must be positive, got {span}")
        self.attributes = dict(ATTRIBUTES if attributes is None else attributes)
        self.classifier = classifier
        self.z = self.z0.clone()
        self.image = self.base_image = torch.empty(0)
        self.measured: dict[str, float] = {}
        self.base_measured: dict[str, float] = {}
        self.label = self.base_label = None
        self.confidence = float("nan")
        self.drawn: dict[str, Any] = {}
        controls = {name: W.FloatSlider(value=0.0, min=-span, max=span, step=0.1,
                                        description=name, readout_format=".1f",
                                        continuous_update=False, layout=W.Layout(width="280px"))
                    for name in self.units}
        super().__init__(controls, self._draw_sliders, figsize=(10, 3.4),
                         title="Latent sliders: move the code along each direction")

    @torch.no_grad()
    def _look(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], int | None, float]:
        image = _images(self._decode(z.unsqueeze(0).to(self._device)))[0]    # (H, W)
        measured = {n: float(torch.as_tensor(f(image[None, None])).reshape(-1)[0])
                    for n, f in self.attributes.items()}
        label, conf = None, float("nan")
        if self.classifier is not None:
            p = torch.softmax(torch.as_tensor(self.classifier(image[None, None])).float(), -1)[0]
            label, conf = int(p.argmax()), float(p.max())
        return image, measured, label, conf

    def _draw_sliders(self, fig: Figure, values: dict) -> None:
        # 1. the code: z0 plus each slider times its unit direction
        z = self.z0.clone()
        for name, s in values.items():
            z = z + float(s) * self.units[name]
        # 2. decode and measure both images
        image, measured, label, conf = self._look(z)
        base, base_measured, base_label, _ = self._look(self.z0)
        ax_now, ax_base, ax_bars = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.6]})
        fig.subplots_adjust(left=0.03, right=0.97, bottom=0.18, top=0.82, wspace=0.35)
        suffix = "" if label is None else f"\nclassifier: {label} ({conf:.0%})"
        titles = [f"at z{suffix}", "start z0" + ("" if base_label is None else f"\nclassifier: {base_label}")]
        for ax, img, title in ((ax_now, image, titles[0]), (ax_base, base, titles[1])):
            ax.imshow(img.numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        names = list(measured)
        ys = torch.arange(len(names), dtype=torch.float32)
        ax_bars.barh((ys - 0.2).tolist(), [base_measured[n] for n in names], height=0.4,
                     color="tab:gray", label="start z0")
        ax_bars.barh((ys + 0.2).tolist(), [measured[n] for n in names], height=0.4,
                     color="tab:orange", label="at z")
        ax_bars.set_yticks(ys.tolist())
        ax_bars.set_yticklabels(names)
        ax_bars.set_xlabel("attribute measured on the decoded image")
        ax_bars.set_title("attributes", fontsize=10)
        ax_bars.legend(fontsize=8, loc="lower right")
        self.z, self.image, self.base_image = z, image, base
        self.measured, self.base_measured = measured, base_measured
        self.label, self.base_label, self.confidence = label, base_label, conf
        self.drawn = {"values": dict(values), "titles": titles}


def latent_sliders(decode: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                   directions: Mapping[str, torch.Tensor],
                   attributes: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                   classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   span: float = 3.0) -> LatentSliders:
    """Sliders along latent directions, with the decoded digit and its measured attributes.

    Args:
        decode: codes (N, d) -> images (N, 1, H, W), (N, H, W) or (N, H*W) in [0, 1]
            (a VAE's ``decode``, a generator, ...).
        z0: (d,) the starting code.
        directions: name -> (d,) direction (normalised by the widget).
        attributes: name -> function images (N, 1, H, W) -> (N,) (default: ink and slant).
        classifier: images (N, 1, H, W) -> (N, 10) logits, to name the digit shown.
        span: each slider runs from -span to span (in units of latent distance).
    Returns:
        The widget; display it, or ``set(name=value)`` and read ``measured``, ``label``.
    """
    return LatentSliders(decode, z0, directions, attributes, classifier, span)
