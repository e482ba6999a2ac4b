"""Side by side with Quantus and pytorch-grad-cam: our pixel flipping /
deletion, insertion and ROAD scores equal theirs on the same maps with the
same settings (the conventions, and how each is set on our side:
docs/interop.md).

* Quantus ``PixelFlipping(features_in_step=C m, perturb_baseline="black")``
  = our ``perturbation_curve(order="morf", mode="delete")`` with the
  fractions ``m/P, 2m/P, ..., 1`` (no clean image), replacement = each
  image's minimum (Quantus's "black"), ``score="probability"`` for
  ``softmax=True`` / ``"logit"`` for False; its AUC is ``np.trapz(dx=1)``
  over the steps, ours rescales the x-axis to [0, 1]: theirs = (S - 1) x
  ours. Arithmetic is the same (a constant written into the same pixels,
  the same softmax): equal to float32 rounding, 1e-6.
* pytorch-grad-cam ROAD (``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst``
  at percentile p, their ``NoisyLinearImputer(noise=0)``, scores
  after - before) = our ``road(fractions=road_fractions(p), noise=0)``
  ``.morf - original_scores``. The imputation is the same linear system;
  theirs is solved exactly (scipy ``spsolve``), ours by multigrid-CG to a
  relative residual of ``road_tol`` (default 1e-4). At 32 px the default
  leaves imputed pixels ~3e-5 from the exact solution and the scores agree
  to ~1e-7 (atol 1e-5); at 224 px it leaves ~1e-3 and moves EfficientNet-Lite0
  logits by up to ~4e-3, so that comparison runs with ``road_tol=1e-6``
  (pixels within ~2e-6, logits within ~2e-6: atol 2e-5).
  Noise cannot be compared draw for draw (theirs comes from torch's global
  generator, ours from per-image seeded generators): both sides use 0.
* Insertion with ROAD's imputation at fraction f = their LeRF at the
  matching percentile (keep the most relevant, impute the rest).
"""

import math
import warnings

import numpy as np
import pytest
import torch
from helpers_imagenet import imagenet_photos, load_efficientnet_lite0

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.interop.pytorch_grad_cam import road_fractions
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods.explain import explain, to_map
from captum_crigrad.metrics import perturbation_curve, road


def _setup(channels, size, n=8, lerf=False):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=channels, num_classes=10).eval()
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = model(x).argmax(1)
    maps = _tie_free(to_map(explain(model, x, "saliency", target)["saliency"]))
    _assert_no_ties(maps, lerf)
    return model, x, target, maps


