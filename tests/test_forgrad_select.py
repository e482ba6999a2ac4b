"""Sigma selection and the small built-in deletion/insertion metric
(captum_crigrad.forgrad.select)."""

import math

import matplotlib
import pytest
import torch
import torch.nn as nn

from captum_crigrad.forgrad.filter import forgrad
from captum_crigrad.forgrad.select import (
    SigmaSelection,
    default_sigma_grid,
    deletion_auc,
    insertion_auc,
    insertion_minus_deletion,
    plot_sigma_curve,
    select_sigma,
)

matplotlib.use("Agg")

H = W = 32


class RegionModel(nn.Module):
    """Logit of class 1 = 2 x mean of channel 0 over the top-left 4x4 square."""

    def forward(self, x):
        evidence = 2 * x[:, 0, :4, :4].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(evidence), evidence], dim=1)


def _smooth_and_noise(n=3, seed=0):
    yy = torch.arange(H, dtype=torch.float32)[:, None]
    xx = torch.arange(W, dtype=torch.float32)[None, :]
    smooth = 2 + torch.cos(2 * math.pi * (yy / H + 2 * xx / W))  # |k| = sqrt(5)
    g = torch.Generator().manual_seed(seed)
    # noise made only of frequencies with |k| >= 10
    noise = torch.randn(n, 1, H, W, generator=g)
    spectrum = torch.fft.rfft2(noise)
    ky = (torch.fft.fftfreq(H) * H)[:, None]
    kx = (torch.fft.rfftfreq(W) * W)[None, :]
    spectrum = spectrum * ((ky**2 + kx**2) >= 100)
    noise = torch.fft.irfft2(spectrum, s=(H, W))
    return smooth, smooth + 0.5 * noise


class CountingMethod:
    def __init__(self, maps):
        self.maps, self.calls = maps, 0

    def attribute(self, inputs, target=None):
        self.calls += 1
        return self.maps


def test_select_sigma_finds_the_band_that_separates_signal_from_noise():
    smooth, noisy = _smooth_and_noise()
    inputs = torch.zeros(3, 1, H, W)
    seen = []

    def closeness(model, inputs, attributions, target):
        seen.append(attributions.shape)
        return -(attributions - smooth).abs().mean(dim=(1, 2, 3))

    method = CountingMethod(noisy)
    result = select_sigma(
        nn.Identity(),
        inputs,
        0,
        method,
        metric=closeness,
        higher_is_better=True,
        sigmas=[1, 2, 4, 8, 12, 16],
        post="none",
    )
    assert isinstance(result, SigmaSelection)
    assert method.calls == 1  # raw maps computed once
    assert len(seen) == 7  # raw + one per sigma
    assert result.sigmas == [1, 2, 4, 8, 12, 16]
    assert result.scores.shape == (6,) and result.per_image.shape == (6, 3)
    # sigma 4 and 8 keep |k| = sqrt(5) and drop |k| >= 10; ties go to the smaller
    assert result.best_sigma == 4
    assert result.best_score == pytest.approx(0, abs=1e-5)
    assert result.raw_score < result.best_score - 0.1
    assert result.scores[0] < result.best_score - 0.1  # sigma 1 removes the signal
    assert result.best_relative_cutoff == pytest.approx(4 / 32)
    # lower-is-better flips the choice
    worst = select_sigma(
        nn.Identity(),
        inputs,
        0,
        noisy,
        metric=closeness,
        higher_is_better=False,
        sigmas=[1, 2, 4, 8, 12, 16],
        post="none",
    )
    assert worst.best_sigma in (1, 16)
    assert worst.best_sigma != 4


def test_select_sigma_matches_manual_sweep_with_builtin_metric():
    torch.manual_seed(0)
    model = RegionModel()
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(4, 3, H, W, generator=g).abs()
    maps = torch.randn(4, 3, H, W, generator=g)
    result = select_sigma(model, inputs, 1, maps, sigmas=[2, 8])
    for i, s in enumerate([2, 8]):
        manual = insertion_minus_deletion(model, inputs, forgrad(maps, s), 1)
        torch.testing.assert_close(result.per_image[i], manual)
    torch.testing.assert_close(
        result.raw_per_image, insertion_minus_deletion(model, inputs, maps, 1)
    )
    assert result.higher_is_better and result.metric_name == "insertion-deletion"
    dele = select_sigma(model, inputs, 1, maps, metric="deletion", sigmas=[2, 8])
    assert not dele.higher_is_better
    assert dele.best_sigma == [2, 8][int(torch.argmin(dele.scores))]


