"""The default CriGrad and FORGrad pass the sanity tests on the MNIST CNN
(issue 14).

docs/sanity.md fixes the rules and docs/defaults_study.md chose the defaults
by them; these tests guard the property on the embedded MNIST SmallCNN and
its 20 shipped digits: with every layer randomised, the default CriGrad's
maps are no longer rank-correlated with the trained model's (Spearman(|map|)
below the rule's 0.3), and its maps for the predicted class and for another
class are less alike than Guided Backprop's (which ignores the class). The
same for the default FORGrad (the per-map energy rule, 0.75) and
CriGrad+FORGrad (0.9): Spearman(|map|) and SSIM with every layer random
below 0.3, class similarity within the rule's margin of the gradient's.
"""

import pytest

from captum_crigrad.crigrad import CriGrad
from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.methods import ExplainOptions
from captum_crigrad.sanity import class_sensitivity
from captum_crigrad.sanity.gradient_maps import gradient_map
from captum_crigrad.sanity.randomization import (
    default_blocks,
    randomize_model_parameters,
)
from captum_crigrad.sanity.similarity import spearman_abs, ssim

RANDOM_END_MAX = 0.3  # docs/sanity.md, pass rule 1(a)
CLASS_MARGIN = 0.15  # docs/sanity.md, pass rule 2


@pytest.fixture(scope="module")
def mnist():
    model = load_default_model()
    images, _ = load_default_images()
    return model, images


def test_registry_crigrad_is_the_library_default():
    """The named method 'CriGrad' (CLI, sanity, eval) is ``CriGrad()``."""
    built = ExplainOptions().crigrad(load_default_model())
    default = CriGrad()
    for name in ("keep", "importance", "signed", "granularity", "mode", "threshold"):
        assert getattr(built, name) == getattr(default, name), name


def test_default_crigrad_forgets_a_fully_randomised_model(mnist):
    model, images = mnist
    trained = gradient_map(model, images, "CriGrad")
    blocks = default_blocks(model, "module")
    randomized = randomize_model_parameters(model, blocks, init="reset", seed=0)
    target = model(images).argmax(1)  # the trained model's classes
    random = gradient_map(randomized, images, "CriGrad", target=target)
    score = float(spearman_abs(trained, random).mean())
    assert score < RANDOM_END_MAX
    # the check can fail: Guided Backprop, the rule of the old default on
    # this CNN, stays far above the limit
    gbp = float(
        spearman_abs(
            gradient_map(model, images, "GuidedBackprop"),
            gradient_map(randomized, images, "GuidedBackprop", target=target),
        ).mean()
    )
    assert gbp > RANDOM_END_MAX > score


def test_default_crigrad_is_more_class_sensitive_than_guided_backprop(mnist):
    model, images = mnist
    result = class_sensitivity(
        model, images, ["CriGrad", "GuidedBackprop"], measures=["spearman_abs"], seed=0
    )
    crigrad = result.mean("CriGrad", "spearman_abs")
    guided = result.mean("GuidedBackprop", "spearman_abs")
    assert crigrad < guided


@pytest.fixture(scope="module")
def randomized(mnist):
    model, images = mnist
    blocks = default_blocks(model, "module")
    random = randomize_model_parameters(model, blocks, init="reset", seed=0)
    return random, model(images).argmax(1)  # the trained model's classes


def _random_end(mnist, randomized, name):
    (model, images), (random, target) = mnist, randomized
    trained = gradient_map(model, images, name)
    after = gradient_map(random, images, name, target=target)
    return (
        float(spearman_abs(trained, after).mean()),
        float(ssim(trained, after).mean()),
    )


@pytest.mark.parametrize("name", ["FORGrad", "CriGrad+FORGrad"])
def test_default_forgrad_forgets_a_fully_randomised_model(mnist, randomized, name):
    spearman, similarity = _random_end(mnist, randomized, name)
    assert spearman < RANDOM_END_MAX and similarity < RANDOM_END_MAX
    # the check can fail: the old default cutoff, 15/224 of the size
    # (sigma 1.875 on 28 x 28), stays above the limit
    old, _ = _random_end(mnist, randomized, name + "@sigma=1.875")
    assert old > RANDOM_END_MAX > spearman


def test_default_forgrad_stays_class_sensitive(mnist):
    model, images = mnist
    names = ["Saliency", "FORGrad", "CriGrad+FORGrad"]
    result = class_sensitivity(model, images, names, measures=["spearman_abs"], seed=0)
    gradient = result.mean("Saliency", "spearman_abs")
    for name in ("FORGrad", "CriGrad+FORGrad"):
        assert result.mean(name, "spearman_abs") <= gradient + CLASS_MARGIN, name
