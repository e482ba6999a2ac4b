"""Layer outputs as (B, C, h, w) maps (captum_crigrad.cam.layout) and the
default CAM layer (captum_crigrad.cam.layers)."""

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from captum.attr import LayerGradCam
from helpers import TinyCNN, assert_untouched, snapshot
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from captum_crigrad import (
    CriGradLayerGradCam,
    ExpectedGradCAM,
    FORGradLayerGradCam,
    GradCAM,
    GradCAMPlusPlus,
    IntegratedGradCAM,
    default_cam_layer,
)
from captum_crigrad.cam.layout import SpatialLayout, spatial_layout
from captum_crigrad.forgrad.filter import forgrad


def _vit():
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
        num_classes=5,
    ).eval()


def _swin():
    torch.manual_seed(0)
    return SwinTransformer(
        patch_size=[4, 4],
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=[2, 2],
        num_classes=5,
    ).eval()


def _vit_tokens(t):  # pytorch-grad-cam's ViT recipe for a 4x4 patch grid
    return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)


def _gelus(model):
    return [m for m in model.modules() if isinstance(m, nn.GELU)]


def test_channels_first_layers_give_captums_result_exactly():
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(3, 3, 8, 8)
    target = torch.tensor([0, 4, 2])
    for layer in (model.conv1, model.conv2, model.relu):
        for kwargs in (
            {},
            dict(relu_attributions=True),
            dict(attr_dim_summation=False),
            dict(attribute_to_layer_input=True),
        ):
            ours = GradCAM(model, layer).attribute(x, target, **kwargs)
            theirs = LayerGradCam(model, layer).attribute(x, target, **kwargs)
            assert torch.equal(ours, theirs), (layer, kwargs)
    # non-image inputs and 2-D outputs keep Captum's reading
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    v = torch.randn(2, 3)
    assert torch.equal(
        GradCAM(mlp, mlp[0]).attribute(v, 1), LayerGradCam(mlp, mlp[0]).attribute(v, 1)
    )


def test_captums_own_grad_cam_example_where_both_layouts_fit():
    # Captum's test_simple_input_conv: a (1, 2, 2, 2) output of a 4x4 input
    # reads as a grid both ways; a convolution is channels-first.
    class OneConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 3, 1)
            self.relu1 = nn.ReLU()
            self.fc1 = nn.Linear(8, 4)
            self.conv1.weight = nn.Parameter(torch.ones(2, 1, 3, 3))
            self.conv1.bias = nn.Parameter(torch.tensor([-50.0, -75.0]))
            self.fc1.weight = nn.Parameter(
                torch.cat([torch.ones(4, 5), -1 * torch.ones(4, 3)], dim=1)
            )
            self.fc1.bias = nn.Parameter(torch.zeros(4))

        def forward(self, x):
            x = self.relu1(self.conv1(x))
            return self.fc1(x.view(-1, 8))

    net = OneConv()
    inp = torch.arange(16).view(1, 1, 4, 4).float()
    for layer in (net.conv1, net.relu1):
        assert spatial_layout(net.conv1(inp), layer, (4, 4)).kind == "channels_first"
    cam = GradCAM(net, net.conv1).attribute(inp, target=0)
    assert torch.allclose(cam[0, 0], torch.tensor([[11.25, 13.5], [20.25, 22.5]]))


