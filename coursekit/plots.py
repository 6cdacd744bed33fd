"""Plotting helpers used across chapters. matplotlib is imported on first use."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _new_ax(ax, figsize=(6, 4)):
    if ax is not None:
        return ax
    _, ax = _plt().subplots(figsize=figsize)
    return ax


def plot_history(history, names: Iterable[str] | None = None, ax=None, logy: bool = False,
                 smooth: int = 1, title: str | None = None):
    """Plot the metrics of a ``coursekit.History`` (or a dict name -> list of values).

    Args:
        smooth: width of a moving average drawn over noisy curves (1 = none).
    Returns:
        The matplotlib Axes.
    """
    ax = _new_ax(ax)
    if hasattr(history, "records"):
        series = {k: ([s for s, _ in v], [x for _, x in v]) for k, v in history.records.items()}
    else:
        series = {k: (list(range(len(v))), [float(x) for x in v]) for k, v in history.items()}
    for name in names or series:
        steps, values = series[name]
        if smooth > 1 and len(values) >= smooth:
            kernel = torch.ones(smooth) / smooth
            smoothed = torch.conv1d(torch.tensor(values).view(1, 1, -1), kernel.view(1, 1, -1))
            ax.plot(steps, values, alpha=0.25)
            ax.plot(steps[smooth - 1:], smoothed.view(-1).tolist(), label=name,
                    color=ax.lines[-1].get_color())
        else:
            ax.plot(steps, values, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("value" if len(series) > 1 else next(iter(series), "loss"))
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_losses(losses: dict[str, Sequence[float]] | Sequence[float], ax=None,
                logy: bool = False, title: str | None = None):
    """Plot one loss curve (a list) or several (a dict name -> list) against step."""
    if not isinstance(losses, dict):
        losses = {"loss": list(losses)}
    return plot_history(losses, ax=ax, logy=logy, title=title)


def show_images(images: torch.Tensor, nrow: int | None = None, titles: Sequence[str] | None = None,
                ax=None, cmap: str = "gray", title: str | None = None, vmin: float | None = None,
                vmax: float | None = None):
    """Show a batch of images as one grid.

    Args:
        images: (N, H, W), (N, 1, H, W) or (N, 3, H, W), any float range (each grid is
            drawn with one shared colour scale: [vmin, vmax], default the batch's min/max).
        nrow: images per row (default: about square).
        titles: one short label per image, drawn above it.
    Returns:
        The matplotlib Axes (one Axes for the whole grid).
    """
    images = torch.as_tensor(images).detach().float().cpu()
    if images.dim() == 2:
        images = images.unsqueeze(0)
    if images.dim() == 3:                       # (N, H, W) -> (N, 1, H, W)
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"show_images expects (N, H, W) or (N, C, H, W) with C in (1, 3), "
                         f"got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol_rows = math.ceil(n / nrow)
    pad = 1
    lo = float(images.min().item() if vmin is None else vmin)
    hi = float(images.max().item() if vmax is None else vmax)
    grid = torch.full((c, ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad), lo)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
    ax = _new_ax(ax, figsize=(min(1.0 * nrow, 12), min(1.0 * ncol_rows, 12) + (0.3 if titles else 0)))
    if c == 1:
        ax.imshow(grid[0].numpy(), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    else:
        ax.imshow(((grid - lo) / max(hi - lo, 1e-8)).clamp(0, 1).permute(1, 2, 0).numpy(),
                  interpolation="nearest")
    if titles is not None:
        for i, t in enumerate(list(titles)[:n]):
            r, q = divmod(i, nrow)
            ax.text(pad + q * (w + pad) + w / 2, r * (h + pad) + pad - 0.3, str(t),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def scatter2d(points: torch.Tensor, labels: torch.Tensor | None = None, ax=None,
              title: str | None = None, s: float = 6, alpha: float = 0.6, label: str | None = None,
              color=None):
    """Scatter-plot 2-D points (N, 2), coloured by integer ``labels`` (N,) when given."""
    pts = torch.as_tensor(points).detach().float().cpu()
    if pts.dim() != 2 or pts.shape[1] != 2:
        raise ValueError(f"scatter2d expects points of shape (N, 2), got {tuple(pts.shape)}")
    ax = _new_ax(ax, figsize=(5, 5))
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, label=label, color=color)
    else:
        lab = torch.as_tensor(labels).cpu()
        ax.scatter(pts[:, 0], pts[:, 1], c=lab, s=s, alpha=alpha, cmap="coolwarm")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax


def plot_decision_boundary(predict: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                           labels: torch.Tensor | None = None, ax=None, title: str | None = None,
                           resolution: int = 150, margin: float = 0.5):
    """Shade the plane by ``predict(grid)`` (probability of class 1, shape (M,)) and draw points.

    Returns:
        The matplotlib Axes.
    """
    pts = torch.as_tensor(points).detach().float().cpu()
    lo = pts.min(0).values - margin
    hi = pts.max(0).values + margin
    xs = torch.linspace(lo[0], hi[0], resolution)
    ys = torch.linspace(lo[1], hi[1], resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")              # (R, R) each
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (R*R, 2)
    with torch.no_grad():
        prob = torch.as_tensor(predict(grid)).detach().float().cpu().reshape(resolution, resolution)
    ax = _new_ax(ax, figsize=(5, 5))
    ax.contourf(gx, gy, prob, levels=20, cmap="coolwarm", alpha=0.35, vmin=0, vmax=1)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1.5)
    scatter2d(pts, labels, ax=ax, title=title)
    return ax
