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

import torch
from torch import Tensor

from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_bool,
    check_choice,
    check_finite_float,
    check_fraction,
)

__all__ = [
    "DEFAULT_RELATIVE_CUTOFF",
    "POST_STEPS",
    "forgrad",
    "lowpass_mask",
    "resolve_sigma",
    "sigma_keeping_all",
]

#: sigma / size of the paper's optimum (sigma = 15 on 224 x 224 ImageNet).
DEFAULT_RELATIVE_CUTOFF = 15 / 224

#: The accepted values of ``post``.
POST_STEPS = ("abs", "relu", "none")

# Relative slack on the circle's boundary: frequencies exactly on the circle
# (e.g. (ky, kx) = (9, 12) for sigma = 15) must be kept even when sigma comes
# from a rounded ratio such as 15 / 224 * 224.
_BOUNDARY_RTOL = 1e-9


def resolve_sigma(
    height: int,
    width: int,
    sigma: float | None = None,
    relative_cutoff: float = DEFAULT_RELATIVE_CUTOFF,
) -> float:
    """The absolute cutoff for an ``height x width`` map, with its checks.

    ``sigma`` (cycles per ``min(height, width)`` pixels) wins when given;
    otherwise ``sigma = relative_cutoff * min(height, width)``. Raises
    ValueError for a non-positive or non-finite cutoff, or one larger than
    ``min(height, width)`` (the reference's bound, ``0 < sigma <= size``;
    every frequency is already kept from ``sigma = min(h, w) / sqrt(2)`` on
    for even square sizes).
    """
    size = min(height, width)
    if sigma is None:
        # sigma / image size, default 15/224
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
def _cached_mask(
    height: int, width: int, sigma: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    # Integer frequency indices (cycles per image): 0, 1, ..., -2, -1. Built
    # from fftfreq * size so odd sizes give a mask symmetric in k and -k.
    ky = torch.round(torch.fft.fftfreq(height, dtype=torch.float64) * height)
    kx = torch.round(torch.fft.rfftfreq(width, dtype=torch.float64) * width)
    # Circle in cycles per pixel: (ky/H)^2 + (kx/W)^2 <= (sigma/min(H, W))^2,
    # multiplied by (H W)^2 so the left side is an exact integer in float64.
    # For H == W it is exactly the reference's ky^2 + kx^2 <= sigma^2.
    lhs = (ky[:, None] * width) ** 2 + (kx[None, :] * height) ** 2
    rhs = (sigma * height * width / min(height, width)) ** 2
    mask = lhs <= rhs * (1 + _BOUNDARY_RTOL)
    return mask.to(device=device, dtype=dtype)


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
    relative_cutoff: float = DEFAULT_RELATIVE_CUTOFF,
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
            Default None: ``sigma = relative_cutoff * min(H, W)``.
        relative_cutoff: ``sigma / min(H, W)`` used when ``sigma`` is None;
            default 15/224 (~0.067 cycles per pixel), the paper's optimum
            ``sigma = 15`` for 224 x 224 ImageNet, i.e. periods longer than
            ~15 pixels are kept, whatever the map size.

            Default-sigma rule, ``sigma = 15/224 x min(H, W)``: the paper's
            ImageNet optimum, kept relative to the size because that is what
            transferred in our measurement on the pretrained CIFAR-10
            ResNet-20; it is not universal (too strong on the MNIST
            SmallCNN). The numbers are in docs/forgrad.md, "Results on real
            models", measured by ``scripts/forgrad_results.py``. On small
            images it fails the sanity checks (model randomisation or class
            sensitivity, docs/defaults_study.md). Choose sigma for your model
            with
            :func:`captum_crigrad.forgrad.select.select_sigma`.
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
            ``sigma > min(H, W)``, a ``relative_cutoff`` outside (0, 1], or an
            unknown ``post``.

    The zero frequency (the map's mean) is always kept, so before the post
    step the filtered map has the same mean as its input; a sigma that keeps
    every frequency returns ``|mean_c a|`` (``post="abs"``) unchanged. Masks
    are cached per (H, W, sigma, device, dtype); the cost is two FFTs.
    """
    check_choice(post, POST_STEPS, "post")
    check_bool(reduce_channels, "reduce_channels")
    _check_attributions(attributions)
    height, width = attributions.shape[-2:]
    radius = resolve_sigma(height, width, sigma, relative_cutoff)

    maps = attributions
    if reduce_channels and maps.dim() >= 4:
        maps = maps.mean(dim=-3, keepdim=True)
    # torch.fft has no half-precision kernels on every device: work in float32.
    work_dtype = maps.dtype if maps.dtype == torch.float64 else torch.float32
    maps = maps.to(work_dtype)
    if post == "abs":
        maps = maps.abs()

    mask = _cached_mask(height, width, radius, maps.device, work_dtype)
    # torch.fft's functions are untyped: say what they return
    spectrum: Tensor = torch.fft.rfft2(maps)
    filtered: Tensor = torch.fft.irfft2(spectrum * mask, s=(height, width))

    if post == "abs":
        filtered = filtered.abs()
    elif post == "relu":
        filtered = filtered.clamp_min(0)
    return filtered.to(attributions.dtype)
