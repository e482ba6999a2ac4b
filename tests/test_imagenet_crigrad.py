"""CriGrad on a real ImageNet network at 224 px (issue 22): EfficientNet-Lite0
with its ImageNet weights on 8 photos of the shared assets. keep=1 is
Saliency, and the default passes both sanity tests by the rules of
docs/sanity.md (captum_crigrad.sanity.verdicts): not yet, see the xfail.
Skips without timm, the weights package or the photos."""

import pytest
import torch
from captum.attr import Saliency
from conftest import ASSETS
from helpers_imagenet import imagenet_photos, lite0_or_skip

from captum_crigrad import CriGradSaliency
from captum_crigrad.sanity import (
    class_sensitivity,
    class_sensitivity_verdict,
    random_other_class,
    randomization_verdict,
    sanity_check,
)
from captum_crigrad.sanity.verdicts import VERDICT_MEASURES


@pytest.fixture(scope="module")
def lite0_photos():
    model = lite0_or_skip()
    photos = imagenet_photos(ASSETS, 8)
    if photos is None:
        pytest.skip("imagenet_samples not found")
    x, _ = photos
    with torch.no_grad():
        predicted = model(x).argmax(1)
    return model, x, predicted


def test_keep_one_is_saliency(lite0_photos):
    model, x, target = lite0_photos
    ours = CriGradSaliency(model, keep=1.0).attribute(x, target=target)
    theirs = Saliency(model).attribute(x, target=target)
    assert ours.shape == (8, 3, 224, 224)
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6 * scale)
    # and the default is not Saliency (the filter does something at 224 px)
    default = CriGradSaliency(model).attribute(x, target=target)
    assert float((default - theirs).abs().max()) > 1e-3 * scale


@pytest.mark.xfail(
    strict=True,
    reason="measured on main: CriGrad's default fails rule 1(a) at 224 px on "
    "SSIM (end point 0.59, rule < 0.3; Spearman(|map|) 0.20 passes) while it "
    "passes class sensitivity; SSIM of a map this sparse with its own pixels "
    "shuffled is already 0.40 (docs/sanity_224.md). Issue 22 stays open on it.",
)
def test_default_passes_both_sanity_tests(lite0_photos):
    model, x, target = lite0_photos
    methods = ["GradientExplanation", "CriGrad"]  # CriGrad: its defaults
    randomised = sanity_check(
        model,
        x,
        methods,
        "cascading",
        granularity="block",
        target=target,
        measures=VERDICT_MEASURES,
        batch_size=8,
    )
    assert randomised.steps[0] == "classifier" and len(randomised.steps) == 21
    rnd = randomization_verdict(randomised, "CriGrad")
    assert rnd["passes"], rnd
    other = random_other_class(target, 1000, seed=0)
    classes = class_sensitivity(
        model,
        x,
        methods,
        target=target,
        other=other,
        measures=VERDICT_MEASURES,
        batch_size=8,
    )
    cls = class_sensitivity_verdict(classes, "CriGrad")
    assert cls["passes"], cls
    # the reference itself is class-sensitive and randomisation-sensitive
    assert randomization_verdict(randomised, "GradientExplanation")["end"]
