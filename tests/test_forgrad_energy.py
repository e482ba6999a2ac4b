"""FORGrad's default cutoff: the per-map spectral-energy rule (issue 14).

``energy_sigma`` picks, per map, the smallest low-pass disc holding a
fraction ``p`` of the map's spectral energy outside the zero frequency;
``forgrad(..., energy=p)`` filters each map with its own disc, and it is the
default of every FORGrad entry point (0.75 alone, 0.9 after CriGrad:
docs/defaults_study.md). The brute force below is independent of the
library: NumPy, the full (not the real, half) spectrum, every distinct
radius tried in turn.
"""

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from helpers import assert_untouched, snapshot

from captum_crigrad.core.hooks import with_gradient_transform
from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError
from captum_crigrad.crigrad.transform import CriGrad
from captum_crigrad.forgrad.attr import (
    FORGrad,
    FORGradAttribution,
    FORGradIntegratedGradients,
    FORGradLayerGradCam,
    FORGradSaliency,
    with_forgrad,
)
from captum_crigrad.forgrad.filter import (
    DEFAULT_ENERGY,
    DEFAULT_ENERGY_AFTER_CRIGRAD,
    PAPER_RELATIVE_CUTOFF,
    energy_sigma,
    forgrad,
    lowpass_mask,
    sigma_keeping_all,
)
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods import ExplainOptions, parse_method

SIZES = [(28, 28), (32, 32), (31, 31), (17, 40), (28, 29)]


