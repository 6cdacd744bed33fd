"""Checks for exercises/12_latent.ipynb, one ``check_<exercise>`` per exercise.

The references are written here in float64 from the definitions (the great-circle
formula of White, 2016; ranks counted pair by pair; least squares by the normal
equations), independently of ``coursekit.latent``, which the tests compare with them.
Random cases are drawn from ``seed`` with their own generator, so a check never changes
the learner's random numbers; the solutions' hidden tests pass
``ck.checks.hidden_seed(...)``. When an answer is wrong, a check tries the usual mistakes
on the same case and names the one the answer reproduces. ``BANS`` lists what each
answer may not use: coursekit's own version of the exercise and the library call that
would do its job.
"""
from __future__ import annotations

import math

import torch

from coursekit.checks.assertions import (CheckFailure, as_number, as_tensor, call, diagnose, expect_close,
                                        fail, matches, passed, require_callable, scan_answer, seeded)
from coursekit.checks.forbidden import ban

BANS = {
    "check_slerp": [
        ban("coursekit.latent.slerp", "coursekit.latent.path",
            reason="the exercise asks you to write slerp; coursekit's slerp is the answer itself"),
    ],
    "check_spearman": [
        ban("coursekit.latent.spearman", "coursekit.latent.ranks",
            reason="the exercise asks you to rank the values yourself; coursekit's spearman "
                   "is the answer itself"),
        ban("scipy.stats.spearmanr", "scipy.stats.rankdata",
            reason="the exercise asks you to compute the ranks (ties included) yourself; "
                   "scipy would do the whole job"),
    ],
    "check_attribute_direction": [
        ban("coursekit.latent.regression_direction", "coursekit.latent.orthogonalise",
            "coursekit.latent.mean_difference_direction",
            reason="the exercise asks you to fit and orthogonalise the direction yourself; "
                   "coursekit's direction functions are the answer itself"),
        ban("sklearn.linear_model.LinearRegression",
            reason="the exercise asks for the least-squares fit in torch; scikit-learn's "
                   "LinearRegression would hide it"),
    ],
    "check_lerp_steps": [
        ban("torch.lerp", "torch.Tensor.lerp",
            reason="the exercise asks you to write the straight line (1 - t) z0 + t z1 "
                   "yourself; torch.lerp is that line"),
        ban("coursekit.latent.lerp", "coursekit.latent.path", "coursekit.latent.path_smoothness",
            reason="the exercise asks you to build the path and measure it yourself; "
                   "coursekit's lerp and path_smoothness are the answer itself"),
    ],
}


_gen = seeded


_close, _diagnose = matches, diagnose


# -- 1. slerp for batches, (anti)parallel codes included -------------------------------------

