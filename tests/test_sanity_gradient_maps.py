import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.core.relu_rules import ModifiedReluBackward, count_relu_calls
from captum_crigrad.io.models import SmallCNN, resnet20
from captum_crigrad.methods import (
    available_methods,
    register_method,
    unregister_method,
)
from captum_crigrad.sanity.gradient_maps import (
    attribution_maps,
    gradient_map,
    to_single_channel,
)

MATLAB = ["GradientExplanation", "GuidedBackprop", "ZeilerFergus"]


class FunctionalSmallCNN(SmallCNN):
    """SmallCNN with the same parameters, but ReLU applied with F.relu."""

    def forward(self, x):
        for m in list(self.features) + list(self.classifier):
            x = F.relu(x) if isinstance(m, nn.ReLU) else m(x)
        return x


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture
def images():
    return torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def _plain_gradient(model, images, target, prob=False):
    x = images.clone().requires_grad_(True)
    out = model(x)
    if prob:
        out = out.softmax(1)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return grad


def test_gradient_explanation_is_matlab_map_of_plain_gradient(cnn, images):
    target = cnn(images).argmax(1)
    maps = gradient_map(cnn, images, "GradientExplanation")
    grad = _plain_gradient(cnn, images, target)
    expected = grad.abs().sum(1, keepdim=True)
    expected = expected / expected.flatten(1).max(1).values.view(-1, 1, 1, 1)
    assert maps.shape == (5, 1, 28, 28)
    torch.testing.assert_close(maps, expected)
    assert torch.allclose(maps.flatten(1).max(1).values, torch.ones(5))
    assert maps.min() >= 0

    raw = attribution_maps(
        cnn, images, "GradientExplanation", target=3, score="probability"
    )
    torch.testing.assert_close(
        raw, _plain_gradient(cnn, images, torch.full((5,), 3), prob=True)
    )


def test_list_of_methods_gives_list_and_guided_differs(cnn, images):
    maps = gradient_map(cnn, images, MATLAB)
    assert isinstance(maps, list) and len(maps) == 3
    assert not torch.allclose(maps[0], maps[1])
    assert not torch.allclose(maps[1], maps[2])
    raw_gb = attribution_maps(cnn, images, "GuidedBackprop")
    raw_plain = attribution_maps(cnn, images, "GradientExplanation")
    assert not torch.allclose(raw_gb, raw_plain)


def test_map_does_not_depend_on_batch_neighbours(cnn, images):
    together = gradient_map(cnn, images, MATLAB + ["GradCAM"], batch_size=64)
    alone = gradient_map(cnn, images, MATLAB + ["GradCAM"], batch_size=1)
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "name, rule", [("GuidedBackprop", "guided"), ("ZeilerFergus", "deconv")]
)
def test_functional_relu_detected_and_wrap_matches_captum(cnn, images, name, rule):
    functional = FunctionalSmallCNN().eval()
    functional.load_state_dict(cnn.state_dict())
    assert count_relu_calls(cnn, images) == (4, 0)
    assert count_relu_calls(functional, images) == (0, 4)
    with pytest.raises(ValueError, match="outside nn.ReLU modules"):
        gradient_map(functional, images, name)
    # Captum alone silently gives the plain gradient on the functional model
    from captum.attr import GuidedBackprop, Saliency

    t = cnn(images).argmax(1)
    silent = GuidedBackprop(functional).attribute(images.clone(), target=t)
    torch.testing.assert_close(
        silent, Saliency(functional).attribute(images.clone(), target=t, abs=False)
    )
    # wrapping every ReLU call reproduces Captum's result on the nn.ReLU model
    wrapped = attribution_maps(functional, images, name, functional_relu="wrap")
    captum = attribution_maps(cnn, images, name)
    torch.testing.assert_close(wrapped, captum)
    # and the mode also handles nn.ReLU modules (they call F.relu)
    x = images.clone().requires_grad_(True)
    with ModifiedReluBackward(rule):
        out = cnn(x)
    (g,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), x)
    torch.testing.assert_close(g, captum)


def test_resnet20_refused_for_guided_backprop_and_wrap_works():
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"calls ReLU 19 time\(s\)"):
        gradient_map(model, x, ["GradientExplanation", "ZeilerFergus"])
    plain, guided = attribution_maps(
        model, x, ["GradientExplanation", "GuidedBackprop"], functional_relu="wrap"
    )
    assert not torch.allclose(plain, guided)
    assert default_cam_layer(model, x) == "layer3"
    cam = gradient_map(model, x, "GradCAM")
    assert cam.shape == (2, 1, 32, 32)


def test_grad_cam_default_and_named_layer(cnn, images):
    assert default_cam_layer(cnn, images) == "features.5"  # the last convolution
    default = gradient_map(cnn, images, "GradCAM")
    named = gradient_map(cnn, images, "GradCAM", layer="features.5")
    torch.testing.assert_close(default, named)
    other = gradient_map(cnn, images, "GradCAM", layer="features")
    assert not torch.allclose(default, other)


