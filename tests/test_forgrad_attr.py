"""FORGrad on Captum methods: post hoc, per gradient evaluation, with CriGrad,
inside NoiseTunnel (captum_crigrad.forgrad.attr)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)

from captum_crigrad.core.hooks import with_gradient_transform
from captum_crigrad.crigrad.transform import CriGrad
from captum_crigrad.forgrad.attr import (
    FORGrad,
    FORGradAttribution,
    FORGradInputXGradient,
    FORGradIntegratedGradients,
    FORGradLayerGradCam,
    FORGradSaliency,
    with_forgrad,
)
from captum_crigrad.forgrad.filter import forgrad
from captum_crigrad.io.models import SmallCNN

SIGMA = 4.0


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=3, width=8).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 20, 24, generator=g), torch.tensor([0, 3, 5, 9])


def _rel_diff(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


def _hook_count(model):
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def test_post_hoc_is_forgrad_of_the_method(model, data):
    x, t = data
    for cls, base in (
        (FORGradSaliency, Saliency),
        (FORGradInputXGradient, InputXGradient),
    ):
        ours = cls(model, sigma=SIGMA).attribute(x, target=t)
        ref = forgrad(base(model).attribute(x, target=t), SIGMA)
        assert ours.shape == (4, 1, 20, 24)
        torch.testing.assert_close(ours, ref, atol=1e-7, rtol=1e-5)
    ours = FORGradIntegratedGradients(model, sigma=SIGMA, post="relu").attribute(
        x, target=t, n_steps=8
    )
    ref = forgrad(
        IntegratedGradients(model).attribute(x, target=t, n_steps=8), SIGMA, post="relu"
    )
    torch.testing.assert_close(ours, ref, atol=1e-7, rtol=1e-5)
    # generic wrapper, default size-relative cutoff
    ours = with_forgrad(Saliency(model)).attribute(x, target=t)
    torch.testing.assert_close(ours, forgrad(Saliency(model).attribute(x, target=t)))


def test_layer_gradcam_is_upsampled_then_filtered(model, data):
    x, t = data
    layer = model.features[5]
    ours = FORGradLayerGradCam(model, layer, sigma=SIGMA).attribute(x, target=t)
    cam = LayerGradCam(model, layer).attribute(x, target=t)
    assert cam.shape[-2:] != x.shape[-2:]
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours, forgrad(up, SIGMA, post="relu"))
    assert ours.shape == (4, 1, 20, 24) and (ours >= 0).all()
    # decided by what the method does: LayerGradCam never calls gradient_func
    per_step = FORGradAttribution(LayerGradCam(model, layer), SIGMA, where="per_step")
    with pytest.raises(TypeError, match="gradient_func"):
        per_step.attribute(x, target=t)


def test_per_step_equals_post_hoc_for_saliency(model, data):
    x, t = data
    # the map is the gradient itself: filtering it before or after is the same
    for post, reduce in (("abs", True), ("none", False), ("relu", True)):
        per_step = FORGradSaliency(
            model, sigma=SIGMA, where="per_step", post=post, reduce_channels=reduce
        ).attribute(x, target=t, abs=False)
        post_hoc = FORGradSaliency(
            model, sigma=SIGMA, post=post, reduce_channels=reduce
        ).attribute(x, target=t, abs=False)
        torch.testing.assert_close(
            per_step, post_hoc.expand_as(per_step), atol=1e-8, rtol=1e-5
        )


def test_per_step_equals_post_hoc_for_smoothgrad_with_linear_filter(model, data):
    x, t = data
    opts = dict(post="none", reduce_channels=False)
    kwargs = dict(target=t, abs=False, nt_samples=3, stdevs=0.5)
    torch.manual_seed(5)
    per_step = NoiseTunnel(
        FORGradSaliency(model, sigma=SIGMA, where="per_step", **opts)
    ).attribute(x, **kwargs)
    torch.manual_seed(5)
    post_hoc = FORGradAttribution(
        NoiseTunnel(Saliency(model)), SIGMA, **opts
    ).attribute(x, **kwargs)
    torch.testing.assert_close(per_step, post_hoc, atol=1e-8, rtol=1e-5)
    # ... but not with the reference's nonlinear abs pipeline
    torch.manual_seed(5)
    a = NoiseTunnel(FORGradSaliency(model, sigma=SIGMA, where="per_step")).attribute(
        x, **kwargs
    )
    torch.manual_seed(5)
    b = FORGradAttribution(NoiseTunnel(Saliency(model)), SIGMA).attribute(x, **kwargs)
    assert _rel_diff(a[:, :1], b) > 0.05


@pytest.mark.parametrize("cls", [FORGradInputXGradient, FORGradIntegratedGradients])
def test_per_step_differs_from_post_hoc_once_multiplied_by_input(model, data, cls):
    x, t = data
    opts = dict(post="none", reduce_channels=False)
    kwargs = (
        dict(target=t) if cls is FORGradInputXGradient else dict(target=t, n_steps=8)
    )
    per_step = cls(model, sigma=SIGMA, where="per_step", **opts).attribute(x, **kwargs)
    post_hoc = cls(model, sigma=SIGMA, **opts).attribute(x, **kwargs)
    assert per_step.shape == post_hoc.shape == x.shape
    assert _rel_diff(per_step, post_hoc) > 0.1
    # per step is exactly (x - baseline) * filtered gradient for InputXGradient
    if cls is FORGradInputXGradient:
        grad = Saliency(model).attribute(x, target=t, abs=False)
        torch.testing.assert_close(
            per_step, x * forgrad(grad, SIGMA, **opts), atol=1e-8, rtol=1e-5
        )


@pytest.mark.parametrize(
    "make,kwargs",
    [
        (lambda m: FORGradSaliency(m, sigma=SIGMA), {}),
        (lambda m: FORGradSaliency(m, sigma=SIGMA, where="per_step"), {}),
        (lambda m: FORGradInputXGradient(m, sigma=SIGMA), {}),
        (lambda m: FORGradIntegratedGradients(m, sigma=SIGMA), dict(n_steps=4)),
        (
            lambda m: FORGradIntegratedGradients(m, sigma=SIGMA, where="per_step"),
            dict(n_steps=4),
        ),
        (lambda m: FORGradLayerGradCam(m, m.features[5], sigma=SIGMA), {}),
    ],
)
def test_forgrad_classes_compose_with_noise_tunnel(model, data, make, kwargs):
    x, t = data
    method = make(model)
    plain = method.attribute(x, target=t, **kwargs)
    nt = NoiseTunnel(method)
    # no noise: the average of identical maps is the map
    same = nt.attribute(x, target=t, nt_samples=3, stdevs=0.0, **kwargs)
    torch.testing.assert_close(same, plain, atol=1e-7, rtol=1e-5)
    # with noise: a different, still per-image and well-shaped map
    torch.manual_seed(3)
    noisy = nt.attribute(x, target=t, nt_samples=3, stdevs=0.5, **kwargs)
    assert noisy.shape == plain.shape and torch.isfinite(noisy).all()
    assert _rel_diff(noisy, plain) > 1e-3
    torch.manual_seed(3)
    again = nt.attribute(x, target=t, nt_samples=3, stdevs=0.5, **kwargs)
    torch.testing.assert_close(again, noisy)


def test_smoothgrad_of_forgrad_is_mean_of_filtered_noisy_maps(model, data):
    # NoiseTunnel(FORGradSaliency) averages forgrad(Saliency(x + noise_i)).
    x, t = data
    torch.manual_seed(11)
    nt = NoiseTunnel(FORGradSaliency(model, sigma=SIGMA)).attribute(
        x[:1], target=t[:1], nt_samples=3, stdevs=0.5
    )
    torch.manual_seed(11)
    noise = torch.normal(0, torch.tensor(0.5).repeat((3,) + tuple(x.shape[1:])))
    maps = forgrad(
        Saliency(model).attribute(x[:1] + noise, target=t[:1].repeat(3)), SIGMA
    )
    torch.testing.assert_close(nt, maps.mean(dim=0, keepdim=True), atol=1e-8, rtol=1e-5)


def test_map_does_not_depend_on_batch_neighbours(model, data):
    x, t = data
    for method in (
        FORGradSaliency(model, sigma=SIGMA),
        FORGradSaliency(model, sigma=SIGMA, where="per_step"),
    ):
        batched = method.attribute(x, target=t)
        for i in range(len(x)):
            torch.testing.assert_close(
                batched[i : i + 1],
                method.attribute(x[i : i + 1], target=t[i : i + 1]),
                atol=1e-8,
                rtol=1e-5,
            )


def test_crigrad_and_forgrad_on_one_method(model, data):
    x, t = data
    crigrad = CriGrad(keep=0.3)
    # post hoc after CriGrad: forgrad of the CriGrad saliency
    both = FORGradSaliency(model, sigma=SIGMA, transform=crigrad).attribute(x, target=t)
    cri = with_gradient_transform(Saliency(model), crigrad).attribute(x, target=t)
    torch.testing.assert_close(both, forgrad(cri, SIGMA))
    assert (
        _rel_diff(both, FORGradSaliency(model, sigma=SIGMA).attribute(x, target=t))
        > 1e-2
    )
    # per step, composed with +: keep=1.0 CriGrad is the plain gradient
    per_step = with_gradient_transform(
        Saliency(model), CriGrad(keep=1.0) + FORGrad(SIGMA)
    )
    only_forgrad = with_gradient_transform(Saliency(model), FORGrad(SIGMA))
    torch.testing.assert_close(
        per_step.attribute(x, target=t, abs=False),
        only_forgrad.attribute(x, target=t, abs=False),
    )
    filtered_cri = FORGradSaliency(
        model,
        sigma=SIGMA,
        where="per_step",
        transform=crigrad,
        post="none",
        reduce_channels=False,
    )
    cri_signed = with_gradient_transform(Saliency(model), crigrad).attribute(
        x, target=t, abs=False
    )
    torch.testing.assert_close(
        filtered_cri.attribute(x, target=t, abs=False),
        forgrad(cri_signed, SIGMA, post="none", reduce_channels=False),
        atol=1e-8,
        rtol=1e-5,
    )
    assert _hook_count(model) == 0


def test_tuple_in_tuple_out():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SmallCNN(in_channels=3, width=4)

        def forward(self, a, b):
            return self.net(a + 2 * b)

    torch.manual_seed(0)
    model = TwoInputs().eval()
    g = torch.Generator().manual_seed(2)
    a, b = (
        torch.randn(2, 3, 16, 16, generator=g),
        torch.randn(2, 3, 16, 16, generator=g),
    )
    out = FORGradSaliency(model, sigma=3).attribute((a, b), target=1)
    assert isinstance(out, tuple) and len(out) == 2
    ga, gb = Saliency(model).attribute((a, b), target=1)
    torch.testing.assert_close(out[0], forgrad(ga, 3))
    torch.testing.assert_close(out[1], forgrad(gb, 3))
    per_step = FORGradSaliency(model, sigma=3, where="per_step").attribute(
        (a, b), target=1
    )
    assert isinstance(per_step, tuple) and per_step[0].shape == a.shape


def test_per_step_leaves_non_image_inputs_alone():
    class ImageAndScalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SmallCNN(in_channels=3, width=4)

        def forward(self, image, extra):
            return self.net(image) * extra.sum(dim=1, keepdim=True)

    torch.manual_seed(0)
    model = ImageAndScalar().eval()
    g = torch.Generator().manual_seed(3)
    image, extra = (
        torch.randn(2, 3, 16, 16, generator=g),
        torch.randn(2, 5, generator=g),
    )
    g_img, g_extra = Saliency(model).attribute((image, extra), target=2, abs=False)
    out_img, out_extra = FORGradSaliency(
        model, sigma=3, where="per_step", post="none", reduce_channels=False
    ).attribute((image, extra), target=2, abs=False)
    torch.testing.assert_close(out_extra, g_extra)
    torch.testing.assert_close(
        out_img, forgrad(g_img, 3, post="none", reduce_channels=False)
    )
    with pytest.raises(ValueError, match="input 1"):
        FORGradSaliency(model, sigma=3).attribute((image, extra), target=2)


def test_forgrad_transform_keeps_gradient_shapes():
    g = torch.randn(2, 3, 10, 12)
    flat = torch.randn(2, 5)
    out = FORGrad(2.0, post="abs", reduce_channels=True).transform_gradients(
        (g, flat), (g, flat)
    )
    assert out[0].shape == g.shape and torch.equal(out[0][:, 0], out[0][:, 2])
    assert out[1] is flat


def test_original_attribution_untouched(model, data):
    x, t = data
    sal = Saliency(model)
    before = sal.gradient_func
    FORGradAttribution(
        sal, SIGMA, where="per_step", transform=CriGrad(keep=0.5)
    ).attribute(x, target=t)
    assert sal.gradient_func is before
    assert _hook_count(model) == 0


def test_bad_input_fails_before_any_work(model, data):
    x, t = data
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="sigma"):
            FORGradSaliency(model, sigma=30.0).attribute(x, target=t)  # min(H, W) = 20
        with pytest.raises(ValueError, match="inputs"):
            FORGradSaliency(model, sigma=2.0).attribute(torch.randn(4, 10), target=t)
        with pytest.raises(ValueError, match="return_convergence_delta"):
            FORGradIntegratedGradients(model, sigma=SIGMA).attribute(
                x, target=t, return_convergence_delta=True
            )
        assert calls == []
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="sigma"):
        FORGradSaliency(model, sigma=0)
    with pytest.raises(ValueError, match="sigma"):
        FORGrad(-1.0)
    with pytest.raises(ValueError, match="post"):
        FORGradSaliency(model, sigma=2.0, post="square")
    with pytest.raises(ValueError, match="where"):
        FORGradSaliency(model, sigma=2.0, where="inside")
    with pytest.raises(TypeError, match="attribution"):
        FORGradAttribution(model, 2.0)
    with pytest.raises(TypeError, match="transform"):
        FORGradSaliency(model, sigma=2.0, transform="crigrad")


def test_per_step_integrated_gradients_keeps_convergence_delta(model, data):
    x, t = data
    method = FORGradIntegratedGradients(model, sigma=SIGMA, where="per_step")
    assert method.has_convergence_delta()
    attr, delta = method.attribute(
        x, target=t, n_steps=4, return_convergence_delta=True
    )
    assert attr.shape == x.shape and delta.shape == (4,)
    assert not FORGradIntegratedGradients(model, sigma=SIGMA).has_convergence_delta()
