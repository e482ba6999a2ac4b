import math

import pytest
import torch
import torch.nn as nn
from captum.attr import InputXGradient, Saliency

from captum_crigrad.metrics import (
    energy_pointing_game,
    infidelity,
    max_sensitivity,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sensitivity_n,
)


class Linear(nn.Module):
    def __init__(self, c=3, h=8, w=8, classes=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(classes, c * h * w, generator=g))
        self.bias = nn.Parameter(torch.randn(classes, generator=g))

    def forward(self, x):
        return x.flatten(1) @ self.weight.t() + self.bias


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return Linear().eval(), torch.rand(4, 3, 8, 8, generator=g)


def test_sensitivity_n_is_exactly_one_for_gradient_x_input_on_a_linear_model(data):
    model, x = data
    target = model(x).argmax(1)
    gxi = InputXGradient(model).attribute(x.clone().requires_grad_(), target=target)
    res = sensitivity_n(
        model,
        x,
        gxi,
        n=[1, 5, 20, 50],
        n_subsets=20,
        target=target,
        generator=torch.Generator().manual_seed(0),
    )
    assert res.correlations.shape == (4, 4)
    assert torch.allclose(
        res.correlations, torch.ones(4, 4, dtype=torch.float64), atol=1e-5
    )
    # a random map is far from it; plain |gradient| too (it ignores x)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    bad = sensitivity_n(
        model,
        x,
        noise,
        n=[5, 20],
        n_subsets=20,
        target=target,
        generator=torch.Generator().manual_seed(0),
    )
    assert float(bad.mean.max()) < 0.8
    # reproducible from the generator, and batching does not matter
    again = sensitivity_n(
        model,
        x,
        noise,
        n=[5, 20],
        n_subsets=20,
        target=target,
        generator=torch.Generator().manual_seed(0),
        max_examples_per_batch=7,
    )
    assert torch.allclose(again.correlations, bad.correlations, atol=1e-5)
    assert bad.n_forward_passes == 4 + 4 * 20 * 2


def test_sensitivity_n_bad_inputs(data):
    model, x = data
    with pytest.raises(ValueError, match="n: every subset size"):
        sensitivity_n(model, x, x, n=[0])
    with pytest.raises(ValueError, match="n: every subset size"):
        sensitivity_n(model, x, x, n=64)
    with pytest.raises(ValueError, match="attributions: shape"):
        sensitivity_n(model, x, x[:, :, :2], n=4)


def _masks_and_oracle():
    masks = torch.zeros(8, 16, 16, dtype=torch.bool)
    for i in range(8):
        masks[i, 2 * i % 12 : 2 * i % 12 + 3, 3:6] = True
    g = torch.Generator().manual_seed(0)
    oracle = masks.double() + 0.01 * torch.rand(
        8, 16, 16, generator=g, dtype=torch.float64
    )
    return masks, oracle


def test_pointing_game_oracle_hits_and_shuffled_map_does_not():
    masks, oracle = _masks_and_oracle()
    assert pointing_game(oracle, masks).all()
    g = torch.Generator().manual_seed(3)
    shuffled = torch.stack(
        [m.flatten()[torch.randperm(256, generator=g)].view(16, 16) for m in oracle]
    )
    hits = pointing_game(shuffled, masks)
    assert hits.float().mean() <= 0.25  # masks cover 9 of 256 pixels
    # tolerance: a peak 2 px outside the mask is a hit at tolerance 2, not 1
    peak = torch.zeros(1, 16, 16)
    peak[0, 0, 10] = 1.0
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 0:3, 5:9] = True
    assert not pointing_game(peak, mask, tolerance=1).item()
    assert pointing_game(peak, mask, tolerance=2).item()
    # an empty mask is never a hit, even at a huge tolerance
    assert not pointing_game(peak, torch.zeros_like(mask), tolerance=100).item()


def test_energy_mass_and_rank_accuracy():
    masks, oracle = _masks_and_oracle()
    exact = masks.double()
    assert torch.allclose(
        energy_pointing_game(exact, masks), torch.ones(8, dtype=torch.float64)
    )
    assert torch.allclose(
        relevance_rank_accuracy(oracle, masks), torch.ones(8, dtype=torch.float64)
    )
    uniform = torch.ones(8, 16, 16)
    assert torch.allclose(
        energy_pointing_game(uniform, masks),
        torch.full((8,), 9 / 256, dtype=torch.float64),
    )
    # relevance mass ignores negative relevance; the energy game sums channels first
    two = torch.stack([exact, -exact], 1)
    assert torch.allclose(
        relevance_mass_accuracy(two, masks), torch.ones(8, dtype=torch.float64)
    )
    assert torch.isnan(energy_pointing_game(two, masks)).all()
    with pytest.raises(ValueError, match="attributions: shape"):
        pointing_game(torch.ones(8, 15, 16), masks)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pointing_game(torch.full((8, 16, 16), math.nan), masks)


def test_infidelity_is_zero_for_the_exact_gradient_of_a_linear_model(data):
    model, x = data
    target = model(x).argmax(1)
    grad = Saliency(model).attribute(
        x.clone().requires_grad_(), target=target, abs=False
    )
    for kind in ("square", "gaussian", "noisy_baseline"):
        exact = infidelity(
            model,
            x,
            grad,
            perturbation=kind,
            target=target,
            normalize=False,
            generator=torch.Generator().manual_seed(0),
            **({"size": 3} if kind == "square" else {}),
        )
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        wrong = infidelity(
            model,
            x,
            noise,
            perturbation=kind,
            target=target,
            normalize=False,
            generator=torch.Generator().manual_seed(0),
            **({"size": 3} if kind == "square" else {}),
        )
        assert float(exact.max()) < 1e-6 * (1 + float(wrong.min()))
        assert (wrong > 1e-3).all()
    a = infidelity(model, x, x, generator=torch.Generator().manual_seed(5))
    b = infidelity(model, x, x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_max_sensitivity_seeded(data):
    model, x = data
    sal = Saliency(model)
    x = x.clone().requires_grad_()
    a = max_sensitivity(
        sal.attribute, x, target=0, generator=torch.Generator().manual_seed(0)
    )
    b = max_sensitivity(
        sal.attribute, x, target=0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b)
    # the gradient of a linear model does not change under input noise
    assert float(a.max()) < 1e-5
    gxi = InputXGradient(model)
    c = max_sensitivity(
        gxi.attribute, x, target=0, generator=torch.Generator().manual_seed(0)
    )
    assert (c > 1e-3).all()