def _hooks(model):
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def _check_untouched(model, state, training):
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training == training
    assert all(p.grad is None for p in model.parameters())
    assert _hooks(model) == 0


def test_model_untouched_after_every_method(cnn, images):
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    x = images.clone()
    gradient_map(cnn, x, available_methods(), score="probability")
    _check_untouched(cnn, state, False)
    assert torch.equal(x, images) and not x.requires_grad


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(method="GradCAM", layer="features.99"),
            ValueError,
            "no submodule 'features.99'",
        ),
        (
            dict(method="GradientExplanation", layers=[]),
            ValueError,
            "layers: empty list",
        ),
        (
            dict(method="Occlusion"),
            ValueError,
            "valid names: saliency, inputxgradient",
        ),
        (dict(method=[]), ValueError, "methods: empty list"),
        (dict(score="loss"), ValueError, "score: expected one of"),
        (dict(functional_relu="ignore"), ValueError, "functional_relu"),
        (dict(target=torch.zeros(2, dtype=torch.long)), ValueError, "target: expected"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_bad_arguments(cnn, images, kwargs, error, match):
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    with pytest.raises(error, match=match):
        gradient_map(cnn, images, **kwargs)
    _check_untouched(cnn, state, False)


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            torch.rand(1, 28, 28),
            r"\(N, C, H, W\) floating-point tensor, got shape \(1, 28, 28\)",
        ),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "dtype torch.uint8"),
        (torch.rand(0, 1, 28, 28), "non-empty"),
    ],
)
def test_bad_images(cnn, bad, match):
    with pytest.raises(ValueError, match=match):
        gradient_map(cnn, bad)
    with pytest.raises(TypeError, match="images: expected a torch.Tensor"):
        gradient_map(cnn, bad.numpy())


def test_register_method_by_name(cnn, images):
    calls = []

    def input_times_gradient(ctx):
        from captum.attr import InputXGradient

        explainer = InputXGradient(ctx.model)
        calls.append(ctx.options.crigrad_layers)
        return lambda x, t: explainer.attribute(x, target=t)

    register_method("InputXGradientTest", "x * grad", input_times_gradient)
    try:
        with pytest.raises(ValueError, match="already names method"):
            register_method("InputXGradientTest", "again", input_times_gradient)
        assert "inputxgradienttest" in available_methods()
        raw = attribution_maps(cnn, images, "InputXGradientTest", layers=["features.1"])
        plain = attribution_maps(cnn, images, "GradientExplanation")
        torch.testing.assert_close(raw, plain * images)
        assert calls == [[cnn.features[1]]]
    finally:
        unregister_method("InputXGradientTest")
    assert "inputxgradienttest" not in available_methods()


def test_to_single_channel_zero_map_stays_zero():
    a = torch.zeros(2, 3, 4, 4)
    a[1, 0, 0, 0] = -2.0
    a[1, 2, 0, 0] = 1.0
    a[1, 1, 1, 1] = 1.5
    out = to_single_channel(a)
    assert torch.equal(out[0], torch.zeros(1, 4, 4))
    assert out[1, 0, 0, 0] == 1.0 and out[1, 0, 1, 1] == 0.5


def test_crigrad_by_name(cnn, images):
    plain, cri = attribution_maps(cnn, images, ["GradientExplanation", "CriGrad"])
    assert cri.shape == plain.shape and not torch.allclose(cri, plain)
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # F.relu calls are filtered without layers= (no nn.ReLU module in ResNet-20)
    default = gradient_map(model, x, "CriGrad")
    assert not torch.allclose(default, gradient_map(model, x, "GradientExplanation"))
    maps = gradient_map(model, x, "CriGrad", layers=["layer1", "layer2", "layer3"])
    assert maps.shape == (2, 1, 32, 32)
    assert _hooks(model) == 0


def test_forgrad_entries_filter_the_gradient(cnn, images):
    from captum_crigrad.forgrad.filter import forgrad

    plain, cri, f, cf = attribution_maps(
        cnn, images, ["GradientExplanation", "CriGrad", "FORGrad", "CriGrad+FORGrad"]
    )
    # the default cutoffs: energy 0.75 alone, 0.9 after CriGrad
    torch.testing.assert_close(f, forgrad(plain, energy=0.75))
    torch.testing.assert_close(cf, forgrad(cri, energy=0.9))
    assert not torch.allclose(cf, forgrad(cri, energy=0.75))
    assert f.shape == (5, 1, 28, 28) and f.min() >= 0


def test_expected_grad_cam_by_name_reduces_to_grad_cam(cnn, images):
    from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM

    egc = attribution_maps(cnn, images, "ExpectedGradCAM")
    assert egc.shape == (5, 1, 28, 28) and egc.min() >= 0
    target = cnn(images).argmax(1)
    direct = ExpectedGradCAM(cnn, cnn.features[5]).attribute(
        images, target=target, upsample=True, generator=0
    )
    torch.testing.assert_close(egc, direct)
    # repeated calls draw the same samples
    torch.testing.assert_close(egc, attribution_maps(cnn, images, "ExpectedGradCAM"))
