"""The latent grid explorer (chapter 05): walk around the 2-D latent space of a decoder.

Three views of the same decoder, redrawn whenever a slider moves:

* left, the latent map: where the encoder put real images (coloured by digit, when
  you pass their codes and labels), the square of the grid shown in the middle, and a
  red cross at the point z = (z1, z2) you chose;
* middle, the decoded grid: the decoder's image at every point of a regular
  ``n_grid`` x ``n_grid`` grid over [-grid_range, grid_range]^2 (z2 grows upwards, as
  on the map), with the cell nearest to your z outlined;
* right, the decoder's image at your z, large.

Example::

    z_val = vae.encode(data.x_val)                     # (N, 2) posterior means
    w = ck.widgets.latent_grid_explorer(vae, points=z_val, labels=data.y_val)
    w                                                   # shows it in a notebook
    w.set(z1=-1.0, z2=0.5)
    w.digit, w.nearest_label                            # what the tests look at
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from coursekit.widgets.base import PlotWidget


def _decode_fn(decoder_or_model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function z (B, L) -> images; ``.decode`` when the object has one (a VAE)."""
    decode = getattr(decoder_or_model, "decode", None)
    if callable(decode):
        return decode
    if callable(decoder_or_model):
        return decoder_or_model
    raise TypeError("latent_grid_explorer needs a VAE (anything with a .decode(z) method) or a "
                    f"function z -> images, got {type(decoder_or_model).__name__}")


def _latent_size(decoder_or_model: Any, n_latent: int | None) -> int:
    if n_latent is not None:
        return int(n_latent)
    for owner in (decoder_or_model, getattr(decoder_or_model, "config", None)):
        size = getattr(owner, "n_latent", None)
        if isinstance(size, int):
            return size
    return 2


def _device(decoder_or_model: Any) -> torch.device:
    params = getattr(decoder_or_model, "parameters", None)
    if callable(params):
        try:
            return next(params()).device
        except (StopIteration, TypeError):
            pass
    return torch.device("cpu")


