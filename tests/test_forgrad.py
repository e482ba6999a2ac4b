"""Tests of the pure FORGrad filter (captum_crigrad.forgrad.filter)."""

import math

import numpy as np
import pytest
import torch

from captum_crigrad.forgrad.filter import (
    PAPER_RELATIVE_CUTOFF,
    forgrad,
    lowpass_mask,
    resolve_sigma,
    sigma_keeping_all,
)


def xplique_steps_numpy(explanations_nhwc: np.ndarray, sigma: float) -> np.ndarray:
    """Independent NumPy version of the reference's steps (channel-last, square).

    1. signed mean over channels; 2. abs; 3. rfft2; 4. ideal circular mask,
    built as a centred disc of radius sigma and un-centred with ifftshift-style
    rolling; 5. irfft2; 6. abs. Returns (N, H, W, 1).
    """
    maps = np.abs(explanations_nhwc.astype(np.float64).mean(axis=-1))
    size = maps.shape[1]
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    centre = size // 2
    disc = (rows - centre) ** 2 + (cols - centre) ** 2 <= sigma**2
    # Move the centre (size//2, size//2) to (0, 0), as fftshift does for even sizes.
    disc = np.roll(disc, shift=(-centre, -centre), axis=(0, 1))
    half = disc[:, : size // 2 + 1].astype(np.float64)
    spectra = np.fft.rfft2(maps, axes=(1, 2))
    out = np.fft.irfft2(spectra * half[None], s=(size, size), axes=(1, 2))
    return np.abs(out)[..., None]


def _rand(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


@pytest.mark.parametrize(
    "size,sigma", [(32, 2.0), (32, 5), (32, 15), (224, 15), (64, 7.5)]
)
def test_matches_independent_numpy_reference_on_even_square(size, sigma):
    x = _rand(3, 3, size, size, seed=size)
    ours = forgrad(x, sigma)
    ref = xplique_steps_numpy(x.permute(0, 2, 3, 1).numpy(), sigma)
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2).float()
    assert ours.shape == (3, 1, size, size)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_paper_cutoff_is_15_on_224_and_relative_elsewhere():
    paper = dict(relative_cutoff=PAPER_RELATIVE_CUTOFF)
    assert resolve_sigma(224, 224, **paper) == pytest.approx(15)
    assert resolve_sigma(32, 32, **paper) == pytest.approx(15 / 224 * 32)
    assert resolve_sigma(32, 48, **paper) == pytest.approx(15 / 224 * 32)
    with pytest.raises(ValueError, match="energy_sigma"):
        resolve_sigma(32, 32)  # the default rule has no single sigma
    x = _rand(2, 3, 224, 224, seed=3)
    # (9, 12) lies exactly on the circle of radius 15: kept by both forms.
    torch.testing.assert_close(forgrad(x, **paper), forgrad(x, 15), atol=0, rtol=0)
    assert lowpass_mask(224, 224, 15 / 224 * 224)[9, 12] == 1


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 3, 31, 31), (1, 3, 17, 40)])
def test_sigma_keeping_every_frequency_returns_abs_channel_mean(shape):
    x = _rand(*shape, seed=1)
    h, w = shape[-2:]
    expected = x.mean(dim=1, keepdim=True).abs()
    for sigma in (sigma_keeping_all(h, w), float(min(h, w))):
        assert lowpass_mask(h, w, sigma).all()
        torch.testing.assert_close(forgrad(x, sigma), expected, atol=1e-5, rtol=0)
    # just below the full-band sigma, something is removed
    assert not lowpass_mask(h, w, sigma_keeping_all(h, w) * 0.99).all()
    out = forgrad(x, sigma_keeping_all(h, w) * 0.99)
    assert (out - expected).abs().max() > 1e-4


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 3, 27, 40)])
@pytest.mark.parametrize("sigma", [0.5, 3.0, 9.0])
def test_zero_frequency_is_preserved_before_post_step(shape, sigma):
    x = _rand(*shape, seed=2) + 0.3
    signed = forgrad(x, sigma, post="none")
    torch.testing.assert_close(
        signed.mean(dim=(-2, -1)), x.mean(dim=(1, 2, 3))[:, None], atol=1e-5, rtol=0
    )
    # per channel as well
    per_channel = forgrad(x, sigma, post="none", reduce_channels=False)
    torch.testing.assert_close(
        per_channel.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-5, rtol=0
    )
    # the abs pipeline filters |mean_c x|: its mean is kept too (output >= 0,
    # so the final abs can only raise it where ringing went negative).
    magnitude = x.mean(dim=1, keepdim=True).abs()
    out = forgrad(x, sigma)
    assert (out >= 0).all()
    assert (out.mean(dim=(-2, -1)) >= magnitude.mean(dim=(-2, -1)) - 1e-5).all()