def _slerp_reference(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, d), (B, d), (T,) -> (T, B, d), row by row in float64."""
    z0, z1, t = z0.double(), z1.double(), t.double()
    out = torch.empty(len(t), *z0.shape, dtype=torch.float64)
    for b in range(len(z0)):
        a, c = z0[b], z1[b]
        cos = float(a @ c) / max(float(a.norm() * c.norm()), 1e-300)
        omega = math.acos(min(1.0, max(-1.0, cos)))
        for i, ti in enumerate(t.tolist()):
            if math.sin(omega) < 1e-3:
                out[i, b] = (1 - ti) * a + ti * c
            else:
                out[i, b] = (math.sin((1 - ti) * omega) * a + math.sin(ti * omega) * c) / math.sin(omega)
    return out


def _slerp_mistakes(z0, z1, t):
    z0, z1, t = z0.double(), z1.double(), t.double().view(-1, 1, 1)
    dot = (z0 * z1).sum(-1, keepdim=True)
    out = []
    out.append(((1 - t) * z0 + t * z1, "this is the straight line (lerp): its midpoints are "
                "shorter than the ends; follow the arc, weighting z0 and z1 by sines of "
                "fractions of the angle between them"))
    omega = torch.arccos(dot.clamp(-1, 1))
    out.append(((torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega),
                "the angle comes from the dot product of the *unit* vectors: divide "
                "<z0, z1> by |z0| |z1| before the arccos"))
    cos = dot / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1, 1))
    out.append(((torch.sin(t * omega) * z0 + torch.sin((1 - t) * omega) * z1) / torch.sin(omega),
                "the weights are swapped: at t = 0 the path must be at z0, so z0's weight "
                "is sin((1 - t) omega) / sin(omega)"))
    one = (z0 * z1).sum() / (z0.norm() * z1.norm())
    om = torch.arccos(one.clamp(-1, 1))
    out.append(((torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / torch.sin(om),
                "you used one angle for the whole batch; every row has its own angle "
                "between its z0 and its z1 (reduce over the last axis only)"))
    return out


def check_slerp(slerp, seed: int = 0) -> None:
    """``slerp(z0, z1, t)``: (B, d), (B, d), (T,) -> (T, B, d) points on the great circles.

    Checked: the shape for several B, d and T; the endpoints; the midpoint of two
    orthogonal unit vectors; random batches whose rows have different angles and norms;
    constant angular speed and kept norm on the unit sphere; parallel and anti-parallel
    rows (the straight line, with no NaN), mixed with ordinary rows in one batch. A row
    counts as (anti)parallel when sin(omega) < 1e-3: in float32 the cosine of opposite
    vectors comes out a little above -1, and sin(omega) a few times 1e-4.
    """
    name = "check_slerp"
    require_callable(name, slerp, "slerp", n_args=3)
    scan_answer(name, lambda *a: slerp(*a), BANS[name], "slerp")

    def run(z0, z1, t, case):
        got = call(name, slerp, z0.clone(), z1.clone(), t.clone(), what="slerp(z0, z1, t)",
                   bans=BANS[name])
        expected = _slerp_reference(z0, z1, t)
        got = as_tensor(name, got, f"slerp(z0, z1, t) for {case}", shape=tuple(expected.shape),
                        dtype_float=True)
        if torch.isnan(got).any():
            fail(name, case, "no NaN", "NaN values",
                 "where z0 and z1 are parallel or opposite, sin(omega) is 0: detect those rows "
                 "(sin(omega) below 1e-3) and use the straight line (1 - t) z0 + t z1 for them")
        hint = _diagnose(got, _slerp_mistakes(z0, z1, t),
                         "z(t) = [sin((1 - t) omega) z0 + sin(t omega) z1] / sin(omega), with "
                         "omega the angle between z0 and z1 (the arccos of the dot product of "
                         "their unit vectors), row by row")
        expect_close(name, case, got, expected, atol=1e-4, hint=hint, what="the path")
        return got

    # 1. shapes and endpoints
    g = _gen(seed + 1)
    for B, d, T in ((3, 4, 5), (1, 8, 2), (6, 2, 7)):
        z0, z1 = torch.randn(B, d, generator=g), 2 * torch.randn(B, d, generator=g)
        run(z0, z1, torch.linspace(0, 1, T), f"{B} random pairs in {d} dimensions, {T} times "
                                              f"from 0 to 1 (seed {seed})")
    # 2. the midpoint of two orthogonal unit vectors is on the unit circle
    e = torch.eye(3)
    run(e[:2], e[1:], torch.tensor([0.5]), "z0 = [e1, e2], z1 = [e2, e3] (orthogonal unit "
                                           "vectors), t = [0.5]: midpoints (e1 + e2) / sqrt(2)")
    # 3. unit sphere: constant angular speed and norm 1 at uneven times
    z0 = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    z1 = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    t = torch.tensor([0.0, 0.1, 0.35, 0.5, 0.9, 1.0])
    got = run(z0, z1, t, f"4 pairs of unit vectors in 16 dimensions at t = {t.tolist()}")
    norms = got.double().norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        fail(name, "unit vectors in, at t = " + str(t.tolist()), "every point of norm 1",
             f"norms from {norms.min().item():.4f} to {norms.max().item():.4f}",
             "on the sphere the arc keeps the norm; the straight line cuts through the inside")
    # 4. (anti)parallel rows mixed with an ordinary row
    a = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [1.0, 0.0, 0.0]])
    b = torch.stack([3 * a[0], -a[1], torch.tensor([0.0, 2.0, 0.0])])
    run(a, b, torch.linspace(0, 1, 5), "row 0: z1 = 3 z0 (parallel), row 1: z1 = -z0 "
                                       "(opposite), row 2: orthogonal")
    # 5. many random rows with their own angles
    g = _gen(seed + 2)
    z0 = torch.randn(32, 10, generator=g) * torch.rand(32, 1, generator=g).add(0.5)
    z1 = torch.randn(32, 10, generator=g)
    run(z0, z1, torch.rand(9, generator=g), f"32 random pairs with different norms in 10 "
                                            f"dimensions, 9 random times (seed {seed})")
    passed(name, "shapes, endpoints, orthogonal midpoints, constant angular speed and norm on "
                 "the sphere, parallel and opposite rows, random batches")


# -- 2. Spearman's rank correlation with ties ---------------------------------------------------

def _ranks_reference(x: torch.Tensor) -> torch.Tensor:
    """Mean ranks counted pair by pair: #(x_j < x_i) + (#(x_j == x_i) + 1) / 2."""
    x = x.double()
    less = (x.view(1, -1) < x.view(-1, 1)).sum(1).double()
    same = (x.view(1, -1) == x.view(-1, 1)).sum(1).double()
    return less + (same + 1) / 2


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return (a * b).sum() / (a.norm() * b.norm())