class LatentGridExplorer(PlotWidget):
    """A PlotWidget over the latent space of a decoder; see ``latent_grid_explorer``.

    Attributes (updated at every redraw, for tests and for the lesson's text):
        z: (n_latent,) the latent point decoded on the right (zeros outside ``dims``).
        digit: (H, W) the decoded image at z, values in [0, 1].
        grid_z: (n_grid, n_grid, 2) the latent coordinates (z1, z2) of the grid cells;
            row 0 is the top row of the picture (largest z2).
        grid: (n_grid, n_grid, H, W) the decoded images of the grid.
        nearest_label: the label of the encoded point nearest to z (None without
            points or labels); nearest_distance: its distance in latent space.
        drawn: a summary of the last picture (z, grid range and size, panel titles).
    """

    def __init__(self, decoder_or_model: Any, points: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, z_range: float = 3.0, n_grid: int = 9,
                 z1: float = 0.0, z2: float = 0.0, grid_range: float | None = None,
                 dims: tuple[int, int] = (0, 1), n_latent: int | None = None):
        self._decode = _decode_fn(decoder_or_model)
        self.n_latent = _latent_size(decoder_or_model, n_latent)
        self.dims = tuple(int(d) for d in dims)
        if len(self.dims) != 2 or self.dims[0] == self.dims[1] or \
                not all(0 <= d < self.n_latent for d in self.dims):
            raise ValueError(f"dims must be two different latent indices below {self.n_latent}, "
                             f"got {dims}")
        self._device = _device(decoder_or_model)
        self.points = self.labels = None
        if points is not None:
            pts = torch.as_tensor(points).detach().float().cpu()
            if pts.dim() != 2 or pts.shape[1] not in (2, self.n_latent):
                raise ValueError(f"points should be latent codes of shape (N, {self.n_latent}) "
                                 f"or (N, 2), got {tuple(pts.shape)}")
            self.points = pts[:, list(self.dims)] if pts.shape[1] != 2 else pts  # (N, 2)
        if labels is not None:
            if self.points is None:
                raise ValueError("labels were given without points; pass points=vae.encode(x)")
            self.labels = torch.as_tensor(labels).detach().cpu().long().reshape(-1)
            if len(self.labels) != len(self.points):
                raise ValueError(f"{len(self.labels)} labels for {len(self.points)} points")
        if z_range <= 0:
            raise ValueError(f"z_range must be positive, got {z_range}")
        self.z_range = float(z_range)
        self.z = torch.zeros(self.n_latent)
        self.digit = torch.empty(0)
        self.grid = self.grid_z = torch.empty(0)
        self.nearest_label: int | None = None
        self.nearest_distance = float("nan")
        self.drawn: dict[str, Any] = {}
        step = 0.05 if z_range <= 5 else 0.1
        slider = dict(min=-self.z_range, max=self.z_range, step=step, readout_format=".2f",
                      continuous_update=False, layout=W.Layout(width="260px"))
        controls = {
            "z1": W.FloatSlider(value=z1, description=f"z{self.dims[0] + 1}", **slider),
            "z2": W.FloatSlider(value=z2, description=f"z{self.dims[1] + 1}", **slider),
            "grid_range": W.FloatSlider(
                value=min(grid_range if grid_range is not None else 2.0, self.z_range),
                min=0.25, max=self.z_range, step=0.25, readout_format=".2f",
                continuous_update=False, description="grid ±", layout=W.Layout(width="260px")),
            "n_grid": W.IntSlider(value=n_grid, min=2, max=15, continuous_update=False,
                                  description="grid n", layout=W.Layout(width="220px")),
        }
        super().__init__(controls, self._draw_latent, figsize=(12.5, 4.2),
                         title="Latent grid explorer: what the decoder draws at each z")

    # -- decoding ------------------------------------------------------------------------
    def _latents(self, coords: torch.Tensor) -> torch.Tensor:
        """(M, 2) coordinates along ``dims`` -> (M, n_latent) latents (zeros elsewhere)."""
        z = torch.zeros(len(coords), self.n_latent)
        z[:, self.dims[0]] = coords[:, 0]
        z[:, self.dims[1]] = coords[:, 1]
        return z

    def decode(self, coords: torch.Tensor) -> torch.Tensor:
        """Decode (M, 2) latent coordinates to (M, H, W) images clamped to [0, 1]."""
        z = self._latents(coords).to(self._device)
        with torch.no_grad():
            out = torch.as_tensor(self._decode(z)).detach().float().cpu()
        if out.dim() == 4 and out.shape[1] == 1:
            out = out[:, 0]                                    # (M, H, W)
        elif out.dim() == 2:
            side = int(round(out.shape[1] ** 0.5))
            if side * side != out.shape[1]:
                raise ValueError(f"the decoder returned (M, {out.shape[1]}): not a square image")
            out = out.reshape(len(out), side, side)            # (M, H, W)
        if out.dim() != 3 or len(out) != len(coords):
            raise ValueError("the decoder should return (M, 1, H, W), (M, H, W) or (M, H*W) "
                             f"images for M latents, got {tuple(out.shape)}")
        return out.clamp(0, 1)

    # -- drawing -------------------------------------------------------------------------
    def _draw_latent(self, fig: Figure, values: dict) -> None:
        from matplotlib.patches import Rectangle

        z1, z2 = float(values["z1"]), float(values["z2"])
        r, n = float(values["grid_range"]), int(values["n_grid"])

        # 1. the chosen point and its image
        here = torch.tensor([[z1, z2]])                               # (1, 2)
        digit = self.decode(here)[0]                                  # (H, W)

        # 2. the grid: z1 left to right, z2 top to bottom from +r to -r
        ticks = torch.linspace(-r, r, n)
        g2, g1 = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")  # (n, n) each
        grid_z = torch.stack([g1, g2], dim=-1)                        # (n, n, 2)
        images = self.decode(grid_z.reshape(-1, 2))                   # (n*n, H, W)
        h, w = images.shape[-2:]
        grid = images.reshape(n, n, h, w)                             # (n, n, H, W)
        mosaic = grid.permute(0, 2, 1, 3).reshape(n * h, n * w)      # (n*H, n*W)

        # 3. the nearest encoded point
        nearest_label, nearest_distance = None, float("nan")
        if self.points is not None and len(self.points):
            dist = (self.points - here).norm(dim=1)                   # (N,)
            i = int(dist.argmin())
            nearest_distance = dist[i].item()
            if self.labels is not None:
                nearest_label = int(self.labels[i])

        ax_map, ax_grid, ax_digit = fig.subplots(
            1, 3, gridspec_kw={"width_ratios": [1.25, 1, 0.8]})
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.86, wspace=0.45)

        # left: the latent map
        if self.points is not None:
            if self.labels is not None:
                sc = ax_map.scatter(self.points[:, 0].numpy(), self.points[:, 1].numpy(),
                                    c=self.labels.numpy(),
                                    cmap="tab10", vmin=-0.5, vmax=9.5, s=8, alpha=0.7,
                                    edgecolors="none")
                cbar = fig.colorbar(sc, ax=ax_map, ticks=range(10), fraction=0.046, pad=0.02)
                cbar.set_label("digit")
            else:
                ax_map.scatter(self.points[:, 0].numpy(), self.points[:, 1].numpy(), s=8, alpha=0.5,
                               color="tab:blue", edgecolors="none")
        ax_map.add_patch(Rectangle((-r, -r), 2 * r, 2 * r, fill=False, ls="--", lw=1,
                                   edgecolor="gray"))
        ax_map.plot([z1], [z2], marker="x", color="red", ms=12, mew=3)
        ax_map.set_xlim(-self.z_range, self.z_range)
        ax_map.set_ylim(-self.z_range, self.z_range)
        ax_map.set_aspect("equal")
        ax_map.set_xlabel(f"$z_{self.dims[0] + 1}$")
        ax_map.set_ylabel(f"$z_{self.dims[1] + 1}$")
        map_title = "latent map (dashed: the grid)"
        ax_map.set_title(map_title, fontsize=10)
        ax_map.grid(alpha=0.3)

        # middle: the decoded grid, in latent coordinates
        half = r / max(n - 1, 1) if n > 1 else 0.5
        extent = (-r - half, r + half, -r - half, r + half)
        ax_grid.imshow(mosaic.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=extent,
                       interpolation="nearest")
        for edge in torch.linspace(-r - half, r + half, n + 1).tolist():  # cell borders
            ax_grid.axvline(edge, color="#c8c8c8", lw=0.6)
            ax_grid.axhline(edge, color="#c8c8c8", lw=0.6)
        if abs(z1) <= r + half and abs(z2) <= r + half:
            col = int(torch.argmin((ticks - z1).abs()))
            row = int(torch.argmin((ticks - z2).abs()))
            cx, cy = ticks[col].item(), ticks[row].item()
            ax_grid.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False,
                                        edgecolor="red", lw=2))
        ax_grid.set_xlabel(f"$z_{self.dims[0] + 1}$")
        ax_grid.set_ylabel(f"$z_{self.dims[1] + 1}$")
        grid_title = f"decoded {n}x{n} grid over [-{r:g}, {r:g}]²"
        ax_grid.set_title(grid_title, fontsize=10)

        # right: the decoded image at z
        ax_digit.imshow(digit.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax_digit.set_xticks([])
        ax_digit.set_yticks([])
        digit_title = f"decoder(z) at z = ({z1:.2f}, {z2:.2f})"
        if nearest_label is not None:
            digit_title += (f"\nnearest real digit: {nearest_label} "
                            f"(distance {nearest_distance:.2f})")
        ax_digit.set_title(digit_title, fontsize=10)

        self.z = self._latents(here)[0]
        self.digit, self.grid, self.grid_z = digit, grid, grid_z
        self.nearest_label, self.nearest_distance = nearest_label, nearest_distance
        self.drawn = {"z": (z1, z2), "grid_range": r, "n_grid": n,
                      "n_points": 0 if self.points is None else len(self.points),
                      "titles": (map_title, grid_title, digit_title)}


def latent_grid_explorer(decoder_or_model: Any, points: torch.Tensor | None = None,
                         labels: torch.Tensor | None = None, z_range: float = 3.0,
                         n_grid: int = 9, z1: float = 0.0, z2: float = 0.0,
                         grid_range: float | None = None, dims: tuple[int, int] = (0, 1),
                         n_latent: int | None = None) -> LatentGridExplorer:
    """Sliders over a 2-D slice of latent space, with the decoded image and the latent map.

    Args:
        decoder_or_model: a VAE (or anything with ``.decode(z)`` returning images in
            [0, 1]), or a function z (M, n_latent) -> images (M, 1, H, W), (M, H, W) or
            (M, H*W) in [0, 1].
        points: (N, n_latent) or (N, 2) latent codes of real images to draw on the map,
            e.g. ``vae.encode(x)``; labels: (N,) their integer classes (colours).
        z_range: the sliders and the map cover [-z_range, z_range] on each axis.
        n_grid: cells per side of the decoded grid (2 to 15).
        z1, z2: the starting point; grid_range: half-width of the grid (default 2).
        dims: which two latent coordinates the sliders move when n_latent > 2 (the
            others stay 0, the prior's mean).
        n_latent: latent size, when it cannot be read from ``decoder_or_model``.
    Returns:
        A LatentGridExplorer (a PlotWidget): display it, or ``.set(z1=.., z2=..)``.
    """
    return LatentGridExplorer(decoder_or_model, points=points, labels=labels, z_range=z_range,
                              n_grid=n_grid, z1=z1, z2=z2, grid_range=grid_range, dims=dims,
                              n_latent=n_latent)