def test_vit_tokens_become_the_patch_grid_in_row_major_order():
    model = _vit()
    with torch.no_grad():  # tokens entering the encoder = the patch embedding
        model.class_token.zero_()
        model.encoder.pos_embedding.zero_()
    x = torch.randn(2, 3, 32, 32)
    seen = {}
    handles = [
        model.conv_proj.register_forward_hook(lambda m, i, o: seen.update(patch=o)),
        model.encoder.layers[0].register_forward_hook(
            lambda m, i, o: seen.update(tokens=i[0])
        ),
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    layout = spatial_layout(
        seen["tokens"], model.encoder.layers[0], (32, 32), model, where="input"
    )
    assert layout == SpatialLayout("tokens", grid=(4, 4), prefix_tokens=1)
    assert torch.equal(layout(seen["tokens"]), seen["patch"])


def test_vit_gradcam_is_a_map_on_the_patch_grid():
    model = _vit()
    layer = model.encoder.layers[-1].ln_1
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([1, 3])
    cam = GradCAM(model, layer).attribute(x, target)
    assert cam.shape == (2, 1, 4, 4)
    manual = GradCAM(model, layer, reshape_transform=_vit_tokens).attribute(x, target)
    assert torch.equal(cam, manual)
    # Captum's own LayerGradCam reads tokens as channels: a (2, 1, 16) "map"
    assert LayerGradCam(model, layer).attribute(x, target).shape == (2, 1, 16)


def test_swin_channels_last_stage_gives_a_real_map():
    # the case: Swin's last stage at 64x64 is (B, 2, 2, C)
    model = _swin()
    x = torch.randn(1, 3, 64, 64)
    stage = model.features[-1]
    assert LayerGradCam(model, stage).attribute(x, 2).shape == (1, 1, 2, 64)  # wrong
    cam = GradCAM(model, stage).attribute(x, 2)
    assert cam.shape == (1, 1, 2, 2)
    manual = GradCAM(
        model, stage, reshape_transform=lambda t: t.permute(0, 3, 1, 2)
    ).attribute(x, 2)
    assert torch.equal(cam, manual)
    # every channels-last module of the model reads the same way
    for layer, size in (
        (model.features[0], 16),  # Conv2d, Permute, LayerNorm
        (model.features[2], 8),  # PatchMerging
        (model.features[-1][-1].norm1, 2),  # a LayerNorm inside a block
    ):
        assert GradCAM(model, layer).attribute(x, 2).shape == (1, 1, size, size)


def test_every_cam_uses_the_same_conversion():
    model = _vit()
    layer = model.encoder.layers[-1].ln_1
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([0, 2])
    gradcam = GradCAM(model, layer).attribute(x, target, relu_attributions=True)
    crigrad = CriGradLayerGradCam(model, layer, keep=1.0, layers=_gelus(model))
    assert torch.equal(crigrad.attribute(x, target, relu_attributions=True), gradcam)
    forgrad_cam = FORGradLayerGradCam(model, layer).attribute(x, target)
    up = nn.functional.interpolate(
        GradCAM(model, layer).attribute(x, target),
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
    )
    assert torch.allclose(forgrad_cam, forgrad(up, post="relu"))
    # Expected Grad-CAM without completeness, with D = {x} and no noise, is
    # Grad-CAM
    egc = ExpectedGradCAM(model, layer).attribute(
        x, target, baselines=x, n_samples=2, stdevs=0.0, completeness=False
    )
    assert torch.allclose(egc, gradcam, atol=1e-6)
    for cls, kwargs in (
        (GradCAMPlusPlus, {}),
        (IntegratedGradCAM, dict(n_steps=3)),
        (ExpectedGradCAM, dict(n_samples=3, generator=0)),
    ):
        inferred = cls(model, layer).attribute(x, target, **kwargs)
        manual = cls(model, layer, reshape_transform=_vit_tokens).attribute(
            x, target, **kwargs
        )
        assert inferred.shape == (2, 1, 4, 4)
        assert torch.equal(inferred, manual), cls.__name__


class _PatchTokens(nn.Module):
    """Tokens without a class token on a non-square image: (B, h w, D)."""

    def __init__(self, patchify="conv"):
        super().__init__()
        self.patchify = patchify
        self.embed = (
            nn.Conv2d(3, 6, 8, stride=8) if patchify == "conv" else nn.Linear(192, 6)
        )
        self.block = nn.Sequential(nn.LayerNorm(6), nn.Linear(6, 6), nn.GELU())
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        if self.patchify == "conv":
            tokens = self.embed(x).flatten(2).transpose(1, 2)
        else:  # (B, 3*8*8, L) patches through a Linear, no convolution
            patches = nn.functional.unfold(x, 8, stride=8).transpose(1, 2)
            tokens = self.embed(patches)
        return self.head(self.block(tokens).mean(1))


@pytest.mark.parametrize("patchify", ["conv", "linear"])
def test_tokens_without_class_token_on_a_non_square_image(patchify):
    torch.manual_seed(0)
    model = _PatchTokens(patchify).eval()
    x = torch.randn(2, 3, 16, 32)  # a 2x4 patch grid
    cam = GradCAM(model, model.block).attribute(x, 1)
    assert cam.shape == (2, 1, 2, 4)
    manual = GradCAM(
        model,
        model.block,
        reshape_transform=lambda t: t.reshape(t.shape[0], 2, 4, 6).permute(0, 3, 1, 2),
    ).attribute(x, 1)
    assert torch.equal(cam, manual)


class _TimmStyleViT(nn.Module):
    """timm's layout: patch_embed.proj, class and distillation tokens first,
    blocks[i].norm1."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.tokens = nn.Parameter(torch.randn(1, 2, 8))  # class, distillation
        self.blocks = nn.Sequential(*[nn.Module() for _ in range(2)])
        for block in self.blocks:
            block.norm1 = nn.LayerNorm(8)
            block.mlp = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.tokens.expand(x.shape[0], -1, -1), t], 1)
        for block in self.blocks:
            t = t + block.mlp(block.norm1(t)).mean(1, keepdim=True)
        return self.head(t[:, 0])


def test_timm_style_transformer_with_two_prefix_tokens():
    torch.manual_seed(0)
    model = _TimmStyleViT().eval()
    x = torch.randn(2, 3, 16, 24)  # a 4 x 6 patch grid, 2 + 24 tokens
    assert default_cam_layer(model, x) == "blocks.1.norm1"
    layer = model.blocks[1].norm1
    cam = GradCAM(model, layer).attribute(x, 1)
    assert cam.shape == (2, 1, 4, 6)
    manual = GradCAM(
        model,
        layer,
        reshape_transform=lambda t: t[:, 2:].reshape(2, 4, 6, 8).permute(0, 3, 1, 2),
    ).attribute(x, 1)
    assert torch.equal(cam, manual)


def test_unreadable_layouts_raise_errors_naming_reshape_transform():
    swin = _swin()
    x = torch.randn(1, 3, 64, 64)
    snap = snapshot(swin)
    gelu = swin.features[-1][-1].mlp[1]  # (1, 2, 2, 4C): no sign of its layout
    for cam in (GradCAM(swin, gelu), GradCAMPlusPlus(swin, gelu)):
        with pytest.raises(ValueError, match="reshape_transform"):
            cam.attribute(x, 0)
    assert_untouched(swin, snap)
    # tokens that fit no grid: 2x4 patches of a 20x36 image (border dropped),
    # and no patch embedding to say so
    model = _PatchTokens("linear").eval()
    with pytest.raises(ValueError, match="reshape_transform"):
        GradCAM(model, model.block).attribute(torch.randn(1, 3, 20, 36), 0)
    vit = _vit()
    layer = vit.encoder.layers[-1].ln_1
    with pytest.raises(ValueError, match="reshape_transform: returned"):
        GradCAM(vit, layer, reshape_transform=lambda t: t[:, 1:]).attribute(
            torch.randn(1, 3, 32, 32), 0
        )
    with pytest.raises(TypeError, match="reshape_transform"):
        GradCAM(vit, layer, reshape_transform="tokens")
    with pytest.raises(TypeError, match="reshape_transform"):
        ExpectedGradCAM(vit, layer, reshape_transform=3)


def test_default_cam_layer_of_torchvision_families_outside_the_matrix():
    # the other families are checked in test_architectures.py
    expected = {
        "alexnet": "features",
        "mnasnet0_5": "layers",
        "googlenet": "inception5b",
        "inception_v3": "Mixed_7c",
    }
    for name, layer in expected.items():
        kwargs = (
            {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
        )
        with torch.device("meta"):  # the architecture without allocating weights
            model = tvm.get_model(name, **kwargs)
        assert default_cam_layer(model, None) == layer, name


def test_default_cam_layer_of_other_models_stops_at_global_pooling():
    class SE(nn.Module):  # a squeeze-excitation gate pools globally inside
        def __init__(self, c):
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Conv2d(c, c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.fc(self.pool(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), SE(4)
            )
            self.head = nn.Sequential(
                nn.Conv2d(4, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
            )

        def forward(self, x):
            return self.head(self.body(x))

    model = Net().train()
    snap = snapshot(model)
    assert default_cam_layer(model, torch.randn(2, 3, 9, 9)) == "head.0"
    assert_untouched(model, snap)  # hooks removed, mode kept, BN stats not updated
    with pytest.raises(TypeError, match="images"):
        default_cam_layer(model, None)
    with pytest.raises(ValueError, match="no module with a 4-D output"):
        default_cam_layer(
            nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.randn(1, 3, 2, 2)
        )