def test_cutoff_below_one_keeps_only_the_mean():
    x = _rand(2, 3, 20, 30, seed=4)
    out = forgrad(x, 0.5)
    mean_abs = x.mean(dim=1, keepdim=True).abs().mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(out, mean_abs.expand_as(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w", [(32, 32), (33, 29)])
def test_high_frequency_removed_low_frequency_kept(h, w):
    yy = torch.arange(h, dtype=torch.float64)[:, None]
    xx = torch.arange(w, dtype=torch.float64)[None, :]
    low = torch.cos(2 * math.pi * (2 * yy / h + 1 * xx / w))  # |k| = sqrt(5)
    high = torch.cos(2 * math.pi * (10 * yy / h)) * torch.cos(2 * math.pi * 9 * xx / w)
    sigma = 4.0
    kept = forgrad(low[None], sigma, post="none")[0]
    removed = forgrad(high[None], sigma, post="none")[0]
    torch.testing.assert_close(kept, low, atol=1e-9, rtol=0)
    assert removed.abs().max() < 1e-9
    # mixture: only the low-frequency part survives
    mixed = forgrad((low + high)[None], sigma, post="none")[0]
    torch.testing.assert_close(mixed, low, atol=1e-9, rtol=0)
    # the default abs pipeline on a positive low-frequency map leaves it alone
    positive = 2.0 + low
    torch.testing.assert_close(forgrad(positive, sigma), positive, atol=1e-9, rtol=0)


@pytest.mark.parametrize("h,w", [(31, 31), (5, 7), (33, 32), (24, 40)])
@pytest.mark.parametrize("post", ["abs", "relu", "none"])
def test_odd_and_non_square_sizes_are_symmetric(h, w, post):
    x = _rand(2, 3, h, w, seed=h * w, dtype=torch.float64)
    sigma = min(h, w) / 5
    out = forgrad(x, sigma, post=post)
    assert out.shape == (2, 1, h, w)
    # transposed input -> transposed output
    out_t = forgrad(x.transpose(-1, -2), sigma, post=post)
    torch.testing.assert_close(out_t, out.transpose(-1, -2), atol=1e-10, rtol=0)
    # a mirrored input gives the mirrored output: needs a mask symmetric in
    # k <-> -k (the reference's odd-size mask is shifted and fails this).
    for dims in ((-1,), (-2,), (-2, -1)):
        torch.testing.assert_close(
            forgrad(x.flip(dims), sigma, post=post), out.flip(dims), atol=1e-10, rtol=0
        )


@pytest.mark.parametrize("h,w", [(7, 7), (9, 6), (8, 8)])
def test_mask_symmetric_in_frequency(h, w):
    for sigma in (1.0, 2.0, 2.9, 3.5):
        half = lowpass_mask(h, w, sigma, dtype=torch.float64)
        ky = (torch.fft.fftfreq(h) * h).round()
        # row of ky and row of -ky are identical
        for i in range(h):
            j = int((-ky[i]) % h)
            assert torch.equal(half[i], half[j])
        assert half[0, 0] == 1


def test_map_does_not_depend_on_batch_neighbours():
    x = _rand(5, 3, 24, 24, seed=7)
    batched = forgrad(x, 4)
    for i in range(5):
        torch.testing.assert_close(
            batched[i : i + 1], forgrad(x[i : i + 1], 4), atol=1e-6, rtol=0
        )
    # changing a neighbour changes nothing for the others
    y = x.clone()
    y[0] = 100 * _rand(3, 24, 24, seed=8)
    torch.testing.assert_close(forgrad(y, 4)[1:], batched[1:], atol=1e-6, rtol=0)


def test_output_shapes_and_dtypes():
    x = _rand(2, 4, 3, 10, 12, seed=9)
    assert forgrad(x, 3).shape == (2, 4, 1, 10, 12)
    assert forgrad(x, 3, reduce_channels=False).shape == x.shape
    assert forgrad(x[0, 0], 3).shape == (3, 10, 12)  # (B, H, W): no channel axis
    assert forgrad(x[0, 0, 0], 3).shape == (10, 12)
    assert forgrad(x.double(), 3).dtype == torch.float64
    half = forgrad(x.half(), 3)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), forgrad(x, 3), atol=2e-2, rtol=1e-2)
    # (B, 1, H, W) broadcasts against the (B, C, H, W) images
    assert (forgrad(x[0], 3) * x[0]).shape == x[0].shape