def _ordinal(x: torch.Tensor) -> torch.Tensor:
    return torch.argsort(torch.argsort(x, stable=True), stable=True).double() + 1


def check_spearman(spearman, seed: int = 0) -> None:
    """``spearman(x, y)``: two (N,) tensors -> one number, Pearson's correlation of the
    ranks, tied values sharing the mean of the ranks they occupy."""
    name = "check_spearman"
    require_callable(name, spearman, "spearman", n_args=2)
    scan_answer(name, lambda *a: spearman(*a), BANS[name], "spearman")
    g = _gen(seed + 3)
    x20 = torch.randn(20, generator=g)
    cases = [
        ("x = [1, 2, 3, 4, 5], y = x^3 (monotone)", torch.arange(1.0, 6), torch.arange(1.0, 6) ** 3),
        ("x = [1, 2, 3, 4, 5], y = -exp(x) (always falling)", torch.arange(1.0, 6),
         -torch.arange(1.0, 6).exp()),
        ("x = [1, 2, 2, 3], y = [1, 3, 2, 4] (a tie in x)", torch.tensor([1.0, 2, 2, 3]),
         torch.tensor([1.0, 3, 2, 4])),
        ("x = [3, 1, 3, 2, 3, 1], y = [1, 2, 3, 4, 5, 6] (ties, unsorted)",
         torch.tensor([3.0, 1, 3, 2, 3, 1]), torch.arange(1.0, 7)),
        (f"20 random x (seed {seed}), y = 2 x plus a little noise (no ties)",
         x20, x20 * 2 + 0.01 * torch.randn(20, generator=g)),
    ]
    for k, n in enumerate((15, 40, 101)):
        gk = _gen(seed + 30 + k)
        x = torch.randint(0, 5, (n,), generator=gk).float()
        y = (x + torch.randint(0, 4, (n,), generator=gk)).float()
        cases.append((f"{n} random whole numbers with many ties (seed {seed}, case {k})", x, y))
    for case, x, y in cases:
        got = call(name, spearman, x.clone(), y.clone(), what="spearman(x, y)", bans=BANS[name])
        value = as_number(name, got, f"spearman(x, y) for {case}")
        expected = _pearson(_ranks_reference(x), _ranks_reference(y))
        if math.isclose(value, expected.item(), abs_tol=1e-5):
            continue
        hint = _diagnose(torch.tensor(value, dtype=torch.float64), [
            (_pearson(_ordinal(x), _ordinal(y)),
             "tied values must share one rank, the mean of the ranks they occupy (two values "
             "tied for places 2 and 3 both get 2.5); you gave them different ranks"),
            (_pearson(x, y), "that is Pearson's correlation of the values; Spearman's is the "
                             "same formula applied to their ranks"),
            (_pearson(torch.argsort(x).double(), torch.argsort(y).double()),
             "argsort gives the positions that sort the values, not each value's rank; a "
             "rank is where the value lands in the sorted order"),
        ], "replace each value by its rank (1 for the smallest; ties get their mean rank), "
           "then take Pearson's correlation of the two rank vectors")
        fail(name, case, f"{expected.item():.6f}", f"{value:.6f}", hint)
    passed(name, f"{len(cases)} cases, ties included, match the rank correlation")


# -- 3. a direction by least squares, orthogonal to another attribute's ------------------------