def test_deletion_and_insertion_reward_the_right_order():
    model = RegionModel()
    inputs = torch.zeros(2, 3, H, W)
    inputs[:, 0, :4, :4] = 1.0  # blurring spreads the evidence away
    good = torch.zeros(2, 1, H, W)
    good[:, :, :4, :4] = 1.0  # the evidence first
    bad = -good  # the evidence last
    d_good, d_bad = (
        deletion_auc(model, inputs, good, 1),
        deletion_auc(model, inputs, bad, 1),
    )
    i_good, i_bad = (
        insertion_auc(model, inputs, good, 1),
        insertion_auc(model, inputs, bad, 1),
    )
    assert (d_good < d_bad - 0.1).all()  # lower is better
    assert (i_good > i_bad + 0.05).all()  # higher is better
    for auc in (d_good, d_bad, i_good, i_bad):
        assert auc.shape == (2,) and ((auc >= 0) & (auc <= 1)).all()
    # the trapezoid rule by hand for the deletion of the good order: evidence
    # (16 of 1024 pixels) gone after the first of 16 steps
    p_full = torch.softmax(torch.tensor([0.0, 2.0]), 0)[1]
    p_gone = torch.tensor(0.5)
    expected = ((p_full + p_gone) / 2 + 15 * p_gone) / 16
    torch.testing.assert_close(d_good, expected.expand(2), atol=1e-6, rtol=0)


def test_metric_batches_do_not_change_scores():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    ).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 12, 10, generator=g)
    maps = torch.randn(3, 1, 12, 10, generator=g)
    t = torch.tensor([0, 2, 4])
    for fn in (deletion_auc, insertion_auc):
        torch.testing.assert_close(
            fn(model, x, maps, t, batch_size=1), fn(model, x, maps, t, batch_size=100)
        )
        # per image: an image's score does not depend on its neighbours
        torch.testing.assert_close(
            fn(model, x[1:2], maps[1:2], t[1:2]), fn(model, x, maps, t)[1:2]
        )


def test_default_grid():
    assert default_sigma_grid(32, 32)[:8] == [1, 2, 3, 4, 6, 8, 12, 16]
    assert default_sigma_grid(32, 32)[-1] == pytest.approx(32 / math.sqrt(2))
    grid = default_sigma_grid(224, 224)
    assert grid[0] == 7 and grid == sorted(grid)


def test_plot_returns_axes():
    smooth, noisy = _smooth_and_noise()
    result = select_sigma(
        nn.Identity(),
        torch.zeros(3, 1, H, W),
        0,
        noisy,
        metric=lambda m, x, a, t: -(a - smooth).abs().mean(dim=(1, 2, 3)),
        higher_is_better=True,
        sigmas=[1, 4, 16],
    )
    ax = plot_sigma_curve(result, label="toy")
    assert ax.get_xscale() == "log"
    assert "higher is better" in ax.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_bad_arguments():
    x = torch.zeros(2, 1, 8, 8)
    maps = torch.zeros(2, 1, 8, 8)
    metric = lambda m, i, a, t: torch.zeros(2)  # noqa: E731
    with pytest.raises(ValueError, match="higher_is_better"):
        select_sigma(nn.Identity(), x, 0, maps, metric=metric)
    with pytest.raises(ValueError, match="higher_is_better"):
        select_sigma(
            nn.Identity(), x, 0, maps, metric="deletion", higher_is_better=True
        )
    with pytest.raises(ValueError, match="metric"):
        select_sigma(nn.Identity(), x, 0, maps, metric="accuracy")
    with pytest.raises(ValueError, match="sigmas"):
        select_sigma(
            nn.Identity(),
            x,
            0,
            maps,
            metric=metric,
            higher_is_better=True,
            sigmas=[2, 9],
        )
    with pytest.raises(ValueError, match="sigmas"):
        select_sigma(
            nn.Identity(), x, 0, maps, metric=metric, higher_is_better=True, sigmas=[]
        )
    with pytest.raises(ValueError, match="per-image scores"):
        select_sigma(
            nn.Identity(),
            x,
            0,
            maps,
            metric=lambda *a: torch.zeros(3),
            higher_is_better=True,
            sigmas=[2],
        )
    with pytest.raises(ValueError, match="method"):
        select_sigma(
            nn.Identity(),
            x,
            0,
            torch.zeros(3, 1, 8, 8),
            metric=metric,
            higher_is_better=True,
        )
    with pytest.raises(TypeError, match="method"):
        select_sigma(
            nn.Identity(), x, 0, "saliency", metric=metric, higher_is_better=True
        )
    with pytest.raises(ValueError, match="inputs"):
        select_sigma(
            nn.Identity(),
            torch.zeros(8, 8),
            0,
            maps,
            metric=metric,
            higher_is_better=True,
        )
    with pytest.raises(ValueError, match="target"):
        deletion_auc(
            RegionModel(),
            torch.zeros(2, 3, 8, 8),
            torch.zeros(2, 1, 8, 8),
            torch.tensor([1, 1, 1]),
        )


@pytest.mark.assets
def test_forgrad_improves_saliency_on_cifar_resnet20(assets):
    # The results table's first row (docs/forgrad.md): on the 20 CIFAR-10
    # images, FORGrad at the default sigma raises Saliency's insertion -
    # deletion AUC (0.237 -> 0.406 with 16 steps).
    from captum.attr import Saliency

    from captum_crigrad.io import load_cifar_images, load_resnet20
    from captum_crigrad.io.models import normalize

    model = load_resnet20(assets / "cifar10_resnet20" / "resnet20-12fca82f.th")
    images, labels, _ = load_cifar_images(assets / "cifar10_images")
    inputs = normalize(images)
    result = select_sigma(
        model, inputs, labels, Saliency(model), sigmas=[15 / 224 * 32]
    )
    assert result.scores[0] > result.raw_score + 0.1