def test_reduce_channels_off_filters_each_channel_alone():
    x = _rand(2, 3, 16, 16, seed=10)
    per_channel = forgrad(x, 3, reduce_channels=False)
    for c in range(3):
        torch.testing.assert_close(
            per_channel[:, c], forgrad(x[:, c], 3), atol=1e-6, rtol=0
        )


def test_post_steps():
    x = _rand(3, 3, 16, 16, seed=11)
    signed = forgrad(x, 3, post="none")
    torch.testing.assert_close(forgrad(x, 3, post="relu"), signed.clamp_min(0))
    assert (signed < 0).any()
    # none is linear
    y = _rand(3, 3, 16, 16, seed=12)
    torch.testing.assert_close(
        forgrad(2 * x - y, 3, post="none"),
        2 * signed - forgrad(y, 3, post="none"),
        atol=1e-5,
        rtol=0,
    )


def test_differentiable():
    x = _rand(2, 2, 6, 5, seed=13, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: forgrad(t, 2.0, post="none"), (x,))
    # away from zero the abs pipeline is smooth too
    z = (_rand(1, 2, 6, 6, seed=14, dtype=torch.float64).abs() + 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: forgrad(t, 2.0), (z,))


def test_no_numpy_round_trip_and_autograd_graph():
    x = _rand(2, 3, 8, 8, seed=15).requires_grad_()
    out = forgrad(x, 2)
    assert out.requires_grad and out.grad_fn is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = _rand(2, 3, 33, 20, seed=16)
    torch.testing.assert_close(
        forgrad(x.cuda(), 4).cpu(), forgrad(x, 4), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        (dict(sigma=0), ValueError, "sigma"),
        (dict(sigma=-3), ValueError, "sigma"),
        (dict(sigma=float("nan")), ValueError, "sigma"),
        (dict(sigma=17), ValueError, "larger than"),
        (dict(sigma="15"), TypeError, "sigma"),
        (dict(relative_cutoff=0), ValueError, "relative_cutoff"),
        (dict(relative_cutoff=1.5), ValueError, "relative_cutoff"),
        (dict(energy=1.0), ValueError, "energy"),
        (dict(energy=0), ValueError, "energy"),
        (dict(energy="0.5"), TypeError, "energy"),
        (dict(sigma=3, energy=0.5), ValueError, "energy: cannot be combined"),
        (dict(post="square"), ValueError, "post"),
        (dict(reduce_channels=1), TypeError, "reduce_channels"),
    ],
)
def test_bad_arguments(kwargs, exc, words):
    x = _rand(1, 3, 16, 20, seed=17)
    with pytest.raises(exc, match=words):
        forgrad(x, **kwargs)


def test_bad_attributions():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        forgrad(torch.ones(5), 1)
    with pytest.raises(TypeError, match="attributions"):
        forgrad(np.ones((4, 4)), 1)
    with pytest.raises(TypeError, match="floating"):
        forgrad(torch.ones(4, 4, dtype=torch.int64), 1)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.ones(1, 3, 8, 8)
        x[0, 1, 2, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            forgrad(x, 2)
