"""Pure tensor functions that fill removed pixels: Gaussian blur and the noisy
linear imputation of ROAD.

Everything here works on (B, C, H, W) batches on any device and has no
knowledge of models or attributions; the perturbation engine sits on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.maps import upsample
from captum_crigrad.core.validation import InvalidValueError, check_finite_float

# ROAD (Rong et al. 2022): a removed pixel is the weighted mean of its 8
# neighbours, 1/6 for the 4 edge neighbours and 1/12 for the 4 diagonal ones
# (see _neighbour_sum).

# Elements (images x channels x pixels) solved together, see linear_imputation.
_CHUNK_ELEMENTS = 1 << 18


def gaussian_blur(images: Tensor, sigma: float = 5.0, kernel_size: int = 11) -> Tensor:
    """Separable Gaussian blur of an (B, C, H, W) batch, reflect padding.

    The defaults are RISE's insertion substrate (Petsiuk et al. 2018): sigma
    5 px truncated to an 11x11 kernel. (RISE pads with zeros, which darkens
    the border; reflect padding does not.) ``sigma=0`` returns a copy.
    """
    if sigma < 0 or kernel_size < 1 or kernel_size % 2 == 0:
        raise InvalidValueError(
            "sigma, kernel_size: expected sigma >= 0 and an odd kernel_size >= 1, "
            f"got {sigma} and {kernel_size}"
        )
    if sigma == 0 or kernel_size == 1:
        return images.clone()
    b, c, h, w = images.shape
    half = kernel_size // 2
    coords = torch.arange(kernel_size, dtype=images.dtype, device=images.device) - half
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = images.reshape(b * c, 1, h, w)
    # reflect padding needs pad < size; fall back to replicate for tiny images
    mode = "reflect" if half < min(h, w) else "replicate"
    x = F.pad(x, (half, half, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, half, half), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def _box121(u: Tensor) -> Tensor:
    """``[1 2 1]^T [1 2 1]`` 3x3 sum of every (B, C) plane of u, zero outside
    the image: separable shifted adds, 5 full-size passes (several times
    faster than a 3x3 convolution on CPU)."""
    p = F.pad(u, (1, 1, 1, 1))
    rows = torch.add(p[..., :-2], p[..., 2:]).add_(
        p[..., 1:-1], alpha=2.0
    )  # (.., H+2, W)
    return torch.add(rows[..., :-2, :], rows[..., 2:, :]).add_(
        rows[..., 1:-1, :], alpha=2.0
    )


def _neighbour_sum(u: Tensor) -> Tensor:
    """sum_j w_ij u_j over the 8 neighbours (1/6 edge, 1/12 diagonal), zero
    outside the image, for every (B, C) plane of u: the ``[1 2 1]^T [1 2 1]
    / 12`` stencil minus its centre."""
    return _box121(u).sub_(u, alpha=4.0).div_(12.0)


class _Level:
    """One grid of the multigrid hierarchy: unknown mask and in-image weight sums.

    With ``S = _box121`` and ``d`` the in-image weight sum, ``(D - W) u =
    (d + 1/3) u - S(u) / 12``; the stencil is applied in that form (fewer
    full-size passes than through _neighbour_sum).
    """

    def __init__(self, unknown: Tensor) -> None:
        h, w = unknown.shape[-2:]
        ones = torch.ones(1, 1, h, w, dtype=unknown.dtype, device=unknown.device)
        self.unknown = unknown
        self.diag = _neighbour_sum(ones)
        self.centre = self.diag + 1.0 / 3.0  # d + 4/12
        self.centre_unknown = self.centre * unknown
        self.minus_unknown_12 = unknown * (-1.0 / 12.0)
        # Jacobi, omega = 1: D^-1 (D - W) of ROAD's stencil spans [2/3, 4/3] on
        # the high frequencies, so omega = 1 smooths best (factor 1/3; 0.47
        # at omega = 0.8) and 2D - (D - W) = D + W stays positive definite
        # (diagonally dominant), so the V-cycle stays an SPD preconditioner.
        # Measured effect: docs/road.md (benchmarks/bench_road.py).
        self.step = unknown / self.diag
        # a sweep u + step * (rhs - (D - W) u) as keep * u + step * rhs + step_12 * S(u)
        self.keep = 1 - self.step * self.centre
        self.step_12 = self.step / 12.0
        self.direct: _DenseSolve | None = None  # set on the coarsest level

    def apply(self, u: Tensor) -> Tensor:
        """(D - W) u restricted to the unknowns (u is zero on known pixels)."""
        return _box121(u).mul_(self.minus_unknown_12).addcmul_(self.centre_unknown, u)

    def residual(self, u: Tensor, rhs: Tensor) -> Tensor:
        """rhs - (D - W) u on the unknowns, garbage on known cells: only for
        the restriction, whose coarse mask drops every block with a known cell."""
        return (
            _box121(u).mul_(1.0 / 12.0).add_(rhs).addcmul_(self.centre, u, value=-1.0)
        )

    def smooth(self, u: Tensor, step_rhs: Tensor, sweeps: int) -> Tensor:
        """``sweeps`` Jacobi sweeps from u, ``step_rhs = step * rhs``
        (step is 0 on known cells, which stay 0). Returns a new tensor when
        sweeps > 0 (u and step_rhs are not modified)."""
        for _ in range(sweeps):
            u = _box121(u).mul_(self.step_12).add_(step_rhs).addcmul_(self.keep, u)
        return u


# A coarse level with at most this many unknown cells (all images of a chunk
# together) is solved exactly by a dense Cholesky factorisation instead of
# being coarsened further (see _DenseSolve). The factor's cost against the
# number of unknowns: docs/road.md (benchmarks/bench_road.py).
_DIRECT_MAX = 256

# ROAD's 8 neighbour offsets and weights
_OFFSETS = [
    (dy, dx, 1 / 12 if dy and dx else 1 / 6)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if dy or dx
]


class _DenseSolve:
    """Exact solve of a (small) level's system ``(D - W) u = r`` on its
    unknown cells by a dense Cholesky factor: the bottom of the V-cycle.

    Replaces the levels below it (on a 224x224 image the grids of 28x28 and
    smaller cost more per V-cycle in per-operation overhead than the
    factorisation of a few hundred unknowns; measured in docs/road.md). The
    images of a chunk give one block-diagonal matrix. Only an image with no
    kept pixel at all has a singular (Neumann) block, and its right-hand
    sides are exactly 0; ``ok`` is False when the factorisation fails
    numerically, and the caller then keeps coarsening and smoothing instead.
    """

    def __init__(self, level: _Level) -> None:
        unknown = level.unknown[:, 0] > 0  # (B, H, W)
        b, h, w = unknown.shape
        flat = unknown.flatten()
        self.index = flat.nonzero().squeeze(1)
        n = self.index.numel()
        numbering = torch.full(
            (b, h + 2, w + 2), -1, dtype=torch.long, device=unknown.device
        )
        numbering[:, 1:-1, 1:-1][unknown] = torch.arange(n, device=unknown.device)
        rows = torch.arange(n, device=unknown.device)
        dtype = level.unknown.dtype
        matrix = torch.zeros(n, n, dtype=torch.float64, device=unknown.device)
        matrix[rows, rows] = level.diag.expand(b, 1, h, w)[:, 0][unknown].double()
        for dy, dx, weight in _OFFSETS:
            neighbour = numbering[:, 1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx][unknown]
            inside = neighbour >= 0
            matrix[rows[inside], neighbour[inside]] = -weight
        factor, info = torch.linalg.cholesky_ex(matrix)
        self.ok = bool(info == 0)
        self.factor = factor.to(dtype)
        self.shape = (b, h, w)

    def __call__(self, rhs: Tensor) -> Tensor:
        b, h, w = self.shape
        c = rhs.shape[1]
        r = rhs.permute(0, 2, 3, 1).reshape(b * h * w, c).index_select(0, self.index)
        out = rhs.new_zeros(b * h * w, c)
        out.index_copy_(0, self.index, torch.cholesky_solve(r, self.factor))
        return out.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def _coarsen(unknown: Tensor) -> Tensor:
    """A coarse cell is unknown when all its (up to 4) fine cells are."""
    return 1 - F.max_pool2d(1 - unknown, 2, ceil_mode=True)


def _restrict(r: Tensor) -> Tensor:
    """Sum over 2x2 blocks (the transpose of nearest-neighbour prolongation),
    as strided slices, several times faster than ``avg_pool2d`` on CPU
    (docs/road.md)."""
    h, w = r.shape[-2:]
    if h % 2 or w % 2:
        r = F.pad(r, (0, w % 2, 0, h % 2))
    return (
        (r[:, :, 0::2, 0::2] + r[:, :, 1::2, 0::2])
        .add_(r[:, :, 0::2, 1::2])
        .add_(r[:, :, 1::2, 1::2])
    )


def _prolong(e: Tensor, fine_shape: Sequence[int]) -> Tensor:
    h, w = fine_shape
    return F.interpolate(e, scale_factor=2, mode="nearest")[..., :h, :w]


def _v_cycle(
    levels: Sequence[_Level], rhs: Tensor, depth: int = 0, sweeps: int = 2
) -> Tensor:
    """Symmetric V-cycle (zero start, Jacobi, sum-restriction /
    nearest prolongation, rediscretised coarse stencil, exact solve at the
    bottom when the coarsest level has a dense factor): an SPD
    preconditioner for conjugate gradients."""
    lvl = levels[depth]
    if depth == len(levels) - 1 and lvl.direct is not None:
        return lvl.direct(rhs)
    step_rhs = lvl.step * rhs  # also the first sweep from u = 0
    if depth == len(levels) - 1:
        return lvl.smooth(step_rhs, step_rhs, 4 * sweeps - 1)
    u = lvl.smooth(step_rhs, step_rhs, sweeps - 1)
    if u is step_rhs:
        u = u.clone()
    coarse = levels[depth + 1]
    r_c = coarse.unknown * _restrict(lvl.residual(u, rhs))
    e_c = _v_cycle(levels, r_c, depth + 1, sweeps)
    u = u.addcmul_(lvl.unknown, _prolong(e_c, rhs.shape[-2:]))
    # post-smoothing: same sweeps on the transposed side keeps the cycle symmetric
    return lvl.smooth(u, step_rhs, sweeps)


def _initial_guess(images: Tensor, unknown: Tensor, sweeps: int = 1) -> Tensor:
    """A cheap approximation of the imputation, the start of the CG solve.

    Kept pixels are averaged down a pyramid (2x2 block sums of the kept
    values and of the kept counts: a coarse cell is kept when any of its
    fine cells is, and holds their mean);
    going back up, unknown cells take the bilinear upsampling of the coarser
    level and, on the coarse levels only (they are cheap), ``sweeps`` Jacobi
    sweeps of the imputation equation. Unknown cells with no kept pixel in
    their image get 0, the solve's answer for them.
    """
    known = 1 - unknown
    pyramid = [(images * known, known)]
    while min(pyramid[-1][1].shape[-2:]) > 4:
        total, weight = pyramid[-1]
        # block sums (zero padded): value = total / weight is the mean of the
        # kept pixels
        pyramid.append((_restrict(total), _restrict(weight)))
    tiny = torch.finfo(images.dtype).tiny
    guess: Tensor | None = None
    for depth, (total, weight) in enumerate(reversed(pyramid)):
        if guess is not None and depth == len(pyramid) - 1:
            upsampled = upsample(guess, weight.shape[-2:])
            # full resolution: only the unknown pixels are used
            return upsampled.mul_(unknown)
        kept = weight > 0
        value = total / weight.clamp_min(tiny)
        if guess is None:
            mean = total.sum((2, 3), keepdim=True) / weight.sum(
                (2, 3), keepdim=True
            ).clamp_min(tiny)
            guess = torch.where(kept, value, mean)
        else:
            upsampled = upsample(guess, weight.shape[-2:])
            guess = torch.where(kept, value, upsampled)
        if depth < len(pyramid) - 1:
            ones = torch.ones(
                (1, 1) + tuple(weight.shape[-2:]),
                dtype=images.dtype,
                device=images.device,
            )
            diag = _neighbour_sum(ones)
            for _ in range(sweeps):
                guess = torch.where(kept, guess, _neighbour_sum(guess) / diag)
    assert guess is not None  # set on the first level; the pyramid has one
    return guess * unknown


def linear_imputation(
    images: Tensor,
    removed: Tensor,
    *,
    tol: float = 1e-4,
    max_iter: int = 200,
) -> Tensor:
    """Fill ``removed`` pixels by ROAD's linear imputation, without noise.

    Each removed pixel i satisfies ``x_i = sum_j w_ij x_j / sum_j w_ij`` over
    its in-image 8 neighbours j (w = 1/6 edge, 1/12 diagonal), all removed
    pixels of an image jointly (Rong et al. 2022, "A Consistent and Efficient
    Evaluation Strategy for Attribution Methods"). The system (one per image
    and channel) is symmetric positive definite on every removed region that
    touches a kept pixel. The batch is solved in cache-sized chunks of
    images (all channels together) by conjugate gradients preconditioned
    with a geometric multigrid V-cycle (Jacobi smoothing built from shifted
    adds, an exact dense Cholesky solve on the first coarse grid with at
    most 256 unknown cells), so it runs on the images' device, started from
    a pyramid fill of the kept pixels; it needs 5 to 8 iterations on 224x224
    images whatever the size of the removed regions. A removed region with
    no kept pixel around it (e.g. everything removed) is filled with 0.

    Args:
        images: (B, C, H, W) float.
        removed: (B, H, W) or (B, 1, H, W) bool, True where a pixel is replaced
            (all channels of a pixel together).
        tol: stop when every system's residual norm is below ``tol`` times
            the norm of its right-hand side.
        max_iter: iteration cap.

    Returns:
        (B, C, H, W): ``images`` with removed pixels imputed.
    """
    if images.dim() != 4:
        raise InvalidValueError(
            f"images: expected (B, C, H, W), got shape {tuple(images.shape)}"
        )
    b, c, h, w = images.shape
    if removed.dim() == 4:
        removed = removed[:, 0]
    if removed.shape != (b, h, w):
        raise InvalidValueError(
            f"removed: expected shape ({b}, {h}, {w}) or ({b}, 1, {h}, {w}), "
            f"got {tuple(removed.shape)}"
        )
    # Solved in chunks of images whose working set stays in cache (the chunk
    # size was measured: docs/road.md); a chunk also stops as soon as its own
    # systems have converged.
    per_chunk = max(1, _CHUNK_ELEMENTS // (c * h * w))
    if b <= per_chunk:
        return _solve(images, removed, tol, max_iter)
    return torch.cat(
        [
            _solve(images[s : s + per_chunk], removed[s : s + per_chunk], tol, max_iter)
            for s in range(0, b, per_chunk)
        ]
    )


def _solve(images: Tensor, removed: Tensor, tol: float, max_iter: int) -> Tensor:
    """linear_imputation on checked (B, C, H, W) images and (B, H, W) masks."""
    dtype = images.dtype
    tiny = torch.finfo(dtype).tiny
    # The mask is shared by the C channels of an image: the hierarchy is
    # built on (B, 1, H, W) masks and the C right-hand sides are solved as
    # one (B, C, H, W) batch.
    unknown = removed.to(dtype).unsqueeze(1)
    levels = []
    lvl_unknown = unknown
    n_unknown = int(unknown.sum())
    while True:
        levels.append(_Level(lvl_unknown))
        if len(levels) > 1 and n_unknown <= _DIRECT_MAX:
            direct = _DenseSolve(levels[-1])
            if direct.ok:
                levels[-1].direct = direct
                break
        hh, ww = lvl_unknown.shape[-2:]
        if min(hh, ww) <= 4 or len(levels) >= 12:
            break
        lvl_unknown = _coarsen(lvl_unknown)
        n_unknown = int(lvl_unknown.sum())
        if n_unknown == 0:
            break
    fine = levels[0]
    rhs = unknown * _neighbour_sum(images * (1 - unknown))
    rhs_norm = rhs.flatten(2).norm(dim=2).clamp_min(tiny)  # (B, C)

    def dot(u: Tensor, v: Tensor) -> Tensor:
        return (u * v).sum(dim=(2, 3), keepdim=True)

    def converged(r: Tensor) -> bool:
        return bool((r.flatten(2).norm(dim=2) <= tol * rhs_norm).all())

    sol = _initial_guess(images, unknown)
    res = rhs - fine.apply(sol)
    if max_iter < 1 or converged(res):
        return torch.where(unknown.bool(), sol, images)
    z = _v_cycle(levels, res)
    p = z
    rz = dot(res, z)
    for it in range(max_iter):
        ap = fine.apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(tiny), 0)
        sol = sol.addcmul_(alpha, p)
        res = res.addcmul_(alpha, ap, value=-1.0)
        # tested before the next V-cycle, which a converged solve does not need
        if it == max_iter - 1 or converged(res):
            break
        z = _v_cycle(levels, res)
        rz_new = dot(res, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(tiny), 0)
        p = z.addcmul_(beta, p)
        rz = rz_new
    return torch.where(unknown.bool(), sol, images)


def noisy_linear_imputation(
    images: Tensor,
    removed: Tensor,
    *,
    noise_std: float = 0.01,
    generator: torch.Generator | None = None,
    tol: float = 1e-4,
    max_iter: int = 200,
) -> Tensor:
    """ROAD's noisy linear imputation: :func:`linear_imputation` plus
    N(0, ``noise_std``^2) noise on the imputed pixels only (ROAD's reference
    code adds ``0.01 * randn``). Noise is drawn from ``generator`` (on its own
    device, then moved to the images'); shapes as in :func:`linear_imputation`.
    """
    check_finite_float(noise_std, "noise_std", minimum=0)
    out = linear_imputation(images, removed, tol=tol, max_iter=max_iter)
    if noise_std > 0:
        gen_device = generator.device if generator is not None else out.device
        noise = torch.randn(
            out.shape, generator=generator, dtype=out.dtype, device=gen_device
        ).to(out.device)
        mask = removed if removed.dim() == 4 else removed.unsqueeze(1)
        out = torch.where(mask.to(torch.bool), out + noise_std * noise, out)
    return out