def _lsq_w(z: torch.Tensor, a: torch.Tensor, intercept: bool = True) -> torch.Tensor:
    X = z.double()
    if intercept:
        X = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    w = torch.linalg.solve(X.T @ X, X.T @ a.double())              # normal equations
    return w[:-1] if intercept else w


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _direction_reference(z, a, b) -> torch.Tensor:
    wa, wb = _lsq_w(z, a), _unit(_lsq_w(z, b))
    return _unit(wa - (wa @ wb) * wb)


def check_attribute_direction(attribute_direction, seed: int = 0) -> None:
    """``attribute_direction(z, a, b)``: codes (N, d), attributes (N,) x2 -> (d,) unit vector.

    The least-squares direction of ``a`` on the codes (with an intercept), minus its part
    along the least-squares direction of ``b``, normalised. Cases: codes with a nonzero
    mean and attributes with an offset (the intercept matters), correlated attributes
    (the orthogonalisation matters), several N and d, noise.
    """
    name = "check_attribute_direction"
    require_callable(name, attribute_direction, "attribute_direction", n_args=3)
    scan_answer(name, lambda *args: attribute_direction(*args), BANS[name], "attribute_direction")
    cases = []
    for k, (n, d) in enumerate(((200, 4), (500, 8), (120, 3))):
        g = _gen(seed + 40 + k)
        z = torch.randn(n, d, generator=g) + 2 * torch.randn(d, generator=g)   # mean away from 0
        wa, wb = torch.randn(d, generator=g), torch.randn(d, generator=g)
        wa = wa + 0.7 * wb                                                     # correlated
        a = z @ wa + 5.0 + 0.3 * torch.randn(n, generator=g)
        b = z @ wb - 3.0 + 0.3 * torch.randn(n, generator=g)
        cases.append((f"{n} codes in {d} dimensions with a nonzero mean, attributes a and b "
                      f"linear in z plus an offset and noise (seed {seed}, case {k})", z, a, b))
    for case, z, a, b in cases:
        got = call(name, attribute_direction, z.clone(), a.clone(), b.clone(),
                   what="attribute_direction(z, a, b)", bans=BANS[name])
        expected = _direction_reference(z, a, b)
        got = as_tensor(name, got, f"attribute_direction(z, a, b) for {case}", shape=(z.shape[1],),
                        dtype_float=True)
        wa, wb = _lsq_w(z, a), _lsq_w(z, b)
        wa0, wb0 = _lsq_w(z, a, False), _lsq_w(z, b, False)
        zc = z.double() - z.double().mean(0)
        md = zc[a.argsort()[-len(z) // 5:]].mean(0) - zc[a.argsort()[: len(z) // 5]].mean(0)
        hint = _diagnose(got, [
            (_unit(wa), "the direction is not orthogonal to b's: remove its component along "
                        "the unit vector of b's least-squares direction, then normalise"),
            (wa - (wa @ _unit(wb)) * _unit(wb), "the direction should be a unit vector: divide "
                                                "by its norm at the end"),
            (_unit(wa0 - (wa0 @ _unit(wb0)) * _unit(wb0)),
             "the fit has no intercept: the codes and attributes do not have mean 0, so add a "
             "column of ones to the codes (or centre both) before the least-squares fit"),
            (_unit(wa - (wa @ wb) * wb), "project on the *unit* vector of b's direction: "
                                         "subtract (w_a . u_b) u_b with |u_b| = 1"),
            (-expected, "the sign is flipped: the direction should point to larger a"),
            (_unit(md), "that is a difference of means; the exercise asks for the least-squares "
                        "fit of a on z"),
        ], "fit a ~ z w + c by least squares, do the same for b, subtract from w_a its "
           "projection on the unit vector of w_b, and normalise")
        expect_close(name, case, got, expected, atol=2e-3, hint=hint, what="the direction")
        if abs(float(got.double() @ _unit(wb))) > 1e-3:
            fail(name, case + ": the dot product with b's direction", "0",
                 f"{float(got.double() @ _unit(wb)):.4f}",
                 "remove the component along b's least-squares direction")
    passed(name, f"{len(cases)} synthetic cases: the least-squares direction with an "
                 "intercept, orthogonal to the second attribute's, unit length")


# -- 4. the image change per step along a straight path ------------------------------------------

class _Decoder:
    """A small fixed decoder (N, d) -> (N, 1, s, s), refusing anything but a 2-D batch."""

    def __init__(self, d: int, side: int, seed: int, linear: bool = False):
        g = _gen(seed)
        self.M = torch.randn(d, side * side, generator=g) / math.sqrt(d)
        self.c = 0.3 * torch.randn(side * side, generator=g)
        self.side, self.linear, self.d = side, linear, d

    def __call__(self, z):
        z = torch.as_tensor(z)
        if z.dim() != 2 or z.shape[1] != self.d:
            raise ValueError(f"decode takes a batch of codes of shape (N, {self.d}); "
                             f"it got {tuple(z.shape)}")
        h = z.double() @ self.M.double() + self.c.double()
        x = h if self.linear else torch.sigmoid(2 * h)
        return x.reshape(len(z), 1, self.side, self.side).to(z.dtype)


def _steps_reference(decode, z0, z1, n):
    t = torch.linspace(0, 1, n, dtype=torch.float64).view(-1, 1, 1)
    path = (1 - t) * z0.double() + t * z1.double()                 # (n, B, d)
    x = decode(path.reshape(-1, z0.shape[1])).reshape(n, len(z0), -1).double()
    return x, (x[1:] - x[:-1]).norm(dim=-1)                        # (n - 1, B)


def check_lerp_steps(lerp_steps, seed: int = 0) -> None:
    """``lerp_steps(decode, z0, z1, n)``: n equally spaced points from each z0 to its z1
    (t = 0 ... 1), decoded, -> (n - 1, B) Euclidean distance between consecutive images."""
    name = "check_lerp_steps"
    require_callable(name, lerp_steps, "lerp_steps", n_args=4)
    scan_answer(name, lambda *a: lerp_steps(*a), BANS[name], "lerp_steps")
    cases = []
    for k, (B, d, side, n, linear) in enumerate(((1, 2, 2, 5, True), (3, 4, 3, 6, False),
                                                 (5, 8, 4, 9, False), (2, 3, 2, 2, False))):
        g = _gen(seed + 50 + k)
        z0, z1 = torch.randn(B, d, generator=g), 2 * torch.randn(B, d, generator=g)
        kind = "a linear" if linear else "a non-linear"
        cases.append((f"{B} path(s) in {d} dimensions, n = {n}, {kind} decoder to "
                      f"{side}x{side} images (seed {seed}, case {k})",
                      _Decoder(d, side, seed + k, linear), z0, z1, n))
    for case, decode, z0, z1, n in cases:
        got = call(name, lerp_steps, decode, z0.clone(), z1.clone(), n,
                   what="lerp_steps(decode, z0, z1, n)", bans=BANS[name])
        x, expected = _steps_reference(decode, z0, z1, n)
        got = as_tensor(name, got, f"lerp_steps(...) for {case}", shape=tuple(expected.shape),
                        dtype_float=True)
        diff = x[1:] - x[:-1]
        t_short = torch.arange(n, dtype=torch.float64).view(-1, 1, 1) / n
        p_short = (1 - t_short) * z0.double() + t_short * z1.double()
        xs = decode(p_short.reshape(-1, z0.shape[1])).reshape(n, len(z0), -1).double()
        hint = _diagnose(got, [
            (expected ** 2, "those are squared distances; take the square root (the Euclidean "
                            "norm of the difference)"),
            (diff.abs().sum(-1), "that is the sum of absolute differences; the exercise asks "
                                 "for the Euclidean distance"),
            (diff.pow(2).mean(-1).sqrt(), "you averaged over the pixels; sum the squares over "
                                          "all pixels, then take the square root"),
            ((xs[1:] - xs[:-1]).norm(dim=-1), "the path must end at z1: use n times from 0 to 1 "
                                              "inclusive"),
        ], "build the n points (1 - t) z0 + t z1 for t = 0, 1/(n-1), ..., 1, decode them all, "
           "and measure the Euclidean distance between each image and the next, per path")
        expect_close(name, case, got, expected, atol=1e-4, hint=hint, what="the steps")
    passed(name, f"{len(cases)} cases: linear and non-linear decoders, several paths, sizes and n")


__all__ = ["check_slerp", "check_spearman", "check_attribute_direction", "check_lerp_steps",
           "CheckFailure"]
