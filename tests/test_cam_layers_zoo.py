"""Default CAM layers of timm and transformers image classifiers, by name.

Random-init models (no downloads), small variants and small inputs. For each
family the test writes the expected module path and the expected CAM grid,
and checks that Grad-CAM at the default layer gives a map of that grid which
is not all zero. docs/cam_layers.md has the same table with the reasons.
"""

import pytest
import torch
import torch.nn as nn
from helpers import assert_untouched, snapshot

from captum_crigrad import GradCAM, default_cam_layer
from captum_crigrad.core.validation import resolve_layer

timm = pytest.importorskip("timm")

# family: (timm name, create_model kwargs, input size, layer, CAM grid)
TIMM = {
    "resnet": ("resnet18", {}, 64, "layer4", (2, 2)),
    "efficientnet": ("efficientnet_lite0", {}, 64, "bn2", (2, 2)),
    "mobilenetv3": ("mobilenetv3_small_100", {}, 64, "blocks.5", (2, 2)),
    "regnet": ("regnetx_002", {}, 64, "s4", (2, 2)),
    "convnext": ("convnext_atto", {}, 64, "stages.3", (2, 2)),
    "vit": ("vit_tiny_patch16_224", {"img_size": 64}, 64, "blocks.11.norm1", (4, 4)),
    "deit": (
        "deit_tiny_distilled_patch16_224",  # class and distillation tokens
        {"img_size": 64},
        64,
        "blocks.11.norm1",
        (4, 4),
    ),
    "swin": (
        "swin_tiny_patch4_window7_224",
        {
            "img_size": 64,
            "window_size": 4,
            "embed_dim": 32,
            "depths": (1, 1, 2, 1),
            "num_heads": (1, 2, 4, 8),
        },
        64,
        "layers.3",
        (2, 2),
    ),
    "levit": ("levit_128s", {"img_size": 128}, 128, "stages.2", (2, 2)),
    "coatnet": ("coatnet_nano_rw_224", {"img_size": 64}, 64, "stages.3", (2, 2)),
    "mobilevit": ("mobilevit_xxs", {}, 64, "final_conv", (2, 2)),
}


def _timm_model(family):
    name, kwargs, size, _, _ = TIMM[family]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return model.eval(), x


def _check_cam(model, layer_name, x, grid):
    cam = GradCAM(model, resolve_layer(model, layer_name)).attribute(x, 1)
    assert tuple(cam.shape) == (2, 1, *grid)
    assert torch.isfinite(cam).all()
    assert cam.abs().sum() > 0  # a map, not the zeros of an unread layer
    return cam


@pytest.mark.parametrize("family", list(TIMM))
def test_default_cam_layer_of_timm_family(family):
    model, x = _timm_model(family)
    _, _, _, layer, grid = TIMM[family]
    snap = snapshot(model)
    assert default_cam_layer(model, x) == layer
    assert_untouched(model, snap)  # hooks removed, mode kept
    _check_cam(model, layer, x, grid)
    with torch.no_grad():  # the grid is that of the final feature map
        features = model.forward_features(x)
    if features.dim() == 4:
        swin = family == "swin"  # timm's Swin stages are channels-last
        assert tuple(features.shape[1:3] if swin else features.shape[2:]) == grid
    else:  # tokens: the grid's positions, after any class/distillation tokens
        prefix = getattr(model, "num_prefix_tokens", 0)
        assert features.shape[1] - prefix == grid[0] * grid[1]


def test_timm_model_in_a_wrapper_gets_prefixed_names():
    model, x = _timm_model("levit")
    wrapper = nn.Sequential(nn.Identity(), model)  # e.g. a normalisation first
    assert default_cam_layer(wrapper, x) == "1.stages.2"
    assert default_cam_layer(wrapper.train(), x) == "1.stages.2"
    assert wrapper.training and model.training  # the train flag is kept


def test_class_token_models_use_the_last_blocks_input_norm():
    # ViT's head reads the class token after the last block, so the patch
    # tokens of that block's output get exactly zero gradient: Grad-CAM there
    # is all zero, which is why the default is blocks[-1].norm1
    model, x = _timm_model("vit")
    at_output = GradCAM(model, model.blocks[-1]).attribute(x, 1)
    assert tuple(at_output.shape) == (2, 1, 4, 4)
    assert torch.count_nonzero(at_output) == 0
    _check_cam(model, default_cam_layer(model, x), x, (4, 4))


