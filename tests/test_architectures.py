"""The architecture matrix: every torchvision classification family runs every
method family, with random weights and small inputs.

Each family is built from its torchvision class (the code that runs is the
family's own: blocks, activations, layouts, squeeze-excitation, stochastic
depth, class token, window attention), scaled down in width and depth so
the whole matrix stays within the CI budget; the real ViT-B/16 and
ConvNeXt-T run end to end in test_cli_saliency.py. Checked for each family:
output shapes, finite values, keep=1.0 identity with Captum, the default CAM
layer, and the model left untouched (parameters, buffers, train/eval flags,
hooks).
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from helpers import assert_untouched, snapshot
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.efficientnet import MBConvConfig
from torchvision.models.regnet import BlockParams
from torchvision.models.vgg import make_layers

from captum_crigrad import (
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    ExpectedGradCAM,
    FORGradLayerGradCam,
    FORGradSaliency,
    GradCAM,
    GradCAMPlusPlus,
    IntegratedGradCAM,
    crigrad_attribution,
    default_cam_layer,
    gradient_map,
    sanity_check,
)
from captum_crigrad.core.validation import resolve_layer
from captum_crigrad.metrics import deletion
from captum_crigrad.sanity import default_blocks

N_CLASSES = 10


def _vgg():
    # VGG's classifier is hard-wired to 512 x 7 x 7 -> 4096: build the class
    # without allocating it, then give it the same structure, narrower
    with torch.device("meta"):
        model = tvm.VGG(nn.Identity(), num_classes=N_CLASSES)
    model.features = make_layers([8, "M", 16, "M", 16, "M"])
    model.classifier = nn.Sequential(
        nn.Linear(16 * 7 * 7, 32),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(32, 32),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(32, N_CLASSES),
    )
    return model


def _random_head(model):
    # torchvision's ViT starts with a zero head: every gradient would be zero
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


# family -> (builder, input size, default CAM layer, CAM grid at that layer)
FAMILIES = {
    "resnet": (
        lambda: tvm.ResNet(tvm.resnet.BasicBlock, [1, 1, 1, 1], num_classes=N_CLASSES),
        64,
        "layer4",
        (2, 2),
    ),
    "vgg": (_vgg, 32, "features", (4, 4)),
    "densenet": (
        lambda: tvm.DenseNet(8, (1, 1), 8, bn_size=2, num_classes=N_CLASSES),
        32,
        "features",
        (4, 4),
    ),
    "squeezenet": (
        lambda: tvm.SqueezeNet("1_1", num_classes=N_CLASSES),
        64,
        "features",
        (3, 3),
    ),
    "mobilenet_v2": (
        lambda: tvm.mobilenet_v2(width_mult=0.25, num_classes=N_CLASSES),
        64,
        "features",
        (2, 2),
    ),
    "mobilenet_v3": (
        lambda: tvm.mobilenet_v3_small(width_mult=0.25, num_classes=N_CLASSES),
        64,
        "features",
        (2, 2),
    ),
    "efficientnet": (
        lambda: tvm.EfficientNet(
            [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(6, 5, 2, 8, 16, 2)],
            dropout=0.2,
            num_classes=N_CLASSES,
        ),
        32,
        "features",
        (8, 8),
    ),
    "convnext": (
        lambda: tvm.ConvNeXt(
            [CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)],
            num_classes=N_CLASSES,
        ),
        32,
        "features",
        (4, 4),
    ),
    "regnet": (
        lambda: tvm.RegNet(
            BlockParams.from_init_params(
                depth=2, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25
            ),
            stem_width=8,
            num_classes=N_CLASSES,
        ),
        32,
        "trunk_output",
        (4, 4),
    ),
    "shufflenet": (
        lambda: tvm.ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 64], N_CLASSES),
        64,
        "conv5",
        (2, 2),
    ),
    "vit": (
        lambda: _random_head(
            tvm.VisionTransformer(
                image_size=32,
                patch_size=8,
                num_layers=2,
                num_heads=2,
                hidden_dim=16,
                mlp_dim=32,
                num_classes=N_CLASSES,
            )
        ),
        32,
        "encoder.layers.encoder_layer_1.ln_1",
        (4, 4),
    ),
    "swin": (
        lambda: tvm.SwinTransformer(
            patch_size=[4, 4],
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=[2, 2],
            num_classes=N_CLASSES,
        ),
        64,
        "features",
        (2, 2),
    ),
    "maxvit": (
        lambda: tvm.MaxVit(
            input_size=(32, 32),
            stem_channels=8,
            partition_size=2,
            block_channels=[8, 16],
            block_layers=[1, 1],
            head_dim=4,
            stochastic_depth_prob=0.0,
            num_classes=N_CLASSES,
        ),
        32,
        "blocks.1",
        (4, 4),
    ),
}
# Families whose layer output is not channels-first: Captum's own
# LayerGradCam gives no map there, so keep=1.0 is compared with GradCAM.
NOT_CHANNELS_FIRST = {"vit", "swin"}


class Case:
    def __init__(self, family):
        build, size, self.layer_name, self.grid = FAMILIES[family]
        self.family = family
        torch.manual_seed(0)
        self.model = build().eval()
        assert all(p.device.type == "cpu" for p in self.model.parameters())
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(2, 3, size, size, generator=gen)
        self.target = torch.tensor([3, 7])
        self.layer = resolve_layer(self.model, self.layer_name)
        self.snap = snapshot(self.model)

    def check(self, out, shape):
        assert tuple(out.shape) == tuple(shape)
        assert torch.isfinite(out).all()
        assert_untouched(self.model, self.snap)


@pytest.fixture(scope="module", params=list(FAMILIES))
def case(request):
    return Case(request.param)


def _seed_captum(seed):
    # GradientShap draws its interpolation points with numpy's global RNG
    torch.manual_seed(seed)
    np.random.seed(seed)


def _x(case):
    return case.x.clone().requires_grad_(True)


def test_default_cam_layer(case):
    assert default_cam_layer(case.model, case.x) == case.layer_name
    assert_untouched(case.model, case.snap)


def test_crigrad_drop_ins(case):
    x, t = case.x, case.target
    for ours, theirs, kwargs in (
        (CriGradSaliency, Saliency, {}),
        (CriGradInputXGradient, InputXGradient, {}),
        (CriGradIntegratedGradients, IntegratedGradients, dict(n_steps=3)),
    ):
        same = ours(case.model, keep=1.0).attribute(_x(case), target=t, **kwargs)
        assert same.abs().sum() > 0
        assert torch.equal(
            same, theirs(case.model).attribute(_x(case), target=t, **kwargs)
        ), ours.__name__
        filtered = ours(case.model).attribute(_x(case), target=t, **kwargs)
        case.check(filtered, x.shape)
        # CriGrad found the family's activations (modules or functions)
        assert not torch.equal(filtered, same), ours.__name__
    cam_shape = (2, 1, *case.grid)
    # where no activation runs above the layer (a CNN's last block before its
    # pooling head) CriGrad has nothing to filter, and says so
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "CriGrad: the forward passes", UserWarning)
        same = CriGradLayerGradCam(case.model, case.layer, keep=1.0).attribute(x, t)
        filtered = CriGradLayerGradCam(case.model, case.layer).attribute(x, t)
    reference = (GradCAM if case.family in NOT_CHANNELS_FIRST else LayerGradCam)(
        case.model, case.layer
    ).attribute(x, t)
    assert torch.equal(same, reference)
    case.check(filtered, cam_shape)


def test_crigrad_on_gradient_shap_and_noise_tunnel(case):
    baselines = torch.zeros(2, *case.x.shape[1:])
    for make, kwargs in (
        (lambda: GradientShap(case.model), dict(baselines=baselines, n_samples=2)),
        (
            lambda: NoiseTunnel(Saliency(case.model)),
            dict(nt_type="smoothgrad", nt_samples=2, stdevs=0.1),
        ),
    ):
        plain, same = make(), crigrad_attribution(make(), keep=1.0)
        _seed_captum(2)
        expected = plain.attribute(_x(case), target=case.target, **kwargs)
        _seed_captum(2)
        got = same.attribute(_x(case), target=case.target, **kwargs)
        assert torch.equal(got, expected)
        filtered = crigrad_attribution(make(), keep=0.3)
        case.check(
            filtered.attribute(_x(case), target=case.target, **kwargs), case.x.shape
        )


def test_forgrad(case):
    size = case.x.shape[-2:]
    case.check(
        FORGradSaliency(case.model).attribute(_x(case), target=case.target),
        (2, 1, *size),
    )
    case.check(
        FORGradLayerGradCam(case.model, case.layer).attribute(case.x, case.target),
        (2, 1, *size),
    )


def test_cams(case):
    x, t, layer = case.x, case.target, case.layer
    cam_shape = (2, 1, *case.grid)
    gradcam = GradCAM(case.model, layer).attribute(x, t, relu_attributions=True)
    case.check(gradcam, cam_shape)
    assert gradcam.sum() > 0
    case.check(GradCAMPlusPlus(case.model, layer).attribute(x, t), cam_shape)
    case.check(
        IntegratedGradCAM(case.model, layer).attribute(x, t, n_steps=2), cam_shape
    )
    egc = ExpectedGradCAM(case.model, layer)
    case.check(egc.attribute(x, t, n_samples=2, generator=0), cam_shape)
    # without completeness, with the input as its only reference and no
    # noise it is Grad-CAM (up to float rounding: attention layers take
    # PyTorch's fused inference path when activations are evaluated without
    # gradients)
    exact = egc.attribute(
        x,
        t,
        baselines=x.unsqueeze(1),
        n_samples=1,
        stdevs=0.0,
        completeness=False,
    )
    scale = float(gradcam.detach().max())
    assert torch.allclose(exact, gradcam, rtol=1e-5, atol=1e-6 * scale)
    case.check(
        egc.attribute(x, t, n_samples=2, generator=0, upsample=True),
        (2, 1, *x.shape[-2:]),
    )


def test_gradient_map_sanity_step_and_metric(case):
    x, t = case.x, case.target
    methods = ["GradientExplanation", "GradCAM"]
    maps = gradient_map(case.model, x, methods, t)
    for m in maps:
        case.check(m, (2, 1, *x.shape[-2:]))
    top = default_blocks(case.model)[:1]
    result = sanity_check(
        case.model, x, methods, blocks=top, target=t, measures=("spearman_abs",)
    )
    assert result.steps == top
    for method in methods:
        scores = result.scores[(method, "spearman_abs")]
        assert scores.shape == (1, 2) and bool((abs(scores) <= 1 + 1e-6).all())
    curve = deletion(case.model, x, maps[1], n_steps=4, target=t)
    assert curve.scores.shape == (2, 5)
    assert torch.isfinite(curve.auc()).all()
    assert_untouched(case.model, case.snap)
