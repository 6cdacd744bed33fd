"""Walking around a generator's latent space (chapter 12): paths, directions, measurements.

Four small groups of functions, each written inline in ``notebooks/12_latent.ipynb``
first (a test checks that both give the same numbers):

1. Paths between two codes: ``lerp`` (a straight line) and ``slerp`` (an arc of a great
   circle, "Sampling Generative Networks", White, 2016), ``path`` to build either.
2. Continuity: ``path_smoothness`` is the change of the decoded image per equal step
   along a path; ``unevenness`` sums it up (largest step / mean step, 1 = perfectly even).
3. Attributes measured on digit images: ``ink`` (stroke mass), ``slant`` (from the
   image's second moments), and ``spearman``, the rank correlation that says whether an
   attribute changes steadily along a path (``ranks`` gives tied values their mean rank).
4. Directions found from examples: ``mean_difference_direction`` (mean code of the top
   minus the bottom quantile of an attribute), ``regression_direction`` (least squares
   of the attribute on the code), ``orthogonalise`` (remove another direction's part,
   as in "Interpreting the Latent Space of GANs for Semantic Face Editing", Shen et al.,
   2020) and ``class_direction`` (from the mean code of one digit to another's).

Shapes: a code is (d,) or a batch (B, d); a path is (T, d) or (T, B, d); images are
(N, 1, H, W) or (N, H, W) with values in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable

import torch

# -- 1. paths ----------------------------------------------------------------------------------


def _times(t, like: torch.Tensor) -> torch.Tensor:
    """``t`` (a number or a (T,) tensor) shaped to broadcast against codes ``like`` (..., d)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(t.shape + (1,) * like.dim())                   # (T, 1, ..., 1) or ()


def lerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Linear interpolation z(t) = (1 - t) z0 + t z1.

    Args:
        z0, z1: codes (..., d) of the same shape.
        t: a number, or a (T,) tensor of fractions (0 gives z0, 1 gives z1).
    Returns:
        z0's shape for a number t, else (T, ..., d).
    """
    t = _times(t, z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t, eps: float = 1e-3) -> torch.Tensor:
    """Spherical interpolation along the great circle through z0 and z1 (White, 2016).

        omega = arccos(<z0, z1> / (|z0| |z1|))
        z(t)  = sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1

    The angle grows at a constant rate with t, and when |z0| = |z1| every point keeps
    that norm. Where z0 and z1 are (anti)parallel, sin(omega) is 0 and the great circle
    is not unique: those rows fall back to ``lerp``.

    Args:
        z0, z1: codes (..., d) of the same shape; the angle is taken over the last axis.
        t: a number, or a (T,) tensor of fractions.
        eps: rows with sin(omega) below this use ``lerp`` (float32 puts opposite vectors
            at sin(omega) ~ 3e-4, not 0).
    Returns:
        z0's shape for a number t, else (T, ..., d).
    """
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True)
                                             * z1.norm(dim=-1, keepdim=True)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))                          # (..., 1)
    sin = torch.sin(omega)
    flat = sin < eps                                                # (anti)parallel rows
    safe = torch.where(flat, torch.ones_like(sin), sin)
    tt = _times(t, z0)
    w0 = torch.sin((1 - tt) * omega) / safe                        # (T, ..., 1)
    w1 = torch.sin(tt * omega) / safe
    return torch.where(flat, lerp(z0, z1, t), w0 * z0 + w1 * z1)


def path(z0: torch.Tensor, z1: torch.Tensor, n: int, method: str = "slerp") -> torch.Tensor:
    """``n`` equally spaced points (t = 0 ... 1) from z0 to z1: (n, ..., d)."""
    fn = {"lerp": lerp, "slerp": slerp}[method]
    return fn(z0, z1, torch.linspace(0, 1, n))


# -- 2. continuity -----------------------------------------------------------------------------


@torch.no_grad()
def path_smoothness(decode: Callable[[torch.Tensor], torch.Tensor], path: torch.Tensor) -> torch.Tensor:
    """The change of the decoded image at each step of a path.

    Args:
        decode: codes (N, d) -> images (N, ...).
        path: (T, d) one path, or (T, B, d) a batch of paths.
    Returns:
        (T - 1,) or (T - 1, B): the Euclidean distance between consecutive images.
    """
    T = path.shape[0]
    x = decode(path.reshape(-1, path.shape[-1]))                   # (T * B, ...)
    x = x.reshape(T, -1, *x.shape[1:]).flatten(2)                  # (T, B, pixels)
    steps = (x[1:] - x[:-1]).norm(dim=-1)                          # (T - 1, B)
    return steps if path.dim() == 3 else steps[:, 0]


def unevenness(steps: torch.Tensor) -> torch.Tensor:
    """Largest step over mean step along axis 0 (1 = every step changes the image as much)."""
    return steps.max(0).values / steps.mean(0).clamp_min(1e-12)


# -- 3. attributes and rank correlation --------------------------------------------------------


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W)."""
    return x[:, 0] if x.dim() == 4 else x


