"""PlotWidget: controls on top, a matplotlib figure (rendered to PNG) below."""
from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure


def figure_to_png(fig: Figure, dpi: int = 90) -> bytes:
    """Render a matplotlib Figure to PNG bytes (no pyplot, no global state)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class PlotWidget:
    """Redraw a figure whenever one of the controls changes.

    Args:
        controls: name -> ipywidget with a ``value`` (sliders, dropdowns, ...).
        draw: ``draw(fig, values)`` draws on a fresh Figure; ``values`` maps each
            control's name to its current value.
        figsize: size of the figure in inches.
        title: a line of text shown above the controls.

    Attributes:
        png: the current image as PNG bytes (what tests compare).
        n_draws: how many times the figure was drawn.
        error: the message of the last failed redraw, or "" (the previous image stays).
    """

    def __init__(self, controls: Mapping[str, W.Widget], draw: Callable[[Figure, dict], Any],
                 figsize: tuple[float, float] = (6, 4), title: str = ""):
        self.controls = dict(controls)
        self._draw = draw
        self.figsize = figsize
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.message = W.HTML("")
        self.n_draws = 0
        self.error = ""
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        self.ui = W.VBox(header + [W.HBox(list(self.controls.values()),
                                          layout=W.Layout(flex_flow="row wrap")),
                                   self.message, self.image])
        self.redraw()

    @property
    def values(self) -> dict[str, Any]:
        """Current value of every control, by name."""
        return {name: c.value for name, c in self.controls.items()}

    @property
    def png(self) -> bytes:
        return bytes(self.image.value)

    def set(self, **values: Any) -> None:
        """Set several controls at once and redraw once (used by tests and lessons)."""
        for name, value in values.items():
            if name not in self.controls:
                raise KeyError(f"no control named {name!r}; controls: {list(self.controls)}")
        with self._held():
            for name, value in values.items():
                self.controls[name].value = value
        self.redraw()

    def redraw(self) -> None:
        """Draw the figure for the current values; on error keep the old image and say why."""
        fig = Figure(figsize=self.figsize)
        try:
            self._draw(fig, self.values)
        except Exception as err:  # a bad combination of values must not break the widget
            self.error = f"{type(err).__name__}: {err}"
            self.message.value = f"<span style='color:#b00'>Could not draw: {self.error}</span>"
            return
        self.error = ""
        self.message.value = ""
        self.image.value = figure_to_png(fig)
        self.n_draws += 1

    # -- internals ---------------------------------------------------------------------
    _holding = False

    def _held(self):
        widget = self

        class _Hold:
            def __enter__(self):
                widget._holding = True

            def __exit__(self, *exc):
                widget._holding = False

        return _Hold()

    def _on_change(self, change) -> None:
        if not self._holding:
            self.redraw()

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.ui._repr_mimebundle_(**kwargs)
        # A still image of the current figure: what a static page (GitHub, coursekit html)
        # shows where no widget can run. JupyterLab renders the live widget instead.
        if isinstance(bundle, dict) and self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle
