"""The same method and options give the same map through every entry point:
the Python class, ``explain``, ``gradient_map`` and the command line
(issue 11: "one rule in one place"; to 1e-6)."""

import pytest
import torch
from captum.attr import LayerGradCam

from captum_crigrad import CriGradLayerGradCam, CriGradSaliency, forgrad
from captum_crigrad.cli import build_parser, main
from captum_crigrad.cli._inputs import load_inputs
from captum_crigrad.forgrad.attr import FORGradLayerGradCam
from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.io.overlay import save_png
from captum_crigrad.methods.explain import ExplainOptions, explain
from captum_crigrad.sanity.gradient_maps import gradient_map, to_single_channel

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")

N = 4


@pytest.fixture(scope="module")
def setup():
    model = load_default_model().eval()
    images, _ = load_default_images()
    x = images[:N]
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def test_crigrad_saliency_same_everywhere(setup, tmp_path):
    model, x, target = setup
    keep = 0.3
    cls = CriGradSaliency(model, keep=keep).attribute(
        x.clone(), target=target, abs=False
    )
    exp = explain(
        model, x, "crigrad-saliency", target=target, options=ExplainOptions(keep=keep)
    )["crigrad-saliency"]
    torch.testing.assert_close(exp, cls, atol=1e-6, rtol=0)
    # gradient_map: MATLAB's single-channel map of the same (default keep)
    cls_default = CriGradSaliency(model).attribute(x.clone(), target=target, abs=False)
    gm = gradient_map(model, x, "CriGrad", target=target)
    torch.testing.assert_close(gm, to_single_channel(cls_default), atol=1e-6, rtol=0)
    # the command line, on image files: the same images as its loader reads
    # them, the class it predicts
    files = []
    raw, _ = load_default_images(normalized=False)
    for i in range(N):
        path = tmp_path / f"digit{i}.png"
        rgb = raw[i].expand(3, -1, -1).permute(1, 2, 0).mul(255).round()
        save_png(str(path), rgb.to(torch.uint8).numpy())
        files.append(str(path))
    argv = ["saliency", *files, "--methods", "crigrad-saliency", "--keep", str(keep)]
    argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 0
    saved = torch.load(tmp_path / "out" / "maps" / "crigrad-saliency.pt")
    loaded = load_inputs(build_parser().parse_args(argv))
    images = loaded.images
    with torch.no_grad():
        predicted = loaded.model(images).argmax(1)
    ref = CriGradSaliency(loaded.model, keep=keep).attribute(
        images.clone(), target=predicted, abs=False
    )
    torch.testing.assert_close(saved["attributions"], ref, atol=1e-6, rtol=0)


def test_crigrad_gradcam_same_everywhere(setup, tmp_path):
    """Grad-CAM with CriGrad above the layer, and FORGrad on it: one rule."""
    model, x, target = setup
    layer_name = "features"
    layer = dict(model.named_modules())[layer_name]
    keep = 0.3
    cam = CriGradLayerGradCam(model, layer, keep=keep).attribute(
        x, target=target, relu_attributions=True
    )
    up = torch.nn.functional.interpolate(
        cam, size=x.shape[-2:], mode="bilinear", align_corners=False
    )
    exp = explain(
        model,
        x,
        "crigrad-gradcam",
        target=target,
        options=ExplainOptions(keep=keep, layer=layer_name),
    )["crigrad-gradcam"]
    torch.testing.assert_close(exp, up, atol=1e-6, rtol=0)
    assert not torch.allclose(cam, LayerGradCam(model, layer).attribute(x, target))
    from captum_crigrad import CriGrad

    both = FORGradLayerGradCam(
        model, layer, transform=CriGrad(keep=keep), post="none"
    ).attribute(x, target=target, relu_attributions=True)
    # after CriGrad, FORGrad's default cutoff is the energy rule with 0.9
    after_crigrad = forgrad(up, energy=0.9, post="none")
    torch.testing.assert_close(both, after_crigrad, atol=1e-6, rtol=0)
    exp_f = explain(
        model,
        x,
        "crigrad-forgrad-gradcam",
        target=target,
        options=ExplainOptions(keep=keep, layer=layer_name, forgrad_post="none"),
    )["crigrad-forgrad-gradcam"]
    torch.testing.assert_close(exp_f, both, atol=1e-6, rtol=0)