def _maps(n, h, w, seed):
    """Non-negative maps with structure at several scales, plus noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing="ij",
    )
    out = []
    for _ in range(n):
        cy, cx, s = (torch.rand(3, generator=g, dtype=torch.float64) * 0.8 + 0.1) * h
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx * w / h) ** 2) / (2 + s) ** 2)
        noise = torch.rand(h, w, generator=g, dtype=torch.float64)
        out.append(blob + float(torch.rand(1, generator=g)) * noise**3)
    return torch.stack(out)


def brute_force(m: np.ndarray, p: float):
    """(radii, disc energies, total): every distinct radius (cycles along the
    shorter side) and the non-DC energy of the full spectrum inside it."""
    h, w = m.shape
    power = np.abs(np.fft.fft2(m)) ** 2
    power[0, 0] = 0.0
    ky = np.round(np.fft.fftfreq(h) * h)[:, None]
    kx = np.round(np.fft.fftfreq(w) * w)[None, :]
    radius = np.sqrt((ky / h) ** 2 + (kx / w) ** 2) * min(h, w)
    radii = np.unique(np.round(radius, 9))
    inside = [power[radius <= r + 1e-9].sum() for r in radii]
    return radii, np.array(inside), power.sum()


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("p", [0.3, DEFAULT_ENERGY, DEFAULT_ENERGY_AFTER_CRIGRAD])
def test_disc_is_the_smallest_holding_the_fraction(h, w, p):
    maps = _maps(6, h, w, seed=h * w)
    sigmas = energy_sigma(maps, p)
    assert sigmas.shape == (6,) and sigmas.dtype == torch.float64
    for m, sigma in zip(maps.numpy(), sigmas.tolist(), strict=True):
        radii, inside, total = brute_force(m, p)
        k = int(np.argmin(np.abs(radii - sigma)))
        assert radii[k] == pytest.approx(sigma, abs=1e-9)  # a radius of the grid
        assert inside[k] >= p * total  # the chosen disc holds p ...
        assert k == 0 or inside[k - 1] < p * total  # ... the next smaller does not
        # forgrad's mask for that sigma keeps exactly the frequencies of the disc
        ky = np.round(np.fft.fftfreq(h) * h)[:, None]
        kx = np.round(np.fft.rfftfreq(w) * w)[None, :]
        disc = np.sqrt((ky / h) ** 2 + (kx / w) ** 2) * min(h, w) <= radii[k] + 1e-9
        assert np.array_equal(lowpass_mask(h, w, sigma).numpy().astype(bool), disc)


@pytest.mark.parametrize("h,w", SIZES)
def test_energy_filter_is_the_fixed_filter_with_each_maps_sigma(h, w):
    maps = _maps(5, h, w, seed=7).float()
    p = 0.6
    filtered = forgrad(maps, energy=p)
    for i, sigma in enumerate(energy_sigma(maps, p).tolist()):
        torch.testing.assert_close(filtered[i], forgrad(maps[i], sigma))
        # and the independent NumPy filter with the brute-force disc
        m = maps[i].double().numpy()
        radii, inside, total = brute_force(m, p)
        r = radii[int(np.argmax(inside >= p * total))]
        ky = np.round(np.fft.fftfreq(h) * h)[:, None]
        kx = np.round(np.fft.fftfreq(w) * w)[None, :]
        disc = np.sqrt((ky / h) ** 2 + (kx / w) ** 2) * min(h, w) <= r + 1e-9
        expected = np.abs(np.fft.ifft2(np.fft.fft2(np.abs(m)) * disc).real)
        np.testing.assert_allclose(filtered[i].numpy(), expected, atol=1e-5)


def test_each_map_has_its_own_sigma_whatever_its_batch_neighbours():
    maps = _maps(6, 32, 32, seed=3).float()
    # a zero map and a constant one in the batch: nothing to filter
    batch = torch.cat([maps[:3], torch.zeros(1, 32, 32), torch.full((1, 32, 32), 2.0)])
    sigmas = energy_sigma(batch)
    filtered = forgrad(batch.unsqueeze(1))  # (B, 1, H, W), the default rule
    assert len(set(sigmas[:3].tolist())) > 1  # the maps differ, so do sigmas
    assert torch.isfinite(sigmas).all() and torch.isfinite(filtered).all()
    for i in range(len(batch)):
        assert torch.equal(sigmas[i : i + 1], energy_sigma(batch[i : i + 1]))
        torch.testing.assert_close(
            filtered[i : i + 1], forgrad(batch[i : i + 1].unsqueeze(1))
        )
    assert sigmas[3] == pytest.approx(sigma_keeping_all(32, 32))
    assert sigmas[4] == pytest.approx(sigma_keeping_all(32, 32))
    assert torch.equal(filtered[3], torch.zeros(1, 32, 32))
    torch.testing.assert_close(filtered[4], torch.full((1, 32, 32), 2.0))
    # a map's sigma is the same alone, in another batch, or in 4-D layout
    other = torch.cat([maps[3:], maps[:1]])
    assert torch.equal(energy_sigma(other)[-1], sigmas[0])


def test_reduce_channels_off_gives_each_channel_its_own_disc():
    x = _maps(6, 24, 24, seed=5).float().reshape(2, 3, 24, 24)
    out = forgrad(x, energy=0.5, reduce_channels=False)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(
                out[b, c], forgrad(x[b, c], energy=0.5), atol=1e-6, rtol=1e-5
            )


def test_default_rule_everywhere():
    model = SmallCNN(in_channels=3, width=8).eval()
    maps = _maps(2, 20, 24, seed=1).float().unsqueeze(1)
    torch.testing.assert_close(forgrad(maps), forgrad(maps, energy=DEFAULT_ENERGY))
    assert FORGrad().energy == DEFAULT_ENERGY == 0.75
    assert (FORGrad().sigma, FORGrad().relative_cutoff) == (None, None)
    assert DEFAULT_ENERGY_AFTER_CRIGRAD == 0.9
    crigrad = CriGrad(keep=0.3)
    for method, energy in [
        (FORGradSaliency(model), 0.75),
        (FORGradSaliency(model, transform=crigrad), 0.9),
        (FORGradSaliency(model, where="per_step", transform=crigrad), 0.9),
        (FORGradIntegratedGradients(model, transform=crigrad), 0.9),
        (FORGradLayerGradCam(model, model.features[3]), 0.75),
        (with_forgrad(Saliency(model)), 0.75),
        (with_forgrad(Saliency(model), transform=CriGrad() + FORGrad(sigma=3)), 0.9),
        (FORGradAttribution(Saliency(model), transform=crigrad), 0.9),
    ]:
        assert method.forgrad.energy == energy, method
        assert method.forgrad.sigma is None and method.forgrad.relative_cutoff is None
    # explicit rules are kept as given
    assert FORGradSaliency(model, sigma=4).forgrad.sigma == 4
    assert FORGradSaliency(model, sigma=4, transform=crigrad).forgrad.energy is None
    fixed = FORGradSaliency(model, relative_cutoff=PAPER_RELATIVE_CUTOFF).forgrad
    assert (fixed.relative_cutoff, fixed.energy) == (PAPER_RELATIVE_CUTOFF, None)
    assert FORGradSaliency(model, energy=0.5, transform=crigrad).forgrad.energy == 0.5
    assert "energy=0.9" in repr(FORGradSaliency(model, transform=crigrad))
    # the registry: forgrad- 0.75, crigrad-forgrad- 0.9, names and options win
    options = ExplainOptions()
    assert parse_method("forgrad").forgrad_cutoff(options) == {"energy": 0.75}
    assert parse_method("CriGrad+FORGrad").forgrad_cutoff(options) == {"energy": 0.9}
    assert parse_method("forgrad-ig@energy=0.6").forgrad_cutoff(options) == {
        "energy": 0.6
    }
    assert parse_method("forgrad@energy=0.6").canonical == (
        "forgrad-saliency@energy=0.6"
    )
    assert parse_method("crigrad-forgrad").forgrad_cutoff(
        ExplainOptions(forgrad_sigma=3.0)
    ) == {"sigma": 3.0}
    assert parse_method("crigrad-forgrad@sigma=5").forgrad_cutoff(
        ExplainOptions(forgrad_energy=0.5)
    ) == {"sigma": 5.0}


def test_default_on_a_model_is_the_filter_of_the_method():
    model = SmallCNN(in_channels=3, width=8).eval()
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, 3, 20, 24, generator=g), torch.tensor([0, 3, 5])
    crigrad = CriGrad(keep=0.3)
    sal = Saliency(model).attribute(x, target=t)
    torch.testing.assert_close(
        FORGradSaliency(model).attribute(x, target=t), forgrad(sal, energy=0.75)
    )
    cri = with_gradient_transform(Saliency(model), crigrad).attribute(x, target=t)
    torch.testing.assert_close(
        FORGradSaliency(model, transform=crigrad).attribute(x, target=t),
        forgrad(cri, energy=0.9),
    )


BAD_ENERGY = [
    (0, InvalidValueError),
    (1, InvalidValueError),
    (1.5, InvalidValueError),
    (-0.2, InvalidValueError),
    (float("nan"), InvalidValueError),
    ("0.5", InvalidTypeError),
]


@pytest.mark.parametrize("bad,exc", BAD_ENERGY)
def test_bad_energy_raises_before_any_work_naming_the_argument(bad, exc):
    model = SmallCNN(in_channels=3, width=8).eval()
    snap = snapshot(model)
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, 20, 24)
    try:
        with pytest.raises(exc, match="energy"):
            forgrad(x, energy=bad)
        with pytest.raises(exc, match="fraction"):
            energy_sigma(x, bad)
        with pytest.raises(exc, match="energy"):
            FORGrad(energy=bad)
        for make in (
            lambda: FORGradSaliency(model, energy=bad),
            lambda: FORGradLayerGradCam(model, model.features[3], energy=bad),
            lambda: with_forgrad(Saliency(model), energy=bad),
        ):
            with pytest.raises(exc, match="energy"):
                make().attribute(x, target=0)
        with pytest.raises(exc, match="forgrad_energy"):
            ExplainOptions(forgrad_energy=bad).validate()
        if not isinstance(bad, str):
            with pytest.raises(InvalidValueError, match="energy"):
                parse_method(f"forgrad@energy={bad}")
    finally:
        handle.remove()
    assert calls == []  # no forward pass ran
    assert_untouched(model, snap)


def test_one_cutoff_rule_at_a_time():
    model = SmallCNN(in_channels=3, width=8).eval()
    x = torch.rand(1, 1, 16, 16)
    for kwargs in (
        dict(sigma=3.0, energy=0.5),
        dict(relative_cutoff=0.2, energy=0.5),
        dict(sigma=3.0, relative_cutoff=0.2),
    ):
        with pytest.raises(InvalidValueError, match="cannot be combined"):
            forgrad(x, **kwargs)
        with pytest.raises(InvalidValueError, match="cannot be combined"):
            FORGradSaliency(model, **kwargs)
    with pytest.raises(InvalidValueError, match="@energy cannot be combined"):
        parse_method("forgrad@sigma=3@energy=0.5")
    with pytest.raises(InvalidValueError, match="forgrad_energy: cannot be combined"):
        ExplainOptions(forgrad_sigma=3.0, forgrad_energy=0.5).validate()
    # explicit fixed cutoffs still work, and differ from the default
    assert not torch.allclose(forgrad(x, 2.0), forgrad(x))


def test_energy_filter_is_differentiable_and_keeps_dtype():
    x = torch.randn(2, 3, 20, 24, dtype=torch.float64, requires_grad=True)
    out = forgrad(x)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert forgrad(x.detach().half()).dtype == torch.float16