def ink(x: torch.Tensor) -> torch.Tensor:
    """Stroke mass: the sum of the pixel values of each image, (N, ...) -> (N,)."""
    return _pixels(x).flatten(1).sum(1)


def slant(x: torch.Tensor) -> torch.Tensor:
    """How far each digit leans to the right, from its second moments, (N, ...) -> (N,).

    With the ink as weights, rows r growing downwards and columns c to the right:
    slant = -cov(r, c) / var(r), the horizontal shift per row upwards (a shear).
    """
    p = _pixels(x).clamp_min(0)                                    # (N, H, W)
    H, W = p.shape[-2:]
    m = p.flatten(1).sum(1).clamp_min(1e-6)                         # (N,)
    r = torch.arange(H, dtype=p.dtype, device=p.device).view(1, H, 1)
    c = torch.arange(W, dtype=p.dtype, device=p.device).view(1, 1, W)
    r0 = (p * r).flatten(1).sum(1) / m                             # (N,) centroid row
    c0 = (p * c).flatten(1).sum(1) / m
    dr, dc = r - r0.view(-1, 1, 1), c - c0.view(-1, 1, 1)          # (N, H, W) each
    cov = (p * dr * dc).flatten(1).sum(1) / m
    var = (p * dr ** 2).flatten(1).sum(1) / m
    return -cov / var.clamp_min(1e-6)


ATTRIBUTES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"ink": ink, "slant": slant}


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1 ... n of the values of a 1-D tensor; tied values share their mean rank."""
    x = torch.as_tensor(x).flatten()
    order = torch.argsort(x)
    _, group, counts = torch.unique_consecutive(x[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()                              # last rank of each group
    mean_rank = ends - (counts.double() - 1) / 2                    # (first + last) / 2
    r = torch.empty(len(x), dtype=torch.float64, device=x.device)
    r[order] = mean_rank[group]
    return r


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of two 1-D tensors: Pearson's correlation of their ranks.

    1 when y grows whenever x grows (any monotone relation), -1 when it always falls.
    Returns a 0-d float64 tensor (0 when either has no spread).
    """
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = (rx.norm() * ry.norm())
    return (rx * ry).sum() / den if den > 0 else torch.zeros((), dtype=torch.float64)


# -- 4. directions -----------------------------------------------------------------------------


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def mean_difference_direction(z: torch.Tensor, attribute: torch.Tensor, q: float = 0.2) -> torch.Tensor:
    """Unit direction from the mean code of the lowest ``q`` of an attribute to the highest's.

    Args:
        z: (N, d) codes; attribute: (N,) the attribute of their images.
    Returns:
        (d,) unit vector.
    """
    k = max(1, int(q * len(z)))
    order = torch.argsort(attribute)
    return _unit(z[order[-k:]].mean(0) - z[order[:k]].mean(0))


def regression_direction(z: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
    """Unit direction of the least-squares fit attribute ~ z w + b: w / |w|, (d,)."""
    X = torch.cat([z.double(), torch.ones(len(z), 1, dtype=torch.float64, device=z.device)], 1)
    w = torch.linalg.lstsq(X, attribute.double().unsqueeze(1)).solution[:-1, 0]   # (d,)
    return _unit(w).to(z.dtype)


def orthogonalise(direction: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``direction`` with its component along ``other`` removed, as a unit vector (d,)."""
    o = _unit(other)
    return _unit(direction - (direction @ o) * o)


def class_direction(z: torch.Tensor, labels: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """From the mean code of class ``a`` to that of class ``b`` (not normalised), (d,)."""
    return z[labels == b].mean(0) - z[labels == a].mean(0)


__all__ = ["lerp", "slerp", "path", "path_smoothness", "unevenness", "ink", "slant", "ATTRIBUTES",
           "ranks", "spearman", "mean_difference_direction", "regression_direction",
           "orthogonalise", "class_direction"]