class _ConvStemTokens(nn.Module):
    """A LeViT-like model outside timm: a convolutional stem, then token
    blocks pooled by a mean; no default can be trusted."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8)),
            nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8)),
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.blocks(t).mean(1))


def test_no_confident_default_asks_for_layer_and_names_candidates():
    model = _ConvStemTokens().train()
    snap = snapshot(model)
    with pytest.raises(ValueError, match="layer=") as info:
        default_cam_layer(model, torch.randn(1, 3, 16, 16))
    message = str(info.value)
    assert "'blocks.1'" in message and "'stem'" in message
    assert "token outputs" in message
    assert_untouched(model, snap)


def test_probe_does_not_read_the_model_output():
    # the one probing forward pass ignores what the model returns, so a
    # model returning a mapping (or a ModelOutput, a tuple) is probed alike
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return {"logits": self.fc(self.pool(self.body(x)).flatten(1))}

    assert default_cam_layer(DictNet(), torch.randn(1, 3, 8, 8)) == "body"


# ------------------------------------------------------------ transformers
class _Logits(nn.Module):
    """What a user writes today: the HF model's ``.logits`` as a tensor."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(pixel_values=x).logits


def _hf(kind):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "vit":
        config = tf.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=5,
        )
        return tf.ViTForImageClassification(config).eval(), 32
    if kind == "convnext":
        config = tf.ConvNextConfig(
            hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=5
        )
        return tf.ConvNextForImageClassification(config).eval(), 64
    config = tf.SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 2, 4],
        window_size=2,
        num_labels=5,
    )
    return tf.SwinForImageClassification(config).eval(), 64


# kind: (default layer of the unwrapped model, CAM grid)
HF = {
    "vit": ("vit.layers.1.layernorm_before", (4, 4)),
    "convnext": ("convnext.encoder.stages.3", (2, 2)),
    "swin": ("swin.layernorm", (2, 2)),
}


@pytest.mark.parametrize("kind", list(HF))
def test_default_cam_layer_of_transformers_model(kind):
    net, size = _hf(kind)
    layer, grid = HF[kind]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    snap = snapshot(net)
    assert default_cam_layer(net, x) == layer  # the model itself, unwrapped
    wrapped = _Logits(net)
    assert default_cam_layer(wrapped, x) == "net." + layer
    assert_untouched(net, snap)
    _check_cam(wrapped, "net." + layer, x, grid)


def test_transformers_vit_last_layer_output_gives_a_zero_map():
    net, size = _hf("vit")
    wrapped = _Logits(net)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(wrapped, net.vit.layers[-1]).attribute(x, 1)
    assert tuple(cam.shape) == (2, 1, 4, 4) and torch.count_nonzero(cam) == 0


def test_wrapper_with_two_zoo_models_falls_back_to_the_generic_rule():
    a, _ = _timm_model("resnet")
    b, x = _timm_model("resnet")

    class Ensemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, x):
            return self.a(x) + self.b(x)

    # no single zoo model to follow: the last 4-D map before the last pooling
    assert default_cam_layer(Ensemble(), x) == "b.layer4"


def _zoo():
    for family in TIMM:
        yield f"timm-{family}", lambda f=family: _timm_model(f)
    for kind in HF:

        def build(k=kind):
            net, size = _hf(k)
            g = torch.Generator().manual_seed(1)
            return net, torch.randn(2, 3, size, size, generator=g)

        yield f"transformers-{kind}", build


@pytest.mark.parametrize("name, build", list(_zoo()), ids=[n for n, _ in _zoo()])
def test_the_four_classes_run_on_every_family_with_no_glue(name, build):
    """CriGradSaliency, FORGradSaliency, GradCAM and ExpectedGradCAM on the
    model as the zoo gives it (a transformers model returns a ModelOutput),
    at the default CAM layer, leaving the model as it was."""
    from captum_crigrad import CriGradSaliency, ExpectedGradCAM, FORGradSaliency

    model, x = build()
    snap = snapshot(model)
    layer = resolve_layer(model, default_cam_layer(model, x))
    saliency = CriGradSaliency(model).attribute(x, target=1)
    assert saliency.shape == x.shape and torch.isfinite(saliency).all()
    assert saliency.abs().sum() > 0
    filtered = FORGradSaliency(model).attribute(x, target=1)
    assert filtered.shape == (2, 1, *x.shape[2:]) and torch.isfinite(filtered).all()
    cam = GradCAM(model, layer).attribute(x, target=1)
    expected = ExpectedGradCAM(model, layer).attribute(
        x, target=1, n_samples=2, generator=torch.Generator().manual_seed(0)
    )
    assert cam.shape == expected.shape and cam.dim() == 4 and cam.shape[:2] == (2, 1)
    assert torch.isfinite(expected).all()
    assert_untouched(model, snap)
