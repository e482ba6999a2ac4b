"""Smooth and efficient MPRT (Hedström et al. 2024): plain MPRT is the
one-sample case, the noise is per image, a weight-independent explanation
fails both, a constant map has zero entropy, bad input is refused before
any work, the model is untouched."""

import math

import numpy as np
import pytest
import torch
from helpers import assert_untouched, snapshot

from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods import register_method, unregister_method
from captum_crigrad.sanity import (
    efficient_mprt,
    map_entropy,
    sanity_check,
    smooth_mprt,
)


@pytest.fixture
def small():
    torch.manual_seed(0)
    model = SmallCNN(width=4).eval()
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return model, images


@pytest.fixture
def image_itself():
    def build(ctx):
        return lambda x, t: x.detach().clone()

    register_method("ImageItselfMPRT", "the image itself", build)
    yield "ImageItselfMPRT"
    unregister_method("ImageItselfMPRT")


def test_one_sample_is_plain_mprt(small):
    model, images = small
    snap = snapshot(model)
    plain = sanity_check(model, images, ["GradientExplanation"], seed=3)
    smooth = smooth_mprt(model, images, ["GradientExplanation"], n_samples=1, seed=3)
    assert_untouched(model, snap)
    assert smooth.steps == plain.steps
    for key, values in plain.scores.items():
        np.testing.assert_allclose(smooth.scores[key], values, atol=1e-9)


def test_smoothing_changes_the_maps_and_is_per_image(small):
    model, images = small
    kw = dict(methods=["GradientExplanation"], n_samples=4, noise=0.2, seed=1)
    batch = smooth_mprt(model, images, **kw)
    plain = smooth_mprt(model, images, **{**kw, "n_samples": 1})
    key = ("GradientExplanation", "spearman_abs")
    assert not np.allclose(batch.scores[key], plain.scores[key])
    # image 1 alone gets the same noise, hence the same scores
    alone = smooth_mprt(model, images[1:2], **kw)
    np.testing.assert_allclose(
        alone.scores[key][:, 0], batch.scores[key][:, 1], atol=1e-6
    )
    other_seed = smooth_mprt(model, images, **kw, noise_seed=5)
    assert not np.allclose(other_seed.scores[key], batch.scores[key])


def test_weight_independent_method_fails_both(small, image_itself):
    model, images = small
    smooth = smooth_mprt(model, images, [image_itself], n_samples=2)
    for measure in smooth.measures:
        np.testing.assert_allclose(
            smooth.scores[(image_itself, measure)], 1.0, atol=1e-6
        )
    snap = snapshot(model)
    eff = efficient_mprt(model, images, [image_itself, "GradientExplanation"])
    assert_untouched(model, snap)
    np.testing.assert_allclose(eff.scores(image_itself), 1.0, atol=1e-12)
    assert eff.mean(image_itself) == pytest.approx(1.0)
    rows = {r["method"]: r for r in eff.rows()}
    assert rows["GradientExplanation"]["emprt"] == pytest.approx(
        eff.mean("GradientExplanation")
    )
    g = eff.scores("GradientExplanation")
    np.testing.assert_allclose(
        g,
        eff.random_entropy["GradientExplanation"]
        / eff.trained_entropy["GradientExplanation"],
    )


def test_map_entropy():
    const = torch.ones(1, 1, 8, 8)
    ramp = torch.arange(100.0).view(1, 1, 10, 10)
    two = torch.zeros(1, 1, 4, 4)
    two[..., :2, :] = 1.0
    out = map_entropy(torch.cat([ramp, torch.zeros(1, 1, 10, 10)]), n_bins=100)
    assert out[0] == pytest.approx(math.log(100))  # one value per bin
    assert out[1] == 0.0
    assert map_entropy(const)[0] == 0.0
    assert map_entropy(two, n_bins=10)[0] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="n_bins"):
        map_entropy(ramp, n_bins=1)


@pytest.mark.parametrize(
    "fn, kwargs, error, match",
    [
        (smooth_mprt, dict(n_samples=0), ValueError, "n_samples"),
        (smooth_mprt, dict(noise=-1.0), ValueError, "noise"),
        (smooth_mprt, dict(mode="backwards"), ValueError, "mode"),
        (smooth_mprt, dict(n_bins=3), TypeError, "n_bins"),
        (efficient_mprt, dict(n_bins=1), ValueError, "n_bins"),
        (efficient_mprt, dict(blocks=["nope"]), ValueError, "nope"),
        (efficient_mprt, dict(measures=["ssim"]), TypeError, "measures"),
        (efficient_mprt, dict(methods=["Occlusion"]), ValueError, "valid names"),
    ],
)
def test_bad_input_before_work(small, fn, kwargs, error, match):
    model, images = small
    snap = snapshot(model)
    with pytest.raises(error, match=match):
        fn(model, images, **kwargs)
    assert_untouched(model, snap)
