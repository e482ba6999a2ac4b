"""Side by side with pytorch-grad-cam: our GradCAM and GradCAMPlusPlus give
its GradCAM and GradCAMPlusPlus maps to 1e-5, on EfficientNet-Lite0 with the
real ImageNet weights at 224 px and on a timm ViT with its reshape_transform.

Like with like (docs/interop.md): their maps are ReLU'd, min-max scaled to
[0, 1] (1e-7 in the denominator), resized bilinearly and scaled again
(:func:`scale_like_pytorch_grad_cam` does that to ours), and their Grad-CAM++
adds 1e-6 to the denominator of a_kij (``denominator_eps=1e-6`` on ours).
Target: the logit of the same class (their ClassifierOutputTarget).
"""

import numpy as np
import pytest
import torch
from helpers import assert_untouched, snapshot
from helpers_imagenet import imagenet_photos, lite0_or_skip

from captum_crigrad.cam import GradCAM, GradCAMPlusPlus
from captum_crigrad.cam.ops import gradcam_pp_weights
from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError
from captum_crigrad.interop.pytorch_grad_cam import (
    GRADCAM_PP_EPS,
    scale_like_pytorch_grad_cam,
)

TOL = 1e-5


def _theirs(cls, model, layer, x, target, **kwargs):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cls(model, [layer], **kwargs) as cam:
        return cam(x, [ClassifierOutputTarget(int(c)) for c in target])


def _ours(kind, model, layer, x, target, **kwargs):
    if kind == "gradcam":
        raw = GradCAM(model, layer, **kwargs).attribute(x, target=target)
    else:
        raw = GradCAMPlusPlus(
            model, layer, denominator_eps=GRADCAM_PP_EPS, **kwargs
        ).attribute(x, target=target, relu_attributions=False)
    return scale_like_pytorch_grad_cam(raw, x.shape[-2:])[:, 0].numpy()


def _pairs():
    pgc = pytest.importorskip("pytorch_grad_cam")
    return [("gradcam", pgc.GradCAM), ("gradcampp", pgc.GradCAMPlusPlus)]


@pytest.fixture(scope="module")
def lite0():
    return lite0_or_skip()


def test_efficientnet_lite0_224_matches_pytorch_grad_cam(lite0, assets):
    pairs = _pairs()
    photos = imagenet_photos(assets, 8)
    if photos is None:
        pytest.skip("imagenet_samples not found")
    x, labels = photos
    with torch.no_grad():
        predicted = lite0(x).argmax(1)
    assert int((predicted == labels).sum()) >= 5  # the real weights are loaded
    x, labels, predicted = x[3:6], labels[3:6], predicted[3:6]
    layer = lite0.bn2  # the last feature map, our default_cam_layer
    for target in (predicted, labels.flip(0)):  # predicted and another class
        for kind, theirs_cls in pairs:
            theirs = _theirs(theirs_cls, lite0, layer, x, target)
            lite0.zero_grad(set_to_none=True)  # they leave parameter grads
            snap = snapshot(lite0)
            ours = _ours(kind, lite0, layer, x, target)
            assert_untouched(lite0, snap)
            assert ours.shape == theirs.shape == (3, 224, 224)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL, err_msg=kind)
            assert theirs.max() > 0.99  # a real, non-constant map


def test_grad_cam_pp_differs_without_their_epsilon(lite0, assets):
    """The 1e-6 is a real difference on this model (its layer gradients are
    about 1e-3), which is why it is an option, default 0."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    photos = imagenet_photos(assets, 2)
    if photos is None:
        pytest.skip("imagenet_samples not found")
    x, labels = photos
    theirs = _theirs(pgc.GradCAMPlusPlus, lite0, lite0.bn2, x, labels)
    raw = GradCAMPlusPlus(lite0, lite0.bn2).attribute(x, target=labels)
    ours = scale_like_pytorch_grad_cam(raw, (224, 224))[:, 0].numpy()
    assert np.abs(ours - theirs).max() > 1e-3


def _vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, depth=2, num_classes=10
    )
    return model.eval()


def test_vit_matches_pytorch_grad_cam_with_reshape_transform():
    pairs = _pairs()
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    model = _vit()
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 3, 7])
    # pytorch-grad-cam's recommended ViT layer: the last block's first norm
    # (the block output's patch tokens get no gradient through the class token)
    layer = model.blocks[-1].norm1
    for kind, theirs_cls in pairs:
        theirs = _theirs(
            theirs_cls, model, layer, x, target, reshape_transform=vit_reshape_transform
        )
        # ours reads the (N, 1 + 196, D) tokens by itself (class token dropped,
        # 14 x 14 row by row), and takes their reshape_transform too
        inferred = _ours(kind, model, layer, x, target)
        given = _ours(
            kind, model, layer, x, target, reshape_transform=vit_reshape_transform
        )
        np.testing.assert_allclose(inferred, theirs, rtol=0, atol=TOL, err_msg=kind)
        np.testing.assert_allclose(given, theirs, rtol=0, atol=TOL, err_msg=kind)
        assert theirs.max() > 0.99


def test_scaling_and_epsilon_options_are_checked():
    maps = torch.rand(2, 1, 7, 7)
    out = scale_like_pytorch_grad_cam(maps, (28, 28))
    assert out.shape == (2, 1, 28, 28)
    assert float(out.min()) == 0.0 and abs(float(out.amax()) - 1.0) < 1e-6
    with pytest.raises(InvalidValueError, match="maps"):
        scale_like_pytorch_grad_cam(torch.rand(2, 3, 7, 7))
    with pytest.raises(InvalidValueError, match="size"):
        scale_like_pytorch_grad_cam(maps, (28,))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    with pytest.raises(InvalidValueError, match="denominator_eps"):
        GradCAMPlusPlus(model, model[0], denominator_eps=-1.0)
    with pytest.raises(InvalidTypeError, match="denominator_eps"):
        GradCAMPlusPlus(model, model[0], denominator_eps="big")
    # eps=0 is the formula as it was, bit for bit
    g, a = torch.randn(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    assert torch.equal(gradcam_pp_weights(g, a), gradcam_pp_weights(g, a, eps=0.0))
    assert not torch.equal(gradcam_pp_weights(g, a), gradcam_pp_weights(g, a, 1e-6))
