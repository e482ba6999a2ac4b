import numpy as np
import pytest
import torch
from helpers import assert_untouched, snapshot

from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.sanity import class_sensitivity, random_other_class


def test_random_other_class_never_the_target_and_seeded():
    target = torch.arange(10).repeat(50)
    other = random_other_class(target, 10, seed=3)
    assert other.shape == target.shape and other.dtype == torch.long
    assert bool((other != target).all())
    assert set(other.tolist()) == set(range(10))
    # every other class is reachable from a given target, roughly uniformly
    counts = np.bincount(other[target == 4].numpy(), minlength=10)
    assert counts[4] == 0 and counts.min() == 0 and (counts > 0).sum() == 9
    assert torch.equal(other, random_other_class(target, 10, seed=3))
    assert not torch.equal(other, random_other_class(target, 10, seed=4))
    # entry i depends on the seed and i only: a prefix gives the same draws
    assert torch.equal(other[:7], random_other_class(target[:7], 10, seed=3))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(other, random_other_class(target, 10, seed=gen))


@pytest.mark.parametrize(
    "args, error",
    [
        ((torch.tensor([0, 1]), 1), ValueError),
        ((torch.tensor([0, 5]), 5), ValueError),
        ((torch.tensor([0.0, 1.0]), 5), TypeError),
        ((torch.tensor([0, 1]), 5.0), TypeError),
    ],
)
def test_random_other_class_errors(args, error):
    with pytest.raises(error):
        random_other_class(*args)


@pytest.fixture(scope="module")
def digits():
    model = load_default_model()
    images, _ = load_default_images()
    return model, images[::2]  # one digit of each class


def test_guided_backprop_is_class_insensitive_the_gradient_is_not(digits):
    """Sixt et al. (2020): Guided Backprop gives nearly the same map for any
    class; the plain gradient does not."""
    model, images = digits
    snap = snapshot(model)
    result = class_sensitivity(
        model,
        images,
        ["GradientExplanation", "GuidedBackprop"],
        measures=["spearman_abs", "ssim"],
        seed=0,
    )
    assert_untouched(model, snap)
    assert all(p.grad is None for p in model.parameters())
    for measure in ("spearman_abs", "ssim"):
        grad = result.mean("GradientExplanation", measure)
        guided = result.mean("GuidedBackprop", measure)
        assert guided > grad + 0.15, measure
        assert result.scores[("GuidedBackprop", measure)].shape == (len(images),)
    with torch.no_grad():
        assert np.array_equal(result.target, model(images).argmax(1).numpy())
    assert (result.other != result.target).all()
    table = result.to_markdown()
    assert "lower is better" in table and "| GuidedBackprop |" in table
    assert len(result.rows()) == 4


def test_explicit_classes_and_identical_maps(digits):
    model, images = digits
    n = len(images)
    # the map of a class compared with the map of the same class's twin:
    # explaining class 3 against class 3 is refused, not silently scored 1
    with pytest.raises(ValueError, match="other"):
        class_sensitivity(
            model, images, "GradientExplanation", target=3, other=3, measures=["ssim"]
        )
    result = class_sensitivity(
        model,
        images,
        "GradientExplanation",
        target=torch.full((n,), 2),
        other=-1,  # counts from the end: class 9
        measures=["spearman_abs"],
    )
    assert (result.target == 2).all() and (result.other == 9).all()
    with pytest.raises(ValueError, match="target"):
        class_sensitivity(model, images, "GradientExplanation", target=10)
    with pytest.raises(ValueError, match="measures"):
        class_sensitivity(model, images, "GradientExplanation", measures=["l2"])
    with pytest.raises(ValueError, match="method"):
        class_sensitivity(model, images, "Occlusion")