def _tie_free(maps):
    """The maps' ranks (ties in raster order, our rule) divided by P: in
    (0, 1], as CAMs, ordering the pixels as the map does, without any tie
    for either side's tie rule (a float32 saliency map of a random network
    can hold two equal values)."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, stable=True).indices
    ranks = torch.empty_like(order).scatter_(
        1, order, torch.arange(flat.shape[1]).expand_as(order)
    )
    return ((ranks + 1).float() / flat.shape[1]).view_as(maps)


def _assert_no_ties(maps, lerf=True):
    """The comparisons assume no ties (tie rules differ, see the module
    docstring), with ``lerf`` none in 1 - map in float32 either
    (pytorch-grad-cam's LeRF orders 1 - map)."""
    for m in maps[:, 0].numpy():
        assert np.unique(m).size == m.size
        if lerf:
            assert np.unique(np.float32(1) - m).size == m.size


@pytest.mark.parametrize("channels,size", [(1, 32), (3, 48)])
@pytest.mark.parametrize("softmax", [True, False])
def test_pixel_flipping_equals_quantus(channels, size, softmax):
    quantus = pytest.importorskip("quantus")
    model, x, target, maps = _setup(channels, size)
    step = 16  # pixels per step; Quantus counts channel values: C * 16
    metric = quantus.PixelFlipping(
        features_in_step=channels * step,
        perturb_baseline="black",
        disable_warnings=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = np.asarray(
            metric(
                model=model,
                x_batch=x.numpy(),
                y_batch=target.numpy(),
                a_batch=maps.numpy(),
                device="cpu",
                softmax=softmax,
            )
        )
    pixels = size * size
    fractions = [(s + 1) * step / pixels for s in range(pixels // step)]
    ours = perturbation_curve(
        model,
        x,
        maps,
        fractions=fractions,
        order="morf",
        mode="delete",
        replacement=x.amin(dim=(1, 2, 3), keepdim=True),  # Quantus's "black"
        score="probability" if softmax else "logit",
        target=target,
    )
    assert theirs.shape == tuple(ours.scores.shape) == (8, pixels // step)
    np.testing.assert_allclose(ours.scores.numpy(), theirs, rtol=0, atol=1e-6)
    # the AUC rules: Quantus's calculate_auc is np.trapz(dx=1) over the steps
    # (np.trapz is gone in numpy 2.4, so it is written out here), ours is
    # over the fractions rescaled to [0, 1]
    their_auc = np.trapezoid(theirs, dx=1, axis=1)
    steps = ours.scores.shape[1]
    np.testing.assert_allclose(
        ours.auc().numpy() * (steps - 1), their_auc, rtol=1e-5, atol=1e-6
    )


def _their_road(x, maps, target, model, percentiles, logit):
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import (
        ClassifierOutputSoftmaxTarget,
        ClassifierOutputTarget,
    )

    kind = ClassifierOutputTarget if logit else ClassifierOutputSoftmaxTarget
    targets = [kind(int(c)) for c in target]
    cams = maps[:, 0].numpy()
    out = {}
    for name, remove in (
        ("morf", RemoveMostRelevantFirst),
        ("lerf", RemoveLeastRelevantFirst),
    ):
        out[name] = np.stack(
            [
                PerturbationConfidenceMetric(remove(p, NoisyLinearImputer(noise=0.0)))(
                    x, cams, targets, model
                )
                for p in percentiles
            ],
            axis=1,
        )
    return out


def _compare_road(model, x, target, maps, percentiles, atol, road_tol=None):
    size = x.shape[-2:]
    fractions = road_fractions(percentiles, *size)
    for logit in (True, False):
        score = "logit" if logit else "probability"
        theirs = _their_road(x, maps, target, model, percentiles, logit)
        ours = road(
            model,
            x,
            maps,
            fractions=fractions,
            noise=0.0,
            score=score,
            target=target,
            road_tol=road_tol,
        )
        clean = ours.original_scores[:, None]
        np.testing.assert_allclose(
            (ours.morf - clean).numpy(), theirs["morf"], rtol=0, atol=atol
        )
        np.testing.assert_allclose(
            (ours.lerf - clean).numpy(), theirs["lerf"], rtol=0, atol=atol
        )
        # ROADCombined: mean over percentiles of (LeRF - MoRF) / 2
        np.testing.assert_allclose(
            ours.combined.numpy(),
            ((theirs["lerf"] - theirs["morf"]) / 2).mean(1),
            rtol=0,
            atol=atol,
        )
        # insertion with ROAD's imputation = their LeRF (most relevant kept)
        inserted = perturbation_curve(
            model,
            x,
            maps,
            fractions=[1 - f for f in reversed(fractions)],
            mode="insert",
            order="morf",
            replacement="road",
            road_noise=0.0,
            road_tol=road_tol,
            score=score,
            target=target,
        )
        np.testing.assert_allclose(
            (inserted.scores.flip(1) - clean).numpy(),
            theirs["lerf"],
            rtol=0,
            atol=atol,
        )
        assert np.abs(theirs["morf"]).max() > 100 * atol  # the scores move


def test_road_equals_pytorch_grad_cam_small_cnn():
    pytest.importorskip("pytorch_grad_cam")
    model, x, target, maps = _setup(3, 32, lerf=True)
    _compare_road(model, x, target, maps, [90, 70, 50, 30, 10], atol=1e-5)


def test_road_equals_pytorch_grad_cam_efficientnet_lite0_224(assets):
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("timm")
    model = load_efficientnet_lite0()
    photos = imagenet_photos(assets, 2)
    if model is None or photos is None:
        pytest.skip("EfficientNet-Lite0 weights or ImageNet photos not available")
    x, labels = photos
    maps = to_map(explain(model, x, "saliency", labels)["saliency"])
    # 50176 float32 values of a saliency map have a few ties
    maps = _tie_free(maps)
    _assert_no_ties(maps)
    # our default solve (relative residual 1e-4) leaves imputed pixels ~1e-3
    # from the exact solution at 224 px, which moves a logit by up to ~4e-3;
    # road_tol=1e-6 is the exact solve to ~2e-6 per pixel
    _compare_road(model, x, labels, maps, [70, 30], atol=2e-5, road_tol=1e-6)


def test_road_fractions_reproduce_the_percentile_rule():
    gen = np.random.default_rng(0)
    for h, w in ((32, 32), (224, 224), (7, 11)):
        cam = gen.random((h, w)).astype(np.float32)
        percentiles = [99, 90, 73.5, 50, 20, 10, 1, 0, 100]
        for p, f in zip(percentiles, road_fractions(percentiles, h, w), strict=True):
            removed = int((cam >= np.percentile(cam, p)).sum())
            assert math.floor(f * h * w + 0.5) == removed, (h, w, p)
    with pytest.raises(InvalidValueError, match="percentiles"):
        road_fractions([120], 4, 4)
    with pytest.raises(InvalidValueError, match="height"):
        road_fractions([50], 0, 4)


def test_road_tol_is_checked_and_tightens_the_solve():
    model, x, target, maps = _setup(3, 32, n=2)
    with pytest.raises(InvalidValueError, match="road_tol"):
        road(model, x, maps, fractions=[0.5], road_tol=0.0)
    loose = road(model, x, maps, fractions=[0.5], noise=0.0, road_tol=1e-1)
    tight = road(model, x, maps, fractions=[0.5], noise=0.0, road_tol=1e-8)
    default = road(model, x, maps, fractions=[0.5], noise=0.0)
    assert not torch.equal(loose.morf, tight.morf)
    assert torch.allclose(default.morf, tight.morf, atol=1e-5)
