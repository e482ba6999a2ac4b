"""Expected Grad-CAM, Grad-CAM++ and Integrated Grad-CAM (issue 5).

Invariants, not snapshots: D = {x} with no noise is Grad-CAM; chunking and
batch neighbours do not change a map; seeds reproduce; bad input fails before
any work and leaves no hook behind.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    LayerActivation,
    LayerAttribution,
    LayerGradCam,
    LayerGradientXActivation,
    NoiseTunnel,
)

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM
from captum_crigrad.io.models import SmallCNN


def _close(a, b, rel=1e-5):
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-30)
    torch.testing.assert_close(a, b, rtol=rel, atol=rel * scale)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=3, width=8).eval()


@pytest.fixture
def images():
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _layer(model):
    return model.features[5]  # last conv: (N, 16, 8, 8) for 16x16 inputs


def _no_hooks(model):
    for module in model.modules():
        assert not module._forward_hooks, module
        assert not module._forward_pre_hooks, module
        assert not module._backward_hooks, module
        assert not getattr(module, "_backward_pre_hooks", {}), module


TARGETS = [1, 3, 0, 7]


# ----------------------------------------------------------- Grad-CAM limit
def test_reference_equal_to_input_without_noise_is_exactly_gradcam(model, images):
    layer = _layer(model)
    gradcam = LayerGradCam(model, layer).attribute(
        images, TARGETS, relu_attributions=True
    )
    egc = ExpectedGradCAM(model, layer)
    # D = {x}: the complete form (the default) weights by A(x) - A(x) = 0,
    # the form without completeness is Grad-CAM
    zero = egc.attribute(
        images, TARGETS, baselines=images.unsqueeze(1), stdevs=0.0, n_samples=1
    )
    assert float(zero.abs().max()) < 1e-6 * float(gradcam.detach().abs().max())
    exact = egc.attribute(
        images,
        TARGETS,
        baselines=images.unsqueeze(1),
        stdevs=0.0,
        n_samples=1,
        completeness=False,
    )
    assert torch.equal(exact, gradcam.detach())
    # more samples of the same point: the same map up to float summation
    many = egc.attribute(
        images,
        TARGETS,
        baselines=images.unsqueeze(1),
        stdevs=0.0,
        n_samples=5,
        completeness=False,
        internal_batch_size=3,
    )
    _close(many, gradcam.detach())
    # one example, D = {x} as a shared (M=1) distribution
    one = egc.attribute(
        images[:1],
        2,
        baselines=images[:1],
        stdevs=0.0,
        n_samples=1,
        completeness=False,
    )
    assert torch.equal(
        one, LayerGradCam(model, layer).attribute(images[:1], 2, relu_attributions=True)
    )
    assert (exact > 0).any()


def test_noise_and_references_change_the_map(model, images):
    layer = _layer(model)
    gradcam = LayerGradCam(model, layer).attribute(
        images, TARGETS, relu_attributions=True
    )
    egc = ExpectedGradCAM(model, layer).attribute(
        images, TARGETS, n_samples=8, stdevs=0.5, generator=0
    )
    assert not torch.allclose(egc, gradcam, rtol=1e-3, atol=0)
    assert (egc >= 0).all() and egc.shape == gradcam.shape


# -------------------------------------------------- reproducibility, batching
def test_same_result_with_any_internal_batch_size(model, images):
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(target=TARGETS, n_samples=6, stdevs=0.3, generator=5)
    full = egc.attribute(images, **kwargs)
    for ibs in (1, 5, 7, 24, 100):
        _close(egc.attribute(images, internal_batch_size=ibs, **kwargs), full)


def test_seeds_reproduce_and_differ(model, images):
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(target=TARGETS, n_samples=4, stdevs=0.3)
    a = egc.attribute(images, generator=11, **kwargs)
    b = egc.attribute(images, generator=torch.Generator().manual_seed(11), **kwargs)
    c = egc.attribute(images, generator=12, **kwargs)
    assert torch.equal(a, b)
    diff = (a - c).abs().amax(dim=(1, 2, 3)) / a.abs().amax(dim=(1, 2, 3))
    assert (diff > 1e-3).all()


def test_map_does_not_depend_on_batch_neighbours(model, images):
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(n_samples=4, stdevs=0.3, generator=3)
    pair = egc.attribute(images[[0, 1]], target=[1, 3], **kwargs)
    other = egc.attribute(images[[0, 2]], target=[1, 0], **kwargs)
    alone = egc.attribute(images[[0]], target=[1], **kwargs)
    _close(pair[0], other[0])
    _close(pair[0], alone[0])
    # a per-example reference distribution stays with its example
    refs = torch.randn(4, 3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    kwargs["stdevs"] = 0.0
    batch = egc.attribute(images, TARGETS, baselines=refs, **kwargs)
    first = egc.attribute(images[:1], TARGETS[:1], baselines=refs[:1], **kwargs)
    _close(batch[:1], first)


def test_model_in_train_mode_is_left_alone(model, images):
    model.train()
    ExpectedGradCAM(model, _layer(model)).attribute(
        images, TARGETS, n_samples=2, generator=0
    )
    assert model.training and all(p.grad is None for p in model.parameters())
    _no_hooks(model)


# ----------------------------------------------------------- Captum contract
class TwoInputNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x, y, scale=1.0):
        z = F.relu(self.a(x) + self.b(y)) * scale
        return self.head(z.mean(dim=(2, 3)))


def test_tuple_inputs_list_targets_and_forward_args():
    torch.manual_seed(0)
    net = TwoInputNet().eval()
    x = torch.randn(3, 3, 8, 8)
    y = torch.randn(3, 1, 8, 8)
    scale = torch.tensor([[[[1.0]]], [[[2.0]]], [[[0.5]]]])
    egc = ExpectedGradCAM(net, net.a)
    kwargs = dict(n_samples=3, stdevs=(0.2, 0.1), generator=4)
    maps = egc.attribute((x, y), [0, 4, 2], additional_forward_args=(scale,), **kwargs)
    assert isinstance(maps, torch.Tensor) and maps.shape == (3, 1, 8, 8)
    # the first example alone gives the first row: args and targets follow it
    single = egc.attribute(
        (x[:1], y[:1]), [0], additional_forward_args=(scale[:1],), **kwargs
    )
    _close(maps[:1], single)
    # D = {x} for both inputs, no noise: Grad-CAM of the tuple model
    exact = egc.attribute(
        (x, y),
        [0, 4, 2],
        additional_forward_args=(scale,),
        baselines=(x.unsqueeze(1), y.unsqueeze(1)),
        stdevs=0.0,
        n_samples=1,
        completeness=False,
    )
    gradcam = LayerGradCam(net, net.a).attribute(
        (x, y), [0, 4, 2], additional_forward_args=(scale,), relu_attributions=True
    )
    assert torch.equal(exact, gradcam)


def test_noise_tunnel_can_wrap_it(model, images):
    egc = ExpectedGradCAM(model, _layer(model))
    nt = NoiseTunnel(egc)
    out = nt.attribute(
        images, nt_samples=2, stdevs=0.0, target=TARGETS, n_samples=3, generator=9
    )
    # NoiseTunnel repeats each example twice (no noise here) and averages
    rep = egc.attribute(
        images.repeat_interleave(2, 0),
        target=[t for t in TARGETS for _ in range(2)],
        n_samples=3,
        generator=9,
    )
    _close(out, rep.view(4, 2, *rep.shape[1:]).mean(1))


def test_upsample_is_bilinear_interpolation(model, images):
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(target=TARGETS, n_samples=2, generator=1)
    small = egc.attribute(images, **kwargs)
    big = egc.attribute(images, upsample=True, **kwargs)
    assert big.shape == (4, 1, 16, 16)
    _close(big, LayerAttribution.interpolate(small, (16, 16), "bilinear"))
    assert egc.attribute(images, upsample=(20, 12), **kwargs).shape == (4, 1, 20, 12)


class Homogeneous(nn.Module):
    """conv (no bias) -> ReLU is positively homogeneous: A(a x) = a A(x)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.head = nn.Sequential(
            nn.Conv2d(6, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 3)
        )

    def forward(self, x):
        return self.head(self.relu(self.conv(x)))


