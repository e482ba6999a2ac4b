import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from captum_crigrad.sanity.similarity import (
    MEASURES,
    hog_features,
    hog_pearson,
    similarity_scores,
    spearman,
    spearman_abs,
    ssim,
)


@pytest.fixture
def maps():
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(
        torch.randn(24, 1, 36, 36, generator=gen), 5, 1
    )  # spatially correlated, signed, 32x32
    return smooth


def test_spearman_matches_scipy_with_ties(maps):
    a = maps.clone()
    b = torch.roll(maps, 3, dims=-1) + 0.3 * torch.randn(
        maps.shape, generator=torch.Generator().manual_seed(1)
    )
    a[:, :, :10] = 0.0  # many ties, as in CAMs
    b = torch.round(b * 4) / 4  # more ties
    ours = spearman(a, b)
    ours_abs = spearman_abs(a, b)
    for i in range(a.shape[0]):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        assert ours[i] == pytest.approx(spearmanr(x, y).statistic, abs=1e-10)
        assert ours_abs[i] == pytest.approx(
            spearmanr(np.abs(x), np.abs(y)).statistic, abs=1e-10
        )
    assert np.std(ours) > 0.01  # a real spread, not one value repeated


def test_hog_pearson_matches_scipy(maps):
    b = maps.flip(-1)
    ours = hog_pearson(maps, b)
    fa, fb = hog_features(maps), hog_features(b)
    for i in range(maps.shape[0]):
        assert ours[i] == pytest.approx(pearsonr(fa[i], fb[i]).statistic, abs=1e-10)


def test_self_similarity_is_one_on_every_measure(maps):
    scores = similarity_scores(maps.abs(), maps.abs(), maps, maps)
    assert set(scores) == set(MEASURES)
    for measure, values in scores.items():
        assert values.shape == (maps.shape[0],)
        np.testing.assert_allclose(values, 1.0, atol=1e-9, err_msg=measure)


def test_unrelated_random_maps_near_zero(maps):
    gen = torch.Generator().manual_seed(2)
    other = torch.randn(maps.shape, generator=gen)
    scores = similarity_scores(maps.abs(), other.abs(), maps, other)
    for measure, values in scores.items():
        limit = 0.2 if measure == "hog_pearson" else 0.06
        assert abs(values.mean()) < limit, (measure, values.mean())


def test_similar_maps_score_between(maps):
    gen = torch.Generator().manual_seed(3)
    noisy = maps + 0.5 * maps.std() * torch.randn(maps.shape, generator=gen)
    scores = similarity_scores(maps.abs(), noisy.abs(), maps, noisy)
    for measure, values in scores.items():
        assert 0.3 < values.mean() < 0.99, (measure, values.mean())


def test_sign_matters_only_for_signed_spearman(maps):
    assert np.allclose(spearman_abs(maps, -maps), 1.0)
    assert np.allclose(spearman(maps, -maps), -1.0)


def test_constant_maps_convention():
    zeros = torch.zeros(2, 1, 16, 16)
    ramp = torch.arange(256.0).reshape(1, 1, 16, 16).repeat(2, 1, 1, 1)
    assert np.allclose(spearman(zeros, zeros), 1.0)
    assert np.allclose(spearman(zeros, ramp), 0.0)
    assert np.allclose(ssim(zeros, zeros), 1.0)
    assert np.allclose(hog_pearson(zeros, zeros), 1.0)
    assert np.allclose(hog_pearson(zeros, ramp), 0.0)


def test_bad_inputs():
    a = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="shapes differ"):
        spearman(a, torch.rand(3, 1, 16, 16))
    with pytest.raises(ValueError, match="single-channel"):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        spearman([1, 2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman(a * float("nan"), a)
    with pytest.raises(ValueError, match="smaller than one HOG block"):
        hog_pearson(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="measures"):
        similarity_scores(a, a, measures=["psnr"])


@pytest.mark.parametrize("shape", [(5, 28, 28), (3, 1, 32, 20), (2, 5, 9)])
def test_batched_ssim_equals_skimage_per_image(shape):
    from skimage.metrics import structural_similarity

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=gen) ** 3
    b = (a + 0.3 * torch.rand(shape, generator=gen)).clamp(0, 1)
    b[0] = torch.rand(shape[1:], generator=gen)  # an unrelated pair too
    ours = ssim(a, b)
    flat_a = a.reshape(shape[0], *shape[-2:]).double().numpy()
    flat_b = b.reshape(shape[0], *shape[-2:]).double().numpy()
    win = min(7, *shape[-2:])
    win = win if win % 2 else win - 1
    for i in range(shape[0]):
        x, y = (m[i] - m[i].min() for m in (flat_a, flat_b))
        x, y = x / x.max(), y / y.max()
        ref = structural_similarity(x, y, data_range=1.0, win_size=win)
        assert abs(ours[i] - ref) < 1e-10
