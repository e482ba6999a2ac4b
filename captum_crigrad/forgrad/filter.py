"""FORGrad: low-pass filtering of attribution maps (pure tensor functions).

Muzellec, Andeol, Fel, VanRullen and Serre (2023), "Gradient strikes back:
how filtering out high frequencies improves explanations", arXiv 2307.09591.
The reference implementation is Xplique's ``forgrad(explanations, sigma=15)``
(TensorFlow, channel-last, square images only). This module is its PyTorch
counterpart for channel-first batches of any height and width; it uses no
numpy, runs on the attributions' device and is differentiable.

This is the bottom layer of FORGrad: it knows nothing about models or Captum.
The Captum classes live in :mod:`captum_crigrad.forgrad.attr`, the sigma
search in :mod:`captum_crigrad.forgrad.select`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_bool,
    check_choice,
    check_finite_float,
    check_fraction,
)

__all__ = [
    "DEFAULT_ENERGY",
    "DEFAULT_ENERGY_AFTER_CRIGRAD",
    "PAPER_RELATIVE_CUTOFF",
    "POST_STEPS",
    "cutoff_rule",
    "energy_sigma",
    "forgrad",
    "lowpass_mask",
    "resolve_sigma",
    "sigma_keeping_all",
]

#: sigma / size of the paper's optimum (sigma = 15 on 224 x 224 ImageNet).
#: Not the default: it fails the sanity tests of the defaults study
#: (measurements in docs/defaults_study.md).
PAPER_RELATIVE_CUTOFF = 15 / 224

#: The default cutoff rule: per map, the smallest low-pass disc holding this
#: fraction of the map's non-DC spectral energy (:func:`energy_sigma`). The
#: best rule that passes both sanity tests on every model of
#: docs/defaults_study.md, FORGrad on Saliency.
DEFAULT_ENERGY = 0.75

#: The default energy fraction when CriGrad shapes the gradients before
#: FORGrad (the study's best sane CriGrad+FORGrad).
DEFAULT_ENERGY_AFTER_CRIGRAD = 0.9

#: The cutoff rules: a fixed ``sigma``, ``relative_cutoff`` x size, or the
#: per-map ``energy`` rule.
CUTOFF_RULES = ("sigma", "relative_cutoff", "energy")

#: The accepted values of ``post``.
POST_STEPS = ("abs", "relu", "none")

# Relative slack on the circle's boundary: frequencies exactly on the circle
# (e.g. (ky, kx) = (9, 12) for sigma = 15) must be kept even when sigma comes
# from a rounded ratio such as 15 / 224 * 224.
_BOUNDARY_RTOL = 1e-9


def cutoff_rule(
    sigma: float | None = None,
    relative_cutoff: float | None = None,
    energy: float | None = None,
    *,
    default_energy: float = DEFAULT_ENERGY,
    names: dict[str, str] | None = None,
) -> tuple[str, float]:
    """Which cutoff rule the arguments choose, checked before any work.

    At most one of ``sigma`` (> 0, cycles per image), ``relative_cutoff``
    (in (0, 1], sigma / min(H, W)) and ``energy`` (in (0, 1), the per-map
    rule of :func:`energy_sigma`) may be given; none given means
    ``energy=default_energy``. Returns ``(name, value)``, ``name`` in
    :data:`CUTOFF_RULES`. Size checks (``sigma <= min(H, W)``) are
    :func:`resolve_sigma`'s. ``names`` maps a rule to the argument name the
    caller's user wrote (e.g. ``{"sigma": "--sigma", "energy": "--energy"}``
    on the command line), for the error messages.
    """
    named = {rule: rule for rule in CUTOFF_RULES} | (names or {})
    given = [
        named[name]
        for name, value in zip(
            CUTOFF_RULES, (sigma, relative_cutoff, energy), strict=True
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InvalidValueError(
            f"{given[1]}: cannot be combined with {given[0]}; give one FORGrad "
            "cutoff rule: sigma (cycles per image), relative_cutoff (sigma / "
            "size) or energy (per map), or none for the default energy rule"
        )
    if sigma is not None:
        return "sigma", check_finite_float(
            sigma,
            named["sigma"],
            minimum=0,
            strict=True,
            what="cutoff (e.g. 15 for 224x224)",
        )
    if relative_cutoff is not None:
        return "relative_cutoff", check_fraction(
            relative_cutoff, named["relative_cutoff"], include_zero=False
        )
    if energy is None:
        return "energy", check_energy(default_energy, "default_energy")
    return "energy", check_energy(energy, named["energy"])


def check_energy(energy: Any, argument: str = "energy") -> float:
    """``energy`` as a fraction in the open interval (0, 1)."""
    return check_fraction(energy, argument, include_zero=False, include_one=False)


def resolve_sigma(
    height: int,
    width: int,
    sigma: float | None = None,
    relative_cutoff: float | None = None,
) -> float:
    """The absolute fixed cutoff for an ``height x width`` map, with its checks.

    ``sigma`` (cycles per ``min(height, width)`` pixels) wins when given;
    otherwise ``sigma = relative_cutoff * min(height, width)`` (one of the
    two is required: the per-map energy rule has no single sigma, see
    :func:`energy_sigma`). Raises ValueError for a non-positive or
    non-finite cutoff, or one larger than ``min(height, width)`` (the
    reference's bound, ``0 < sigma <= size``; every frequency is already
    kept from ``sigma = min(h, w) / sqrt(2)`` on for even square sizes).
    """
    size = min(height, width)
    if sigma is None:
        if relative_cutoff is None:
            raise InvalidValueError(
                "sigma: a fixed cutoff needs sigma or relative_cutoff (the "
                "default energy rule picks sigma per map: energy_sigma)"
            )
        return (
            check_fraction(relative_cutoff, "relative_cutoff", include_zero=False)
            * size
        )
    sigma = check_finite_float(
        sigma, "sigma", minimum=0, strict=True, what="cutoff (e.g. 15 for 224x224)"
    )
    if sigma > size:
        raise InvalidValueError(
            f"sigma: {sigma!r} is larger than these {height}x{width} maps allow "
            f"(at most min(H, W) = {size}; every frequency is already kept from "
            f"sigma = {sigma_keeping_all(height, width):.1f} on)"
        )
    return float(sigma)


def sigma_keeping_all(height: int, width: int) -> float:
    """The smallest sigma whose mask keeps every frequency of an H x W map
    (``min(H, W) / sqrt(2)`` for even square sizes)."""
    fy, fx = (height // 2) / height, (width // 2) / width
    return min(height, width) * math.hypot(fy, fx)


@lru_cache(maxsize=64)
def _squared_radius(height: int, width: int) -> Tensor:
    """THE radius metric of every FORGrad mask, on the rfft2 half spectrum:
    ``(ky W)^2 + (kx H)^2`` as exact int64, i.e. the squared radius in
    cycles along the shorter side times ``(H W / min(H, W))^2``. A frequency
    is inside the disc of cutoff sigma when this is at most
    ``(sigma H W / min(H, W))^2``; for H == W it is the reference's
    ``ky^2 + kx^2 <= sigma^2`` (times W^2)."""
    # Integer frequency indices (cycles per image): 0, 1, ..., -2, -1. Built
    # from fftfreq * size so odd sizes give a mask symmetric in k and -k.
    ky = torch.round(torch.fft.fftfreq(height, dtype=torch.float64) * height)
    kx = torch.round(torch.fft.rfftfreq(width, dtype=torch.float64) * width)
    ky, kx = ky.long(), kx.long()
    return (ky[:, None] * width) ** 2 + (kx[None, :] * height) ** 2


def _radius_scale(height: int, width: int) -> float:
    """sigma = sqrt(squared radius) / this (see :func:`_squared_radius`)."""
    return height * width / min(height, width)


@lru_cache(maxsize=64)
def _cached_mask(
    height: int, width: int, sigma: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    # Circle in cycles per pixel: (ky/H)^2 + (kx/W)^2 <= (sigma/min(H, W))^2,
    # multiplied by (H W)^2 so both sides are (near) integers.
    lhs = _squared_radius(height, width).to(torch.float64)
    rhs = (sigma * _radius_scale(height, width)) ** 2
    mask = lhs <= rhs * (1 + _BOUNDARY_RTOL)
    return mask.to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def _energy_layout(height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For the energy rule: the half-spectrum frequencies in order of
    radius (``order``), the end position of each group of equal radius
    (``ends``), the groups' squared radii (``radii2``, increasing) and each
    frequency's weight (2 for the columns whose mirror image rfft2 leaves out,
    1 for the others, 0 for the zero frequency)."""
    r2 = _squared_radius(height, width)
    flat = r2.flatten()
    order = torch.argsort(flat, stable=True)
    ordered = flat[order]
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    ends = last.nonzero().flatten()
    weight = torch.ones(r2.shape, dtype=torch.float64)
    weight[:, 1 : (width - 1) // 2 + 1] = 2.0  # the mirrored half counts twice
    weight[0, 0] = 0.0  # the zero frequency (the map's mean) is not counted
    return order, ends, ordered[ends], weight.flatten()[order]


def _energy_dtype(device: torch.device) -> torch.dtype:
    # float64 where the device has it (MPS has no float64)
    return torch.float32 if device.type == "mps" else torch.float64


def _energy_radius2(maps: Tensor, fraction: float) -> Tensor:
    """Per map of ``maps`` (..., H, W): the squared radius (int64, metric of
    :func:`_squared_radius`) of the smallest disc holding ``fraction`` of
    the map's non-DC spectral energy. A map without non-DC energy (zero or
    constant) gets the largest radius: every frequency kept, nothing to
    filter."""
    height, width = maps.shape[-2:]
    order, ends, radii2, weight = _energy_layout(height, width)
    device = maps.device
    dtype = _energy_dtype(device)
    # the cutoff is chosen, not differentiated: no graph
    spectrum: Tensor = torch.fft.rfft2(maps.detach().to(dtype))
    power = spectrum.abs().square().flatten(-2)[..., order.to(device)]
    cumulative = (power * weight.to(device, dtype)).cumsum(-1)[..., ends.to(device)]
    total = cumulative[..., -1:]
    # below[g]: the disc up to group g holds less than the fraction; the
    # cumulative energy never decreases, so the first group not below is the
    # smallest disc holding it (no energy at all: nothing is reached, and the
    # clamp keeps every frequency)
    tiny = torch.finfo(dtype).tiny
    below = cumulative / total.clamp_min(tiny) < fraction
    index = below.sum(-1).clamp(max=radii2.numel() - 1)
    return radii2.to(device)[index]


def energy_sigma(maps: Tensor, fraction: float = DEFAULT_ENERGY) -> Tensor:
    """Per map, the cutoff of FORGrad's energy rule (the default).

    ``sigma`` = the radius of the smallest low-pass disc (FORGrad's mask,
    :func:`lowpass_mask`) that holds at least ``fraction`` of the map's
    spectral energy outside the zero frequency, ``sum |F(k)|^2`` over the
    full spectrum. Each (H, W) map of ``maps`` (..., H, W) gets its own
    sigma (a float64 tensor of shape ``maps.shape[:-2]``, on the maps'
    device): a map's sigma never depends on its batch neighbours. A map with
    no energy outside the zero frequency (all zeros, or constant) gets the
    sigma that keeps every frequency (:func:`sigma_keeping_all`). The
    energy is of the map as given: :func:`forgrad` passes the map it
    filters (``|mean_c a|`` with ``post="abs"``).

    Why this rule: in docs/defaults_study.md it is the best cutoff rule
    that passes both sanity tests on all three models (fraction 0.75 for
    FORGrad alone, 0.9 after CriGrad); it adapts to the image size and to
    the map's content, where a fixed fraction of the size does not.
    """
    fraction = check_energy(fraction, "fraction")
    if not isinstance(maps, Tensor) or maps.dim() < 2:
        raise InvalidValueError(
            "maps: expected a tensor of shape (..., H, W), got "
            f"{getattr(maps, 'shape', type(maps).__name__)}"
        )
    height, width = maps.shape[-2:]
    radius2 = _energy_radius2(maps, fraction)
    dtype = _energy_dtype(maps.device)
    return radius2.to(dtype).sqrt() / _radius_scale(height, width)


def lowpass_mask(
    height: int,
    width: int,
    sigma: float,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ideal circular low-pass mask on the real-FFT half spectrum.

    Returns a (height, width // 2 + 1) 0/1 tensor, laid out like
    ``torch.fft.rfft2`` output, that keeps the frequencies with
    ``(ky / H)^2 + (kx / W)^2 <= (sigma / min(H, W))^2`` (ky, kx integer
    frequency indices); for a square map this is ``ky^2 + kx^2 <= sigma^2``,
    the reference's mask. The zero frequency is always kept. Masks are cached
    per (height, width, sigma, device, dtype).
    """
    check_finite_float(sigma, "sigma", minimum=0, strict=True)
    return _cached_mask(
        int(height), int(width), float(sigma), torch.device(device), dtype
    )


def _check_attributions(attributions: Tensor) -> None:
    if not isinstance(attributions, Tensor):
        raise InvalidTypeError(
            "attributions: expected a torch.Tensor of shape (H, W), (B, H, W) or "
            f"(B, C, H, W), got {type(attributions).__name__}"
        )
    if attributions.dim() < 2:
        raise InvalidValueError(
            "attributions: expected at least 2 dimensions (H, W), (B, H, W) or "
            f"(B, C, H, W), got shape {tuple(attributions.shape)}"
        )
    if not attributions.is_floating_point():
        raise InvalidTypeError(
            "attributions: expected a real floating-point tensor, got "
            f"{attributions.dtype}"
        )
    if attributions.shape[-1] < 1 or attributions.shape[-2] < 1:
        raise InvalidValueError(
            f"attributions: empty spatial size {tuple(attributions.shape[-2:])}"
        )
    if not bool(torch.isfinite(attributions).all()):
        n_bad = int((~torch.isfinite(attributions)).sum())
        raise InvalidValueError(
            f"attributions: contain {n_bad} NaN or infinite value(s); FORGrad needs "
            "finite maps (check the attribution method's output)"
        )


def forgrad(
    attributions: Tensor,
    sigma: float | None = None,
    *,
    relative_cutoff: float | None = None,
    energy: float | None = None,
    post: str = "abs",
    reduce_channels: bool = True,
) -> Tensor:
    """Low-pass filter attribution maps (FORGrad, Muzellec et al. 2023).

    ``forgrad(a) = post( IRFFT2( M_sigma * RFFT2( pre( mean_c a ) ) ) )``, with
    ``M_sigma`` the ideal circular low-pass mask keeping the integer frequencies
    ``ky^2 + kx^2 <= sigma^2`` (see :func:`lowpass_mask` for non-square maps).
    With the defaults this reproduces Xplique's ``forgrad`` on even square
    maps: signed channel mean, absolute value, real 2-D FFT, mask, inverse
    FFT, absolute value. Unlike the reference, odd sizes use a mask that is
    symmetric in frequency (no one-pixel shift, no resizing), non-square maps
    are accepted, and the output shape does not depend on the size.

    Args:
        attributions: real floating tensor, channel-first, the last two
            dimensions are (H, W):

            * (H, W): one map;
            * (B, H, W): a batch of single-channel maps;
            * (B, C, H, W) (or more leading batch dimensions, (..., C, H, W)):
              a batch of C-channel maps, e.g. a Captum attribution of images.

            Any H and W (odd, even, non-square). Every map is filtered on its
            own: a map never depends on its batch neighbours.
        sigma: absolute cutoff, in cycles per ``min(H, W)`` pixels: frequencies
            up to ``sigma`` cycles per image are kept, i.e. periods longer than
            about ``min(H, W) / sigma`` pixels. ``0 < sigma <= min(H, W)``.
        relative_cutoff: ``sigma / min(H, W)``, in (0, 1]. The paper's
            ImageNet optimum is :data:`PAPER_RELATIVE_CUTOFF` = 15/224
            (sigma = 15 on 224 x 224), the default before the defaults
            study; it **fails the sanity tests** of that study
            (measurements in docs/defaults_study.md).
        energy: the per-map rule, a fraction in (0, 1): each map gets the
            smallest cutoff whose disc holds this fraction of its spectral
            energy outside the zero frequency (:func:`energy_sigma`,
            measured on the map the filter acts on: ``|mean_c a|`` with
            ``post="abs"``).

            At most one of ``sigma``, ``relative_cutoff``, ``energy``; none
            given: ``energy=DEFAULT_ENERGY`` (0.75), the best rule that
            passes both sanity tests on the three models of
            docs/defaults_study.md (0.9 is the study's choice after CriGrad,
            which the FORGrad classes and the registry pick themselves). It
            keeps most frequencies on those 28 x 28 and 32 x 32 images and
            so gives little faithfulness gain there; the trade-off is in
            the README. For a model of your own,
            :func:`captum_crigrad.forgrad.select.select_sigma` measures a
            fixed sigma (then check it with the sanity tests).
        post: pointwise step on the filtered map.

            * ``"abs"`` (default, the reference): the map is made non-negative
              (``|mean_c a|``) before the FFT, and ``|.|`` removes the ringing
              of the ideal filter afterwards. Output >= 0.
            * ``"relu"``: the signed map is filtered and only positive
              evidence kept, ``relu(lowpass(mean_c a))``.
            * ``"none"``: the signed map is filtered, ``lowpass(mean_c a)``;
              a linear operator (it commutes with sums and averages).
        reduce_channels: if True (default) the channel dimension of a
            (..., C, H, W) input is reduced by its signed mean (kept, size 1);
            if False each channel is filtered on its own.

    Returns:
        A tensor of the input's dtype and device with the same number of
        dimensions as ``attributions``: (H, W) -> (H, W); (B, H, W) ->
        (B, H, W); (..., C, H, W) -> (..., 1, H, W) when ``reduce_channels``
        else (..., C, H, W). The (B, 1, H, W) shape broadcasts against the
        (B, C, H, W) inputs, as Captum's visualisation expects.

    Raises:
        TypeError: non-tensor, integer or complex ``attributions``.
        ValueError: fewer than 2 dimensions, NaN/inf values, ``sigma <= 0``,
            ``sigma > min(H, W)``, a ``relative_cutoff`` outside (0, 1], an
            ``energy`` outside (0, 1), more than one cutoff rule, or an
            unknown ``post``.

    The zero frequency (the map's mean) is always kept, so before the post
    step the filtered map has the same mean as its input; a sigma that keeps
    every frequency returns ``|mean_c a|`` (``post="abs"``) unchanged. Fixed
    masks are cached per (H, W, sigma, device, dtype); the cost is two FFTs
    (the energy rule adds a cumulative sum over each map's spectrum).
    """
    check_choice(post, POST_STEPS, "post")
    check_bool(reduce_channels, "reduce_channels")
    rule, value = cutoff_rule(sigma, relative_cutoff, energy)
    _check_attributions(attributions)
    height, width = attributions.shape[-2:]
    if rule != "energy":
        radius = (
            resolve_sigma(height, width, sigma=value)
            if rule == "sigma"
            else resolve_sigma(height, width, relative_cutoff=value)
        )

    maps = attributions
    if reduce_channels and maps.dim() >= 4:
        maps = maps.mean(dim=-3, keepdim=True)
    # torch.fft has no half-precision kernels on every device: work in float32.
    work_dtype = maps.dtype if maps.dtype == torch.float64 else torch.float32
    maps = maps.to(work_dtype)
    if post == "abs":
        maps = maps.abs()

    if rule == "energy":
        # per map: the disc holding `value` of its non-DC energy, compared in
        # the exact integer metric of the fixed masks
        radius2 = _energy_radius2(maps, value)[..., None, None]
        mask = (_squared_radius(height, width).to(maps.device) <= radius2).to(
            work_dtype
        )
    else:
        mask = _cached_mask(height, width, radius, maps.device, work_dtype)
    # torch.fft's functions are untyped: say what they return
    spectrum: Tensor = torch.fft.rfft2(maps)
    filtered: Tensor = torch.fft.irfft2(spectrum * mask, s=(height, width))

    if post == "abs":
        filtered = filtered.abs()
    elif post == "relu":
        filtered = filtered.clamp_min(0)
    return filtered.to(attributions.dtype)
