"""``captum-crigrad saliency`` end to end on a vision transformer (ViT-B/16)
and a ConvNeXt-T from locally saved random-weight state dicts (nothing
downloads), with a check that the overlays line up with the image: the map is
the CAM of the layer's patch grid upsampled to the image, and the overlay is
that map over the same crop of the image."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from PIL import Image
from skimage import data

from captum_crigrad.cam.gradcam import GradCAM
from captum_crigrad.cli import main
from captum_crigrad.io import read_images
from captum_crigrad.io.models import IMAGENET_MEAN, IMAGENET_STD
from captum_crigrad.io.overlay import overlay, scale_maps

pytestmark = pytest.mark.slow


def _random_state_dict(arch, path):
    """A random-weight state dict of ``arch``, drawn from a seeded generator
    (the architecture is built on the meta device: no weights allocated twice,
    no slow initialisation). torchvision's ViT starts with a zero head, which
    would make every map zero; these weights give non-trivial maps."""
    with torch.device("meta"):
        model = tvm.get_model(arch, num_classes=10)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, value in model.state_dict().items():
        if not value.is_floating_point():
            state[name] = torch.zeros(value.shape, dtype=value.dtype)
        elif value.dim() > 1:
            state[name] = torch.randn(value.shape, generator=gen) * 0.02
        else:  # biases and norm parameters
            offset = 1.0 if name.endswith("weight") else 0.0
            state[name] = offset + 0.1 * torch.randn(value.shape, generator=gen)
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)  # 451 x 300, not square
    return path


def _model(arch, state):
    model = tvm.get_model(arch, num_classes=10)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize(
    "arch, option, layer, grid",
    [  # ViT: the default layer; ConvNeXt: --layer overrides it (stage 3)
        ("vit_b_16", [], "encoder.layers.encoder_layer_11.ln_1", 14),
        ("convnext_tiny", ["--layer", "features.5"], "features.5", 14),
    ],
)
def test_saliency_command_on_a_transformer_and_a_convnext(
    tmp_path, capsys, cat, arch, option, layer, grid
):
    weights = tmp_path / f"{arch}.pth"
    state = _random_state_dict(arch, weights)
    model = _model(arch, state)
    out = tmp_path / "out"
    code = main(
        [
            "saliency",
            str(cat),
            "--model",
            arch,
            "--weights",
            str(weights),
            "--methods",
            "saliency,crigrad,gradcam,crigrad-gradcam,expectedgradcam",
            "--n-samples",
            "2",
            "--out",
            str(out),
            "--no-progress",
            *option,
        ]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "1 image(s) x 5 method(s)" in stdout

    # the image as the command reads it: centre crop, 224 x 224
    raw = read_images([str(cat)], 3, 224)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    x = (raw - mean) / std
    target = int(model(x).argmax())
    # Grad-CAM by hand on the default layer, the token layout spelled out
    # (pytorch-grad-cam's recipe): the saved map is its upsampling
    module = dict(model.named_modules())[layer]
    if arch == "vit_b_16":

        def reshape(t):
            return t[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)

        manual = GradCAM(model, module, reshape_transform=reshape)
    else:
        manual = GradCAM(model, module)
    cam = manual.attribute(x, target, relu_attributions=True)
    assert cam.shape == (1, 1, grid, grid) and cam.max() > 0
    expected = nn.functional.interpolate(
        cam, size=(224, 224), mode="bilinear", align_corners=False
    )
    saved = torch.load(out / "maps" / "gradcam.pt", weights_only=True)
    assert saved["maps"].shape == (1, 1, 224, 224)
    assert torch.allclose(saved["maps"], expected.detach(), rtol=1e-4, atol=1e-7)
    # the overlay is that map over the same crop of the image, pixel for pixel
    png = np.asarray(Image.open(out / "overlays" / "chelsea_gradcam.png"))
    assert png.shape == (224, 224, 3)
    assert np.array_equal(png, overlay(raw[0], scale_maps(saved["maps"])[0]))
    for name in ("saliency", "crigrad", "crigrad-gradcam", "expectedgradcam"):
        maps = torch.load(out / "maps" / f"{name}.pt", weights_only=True)["maps"]
        assert maps.shape == (1, 1, 224, 224) and torch.isfinite(maps).all()