def test_completeness_weights_by_activation_difference():
    torch.manual_seed(0)
    net = Homogeneous().eval()
    x = torch.randn(2, 3, 8, 8)
    egc = ExpectedGradCAM(net, net.relu)
    kwargs = dict(
        target=[0, 2], n_samples=4, stdevs=0.0, generator=2, relu_attributions=False
    )
    # x' = 0.25 x: A(x) - A(x') = 0.75 A(x), and the gradient samples are shared
    refs = (0.25 * x).unsqueeze(1)
    plain = egc.attribute(x, baselines=refs, completeness=False, **kwargs)
    complete = egc.attribute(x, baselines=refs, completeness=True, **kwargs)
    _close(complete, 0.75 * plain)
    # a shared distribution of references gives the same per-reference term
    shared = torch.zeros(3, 3, 8, 8)
    a = egc.attribute(x, baselines=shared, completeness=True, **kwargs)
    b = egc.attribute(x, baselines=shared, completeness=False, **kwargs)
    _close(a, b)  # A(0) = 0 for this model


class GapLinear(nn.Module):
    """conv - ReLU - conv - ReLU (the CAM layer) - global average pooling -
    linear: the head every ResNet, DenseNet, MobileNet and ConvNeXt ends in."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("reference", [0.0, 0.7])
def test_default_is_complete_on_a_gap_linear_head(reference):
    """Buono et al. (TMLR 2026): before the ReLU the map sums to
    y_c(x) - E[y_c(x')]; exact when the CAM layer is followed by global
    average pooling and a linear layer (the layer gradient is constant)."""
    torch.manual_seed(0)
    net = GapLinear().eval()
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    const = torch.full((1, 3, 1, 1), reference)
    egc = ExpectedGradCAM(net, net.features)
    maps = egc.attribute(
        x, [0, 2, 4], baselines=const, relu_attributions=False, generator=0
    )  # default n_samples, stdevs and completeness
    assert maps.shape == (3, 1, 6, 6)
    with torch.no_grad():
        y = net(x)[torch.arange(3), torch.tensor([0, 2, 4])]
        y_ref = net(const.expand(1, 3, 12, 12))[0, [0, 2, 4]]
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), y - y_ref, rtol=1e-5, atol=1e-5)
    # the form without completeness does not sum to it
    plain = egc.attribute(
        x,
        [0, 2, 4],
        baselines=const,
        relu_attributions=False,
        completeness=False,
        generator=0,
    )
    assert (plain.sum(dim=(1, 2, 3)) - (y - y_ref)).abs().max() > 1e-2


def test_default_differs_from_gradcam_on_a_gap_linear_head():
    """On such a head SmoothGrad-CAM (completeness=False) is Grad-CAM; the
    complete default is not."""
    torch.manual_seed(0)
    net = GapLinear().eval()
    x = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    gradcam = LayerGradCam(net, net.features).attribute(x, [1, 3, 0, 4])
    egc = ExpectedGradCAM(net, net.features)
    plain = egc.attribute(x, [1, 3, 0, 4], completeness=False, generator=0)
    _close(plain, F.relu(gradcam).detach(), rel=1e-5)
    default = egc.attribute(x, [1, 3, 0, 4], generator=0)
    scale = float(default.abs().max())
    assert float((default - plain).abs().max()) > 0.05 * scale


# ------------------------------------------------------------ the variants
def test_gradcam_plus_plus_matches_the_formula(model, images):
    layer = _layer(model)
    grads_acts = {}

    def keep(_, __, out):
        out.retain_grad()
        grads_acts["a"] = out

    handle = layer.register_forward_hook(keep)
    out = model(images)
    handle.remove()
    out[torch.arange(4), torch.tensor(TARGETS)].sum().backward()
    a, g = grads_acts["a"].detach(), grads_acts["a"].grad
    alpha = g**2 / (2 * g**2 + a.sum((2, 3), keepdim=True) * g**3)
    alpha = torch.nan_to_num(alpha, nan=0.0)
    w = (alpha * F.relu(g)).sum((2, 3), keepdim=True)
    expected = F.relu((w * a).sum(1, keepdim=True))
    got = GradCAMPlusPlus(model, layer).attribute(
        images, TARGETS, internal_batch_size=3
    )
    _close(got, expected)
    _no_hooks(model)


def test_integrated_gradcam_formula_and_chunking(model, images):
    layer = _layer(model)
    igc = IntegratedGradCAM(model, layer)
    # two right-Riemann steps: copies 0.5 x and x, weight 1/2 each
    two = igc.attribute(
        images, TARGETS, n_steps=2, method="riemann_right", relu_attributions=False
    )
    grad = LayerGradientXActivation(model, layer, multiply_by_inputs=False)
    weights = sum(
        0.5 * grad.attribute(b * images, TARGETS).mean((2, 3), keepdim=True)
        for b in (0.5, 1.0)
    )
    acts = LayerActivation(model, layer)
    delta = acts.attribute(images) - acts.attribute(torch.zeros_like(images))
    _close(two, (weights * delta).sum(1, keepdim=True).detach(), rel=1e-4)
    many = igc.attribute(images, TARGETS, n_steps=6)
    _close(igc.attribute(images, TARGETS, n_steps=6, internal_batch_size=5), many)
    # baseline = input: A(x) - A(x') = 0
    same = igc.attribute(images, TARGETS, baselines=images, n_steps=3)
    assert same.abs().max() <= 1e-5 * many.abs().max()


# --------------------------------------------------------------- bad input
def test_layer_must_be_a_submodule(model):
    with pytest.raises(ValueError, match="layer: .*not a submodule"):
        ExpectedGradCAM(model, nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="layer"):
        ExpectedGradCAM(model, "features.5")


def test_bad_input_raises_clear_errors_and_leaves_no_hook(model, images):
    layer = _layer(model)
    egc = ExpectedGradCAM(model, layer)
    bad_calls = [
        (dict(n_samples=0), ValueError, "n_samples"),
        (dict(n_samples=2.5), ValueError, "n_samples"),
        (dict(stdevs=-0.1), ValueError, "stdevs"),
        (dict(stdevs=(0.1, 0.2)), ValueError, "stdevs"),
        (dict(baselines=torch.zeros(2, 3, 8, 8)), ValueError, "baselines"),
        (dict(baselines=torch.zeros(3, 2, 3, 16, 16)), ValueError, "baselines"),
        (dict(baselines=torch.zeros(16, 16)), ValueError, "baselines"),
        (dict(baselines=lambda x: torch.zeros(1, 5, 16, 16)), ValueError, "baselines"),
        (dict(internal_batch_size=0), ValueError, "internal_batch_size"),
        (dict(upsample="yes"), ValueError, "upsample"),
        (dict(target=[1, 2]), ValueError, "target"),
        (dict(generator="seed"), TypeError, "generator"),
    ]
    for kwargs, error, name in bad_calls:
        kwargs.setdefault("target", 1)
        with pytest.raises(error, match=name):
            egc.attribute(images, **kwargs)
        _no_hooks(model)
    # the layer never runs in forward_func
    unused = nn.Conv2d(3, 3, 1)
    model.unused = unused
    with pytest.raises(ValueError, match="never ran"):
        ExpectedGradCAM(model, unused).attribute(images, 1, n_samples=2)
    _no_hooks(model)
    # a layer output that is no spatial map
    with pytest.raises(ValueError, match="reshape_transform"):
        ExpectedGradCAM(model, model.classifier[2]).attribute(images, 1, n_samples=2)
    _no_hooks(model)
    with pytest.raises(ValueError, match="reshape_transform"):
        GradCAMPlusPlus(model, model.classifier[1]).attribute(images, 1)
    _no_hooks(model)
    for n_steps in (0, 1):
        with pytest.raises(ValueError, match="n_steps"):
            IntegratedGradCAM(model, layer).attribute(images, 1, n_steps=n_steps)
    with pytest.raises(ValueError, match="baselines"):
        IntegratedGradCAM(model, layer).attribute(
            images, 1, baselines=torch.zeros(3, 3, 16, 16)
        )
    _no_hooks(model)


# ------------------------------------------------------------- real model
@pytest.mark.assets
def test_resnet20_functional_relu(assets):
    from captum_crigrad.io import load_cifar_images, load_resnet20
    from captum_crigrad.io.models import normalize

    net = load_resnet20(assets / "cifar10_resnet20" / "resnet20-12fca82f.th")
    images, labels, _ = load_cifar_images(assets / "cifar10_images")
    x = normalize(images[:4])
    target = labels[:4]
    gradcam = LayerGradCam(net, net.layer3).attribute(x, target, relu_attributions=True)
    egc = ExpectedGradCAM(net, net.layer3)
    exact = egc.attribute(
        x,
        target,
        baselines=x.unsqueeze(1),
        stdevs=0.0,
        n_samples=1,
        completeness=False,
    )
    assert torch.equal(exact, gradcam)
    maps = egc.attribute(x, target, n_samples=8, generator=0, upsample=True)
    assert maps.shape == (4, 1, 32, 32) and (maps.sum((1, 2, 3)) > 0).all()


# ------------------------------------------------------- gradient transforms
def test_crigrad_on_top(model, images):
    from captum_crigrad.crigrad.transform import CriGrad

    layer = _layer(model)
    kwargs = dict(target=TARGETS, n_samples=3, stdevs=0.2, generator=6)
    plain = ExpectedGradCAM(model, layer).attribute(images, **kwargs)
    keep_all = CriGrad(keep=1.0)
    same = ExpectedGradCAM(model, layer, gradient_transform=keep_all).attribute(
        images, **kwargs
    )
    assert torch.equal(same, plain)
    assert vars(keep_all) == vars(CriGrad(keep=1.0))  # the user's transform as given
    filtered = ExpectedGradCAM(
        model, layer, gradient_transform=CriGrad(keep=0.1)
    ).attribute(images, **kwargs)
    assert not torch.allclose(filtered, plain, rtol=1e-3, atol=0)
    _no_hooks(model)
    # hooks go even when the pass fails
    with pytest.raises((IndexError, ValueError, RuntimeError)):
        ExpectedGradCAM(model, layer, gradient_transform=CriGrad(keep=0.5)).attribute(
            images, target=50, n_samples=2
        )
    _no_hooks(model)
    with pytest.raises(TypeError, match="gradient_transform"):
        ExpectedGradCAM(model, layer, gradient_transform=object())


def test_attribute_to_layer_input_matches_gradcam(model, images):
    layer = model.features[4]  # ReLU whose input is the (N, 16, 8, 8) conv output
    gradcam = LayerGradCam(model, layer).attribute(
        images, TARGETS, relu_attributions=True, attribute_to_layer_input=True
    )
    exact = ExpectedGradCAM(model, layer).attribute(
        images,
        TARGETS,
        baselines=images.unsqueeze(1),
        stdevs=0.0,
        n_samples=1,
        attribute_to_layer_input=True,
        completeness=False,
    )
    assert torch.equal(exact, gradcam)


# ------------------------------------------- automatic batching (issue 22)
def _largest_batch_seen(model):
    """A forward pre-hook recording the batch size of every model call."""
    seen = []
    handle = model.register_forward_pre_hook(
        lambda _m, args: seen.append(int(args[0].shape[0]))
    )
    return seen, handle


@pytest.mark.parametrize("baselines", ["zero", "shared", "per_example"])
def test_result_is_the_same_for_every_internal_batch_size(model, images, baselines):
    """To 1e-6 of the map's scale: automatic (None), 1, 2, 5, 7 and all rows
    in one pass, with noise and each kind of reference distribution."""
    gen = torch.Generator().manual_seed(4)
    refs = {
        "zero": None,
        "shared": torch.randn(5, 3, 16, 16, generator=gen),
        "per_example": torch.randn(4, 2, 3, 16, 16, generator=gen),
    }[baselines]
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(target=TARGETS, baselines=refs, n_samples=6, stdevs=0.2, generator=9)
    whole = egc.attribute(images, internal_batch_size=4 * 6, **kwargs)
    for ibs in (None, 1, 2, 5, 7):
        _close(egc.attribute(images, internal_batch_size=ibs, **kwargs), whole, 1e-6)


def test_automatic_batches_split_images_and_neighbours_do_not_matter(
    model, images, monkeypatch
):
    """With an automatic batch of 5 rows, an image's 6 samples straddle two
    passes shared with other images: its map is still the map it has
    alone."""
    import captum_crigrad.cam.expected_gradcam as egc_module

    monkeypatch.setattr(egc_module, "AUTO_BATCH_ELEMENTS", 5 * images[0].numel())
    egc = ExpectedGradCAM(model, _layer(model))
    kwargs = dict(n_samples=6, stdevs=0.2, generator=1)
    seen, handle = _largest_batch_seen(model)
    try:
        batch = egc.attribute(images, TARGETS, **kwargs)
    finally:
        handle.remove()
    assert max(seen) == 5
    for i in range(4):
        alone = egc.attribute(images[i : i + 1], TARGETS[i], **kwargs)
        _close(batch[i : i + 1], alone, 1e-6)


def test_memory_does_not_grow_with_n_samples(model):
    """The largest batch the model sees (what the autograd graph, hence the
    memory, scales with) is fixed by the input size, not by n_samples or
    the number of images: 2**20 // (3 * 224 * 224) = 6 rows at 224 px."""
    from captum_crigrad.cam.expected_gradcam import (
        AUTO_BATCH_ELEMENTS,
        auto_internal_batch_size,
    )

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    egc = ExpectedGradCAM(model, _layer(model))
    largest = {}
    for n_samples in (8, 64):
        seen, handle = _largest_batch_seen(model)
        try:
            egc.attribute(x, [0, 1], n_samples=n_samples, generator=0)
        finally:
            handle.remove()
        largest[n_samples] = max(seen)
    assert AUTO_BATCH_ELEMENTS // (3 * 224 * 224) == 6
    assert largest == {8: 6, 64: 6}
    # small inputs: more rows per pass, never more rows than there are
    assert auto_internal_batch_size(torch.zeros(4, 3, 32, 32), 4 * 32) == 128
    assert auto_internal_batch_size(torch.zeros(4, 3, 32, 32), 10_000) == 341
    assert auto_internal_batch_size(torch.zeros(1, 3, 2048, 2048), 8) == 1
    # an explicit internal_batch_size still overrides it
    seen, handle = _largest_batch_seen(model)
    try:
        egc.attribute(x, [0, 1], n_samples=8, internal_batch_size=3, generator=0)
    finally:
        handle.remove()
    assert max(seen) == 3


def test_defaults_are_what_the_docstring_says():
    """The signature's defaults are the module's DEFAULT_* constants, and the
    docstring quotes their values (kept when the 224 px study found no
    configuration that beats Grad-CAM: docs/expected_gradcam_224.md)."""
    import inspect

    import captum_crigrad.cam.expected_gradcam as egc_module

    params = inspect.signature(ExpectedGradCAM.attribute).parameters
    assert params["n_samples"].default == egc_module.DEFAULT_N_SAMPLES == 32
    assert params["stdevs"].default == egc_module.DEFAULT_STDEVS == 0.1
    assert params["completeness"].default is egc_module.DEFAULT_COMPLETENESS is True
    assert params["baselines"].default is None
    assert params["internal_batch_size"].default is None
    doc = " ".join(ExpectedGradCAM.attribute.__doc__.split())
    assert "Default ``DEFAULT_N_SAMPLES`` (32)" in doc
    assert "Default ``DEFAULT_STDEVS`` (0.1," in doc
    assert "default True" in doc
    assert "None (default): a single all-zero reference" in doc
    assert "6 rows at 3 x 224 x 224" in doc
    assert egc_module.AUTO_BATCH_ELEMENTS // (3 * 224 * 224) == 6
