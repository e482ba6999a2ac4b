import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Saliency
from helpers import assert_untouched, snapshot

from captum_crigrad import CriGradSaliency
from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.io.default import (
    GRADCAM_LAYER,
    load_default_images,
    load_default_model,
)
from captum_crigrad.methods.explain import (
    ExplainOptions,
    available_methods,
    explain,
    parse_methods,
    to_map,
)


@pytest.fixture(scope="module")
def data():
    images, labels = load_default_images()
    return images[:6], labels[:6]


def test_matches_captum_and_crigrad_classes(data):
    images, labels = data
    model = load_default_model()
    out = explain(
        model,
        images,
        "saliency,crigrad,integratedgradients",
        target=labels,
        options=ExplainOptions(keep=0.2, n_steps=8),
    )
    x = images.clone().requires_grad_(True)
    torch.testing.assert_close(
        out["saliency"], Saliency(model).attribute(x, target=labels, abs=False)
    )
    expected = CriGradSaliency(model, keep=0.2).attribute(x, target=labels, abs=False)
    torch.testing.assert_close(out["crigrad"], expected)
    assert not torch.allclose(out["crigrad"], out["saliency"])
    ig = IntegratedGradients(model).attribute(x, target=labels, n_steps=8)
    torch.testing.assert_close(out["integratedgradients"], ig)


def test_crigrad_keep_one_is_the_plain_method(data):
    images, labels = data
    model = load_default_model()
    out = explain(
        model,
        images,
        "integratedgradients,crigrad-integratedgradients,gradcam,crigrad-gradcam",
        target=labels,
        options=ExplainOptions(keep=1.0, n_steps=4, layer=GRADCAM_LAYER),
    )
    torch.testing.assert_close(
        out["crigrad-integratedgradients"], out["integratedgradients"]
    )
    torch.testing.assert_close(out["crigrad-gradcam"], out["gradcam"])


def test_gradcam_upsampled_and_default_target_is_prediction(data):
    images, _ = data
    model = load_default_model()
    out = explain(
        model, images, ["gradcam"], options=ExplainOptions(layer=GRADCAM_LAYER)
    )
    assert out["gradcam"].shape == (6, 1, 28, 28) and out["gradcam"].min() >= 0
    pred = model(images).argmax(1)
    layer = dict(model.named_modules())[GRADCAM_LAYER]
    cam = LayerGradCam(model, layer).attribute(
        images, target=pred, relu_attributions=True
    )
    small = torch.nn.functional.interpolate(
        out["gradcam"], size=cam.shape[-2:], mode="area"
    )
    # upsampling then area-downsampling keeps the coarse structure
    assert torch.corrcoef(torch.stack([small.flatten(), cam.flatten()]))[0, 1] > 0.9
    assert default_cam_layer(model, images) == GRADCAM_LAYER  # one rule everywhere


def test_batch_independent_and_model_untouched(data):
    images, labels = data
    model = load_default_model().train()
    snap = snapshot(model)
    full = explain(
        model,
        images,
        "crigrad,smoothgrad",
        batch_size=6,
        options=ExplainOptions(n_samples=3, seed=1),
    )
    assert_untouched(model, snap)
    rng = torch.get_rng_state()
    parts = explain(
        model,
        images,
        "crigrad,smoothgrad",
        batch_size=6,
        options=ExplainOptions(n_samples=3, seed=1),
    )
    assert torch.equal(rng, torch.get_rng_state())  # global RNG untouched
    torch.testing.assert_close(full["smoothgrad"], parts["smoothgrad"])  # seeded
    model.eval()
    small = explain(model, images, "crigrad", batch_size=2)
    torch.testing.assert_close(small["crigrad"], full["crigrad"])


def test_to_map():
    a = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]]]])  # (1, 2, 1, 2)
    assert to_map(a).tolist() == [[[[4.0, 2.5]]]]
    assert to_map(a, (2, 4)).shape == (1, 1, 2, 4)
    with pytest.raises(ValueError, match="attributions"):
        to_map(torch.zeros(3, 3))


def test_bad_names_and_options(data):
    images, _ = data
    model = load_default_model()
    parsed = parse_methods(" Saliency, crigrad ,saliency")
    assert [r.name for r in parsed] == ["Saliency", "crigrad"]
    assert [r.canonical for r in parsed] == ["saliency", "crigrad-saliency"]
    for bad in ["nope", "crigrad-nope", "foo-saliency", "crigrad-crigrad-saliency", ""]:
        with pytest.raises(ValueError, match="methods"):
            parse_methods(bad)
    with pytest.raises(ValueError, match="keep"):
        explain(model, images, "crigrad", options=ExplainOptions(keep=1.5))
    with pytest.raises(ValueError, match="crigrad_layers"):
        explain(
            model, images, "crigrad", options=ExplainOptions(crigrad_layers=["nope"])
        )
    with pytest.raises(ValueError, match="layer"):
        explain(model, images, "gradcam", options=ExplainOptions(layer="nope"))
    with pytest.raises(ValueError, match="n_steps"):
        explain(model, images, "saliency", options=ExplainOptions(n_steps=0))
    with pytest.raises(ValueError, match="target"):
        explain(model, images, "saliency", target=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="images"):
        explain(model, images[0], "saliency")
    assert "saliency" in available_methods()
    assert [r.canonical for r in parse_methods("ig,crigrad-ixg@0.3")] == [
        "integratedgradients",
        "crigrad-inputxgradient@keep=0.3",
    ]  # eval's short names and keep option


def test_forgrad_modifier_filters_the_final_map(data):
    from captum_crigrad.forgrad.filter import forgrad, sigma_keeping_all

    images, labels = data
    model = load_default_model()
    out = explain(
        model,
        images,
        "saliency,crigrad,forgrad,crigrad-forgrad,forgrad-gradcam",
        target=labels,
        options=ExplainOptions(forgrad_sigma=5.0, layer=GRADCAM_LAYER),
    )
    torch.testing.assert_close(out["forgrad"], forgrad(out["saliency"], 5.0))
    torch.testing.assert_close(out["crigrad-forgrad"], forgrad(out["crigrad"], 5.0))
    assert out["forgrad-gradcam"].shape == (6, 1, 28, 28)
    # a cutoff that keeps every frequency gives back |map|
    full = explain(
        model,
        images,
        "forgrad",
        target=labels,
        options=ExplainOptions(forgrad_sigma=sigma_keeping_all(28, 28)),
    )
    torch.testing.assert_close(
        full["forgrad"], out["saliency"].abs(), atol=1e-6, rtol=1e-4
    )

    # low-pass: less high-frequency energy than the raw map
    def roughness(m):
        return (m[..., 1:] - m[..., :-1]).abs().mean() / m.abs().mean()

    assert roughness(out["forgrad"]) < 0.5 * roughness(out["saliency"].abs())
    for bad, match in [(100.0, "forgrad_sigma"), (-1.0, "forgrad_sigma")]:
        with pytest.raises(ValueError, match=match):
            explain(model, images, "forgrad", options=ExplainOptions(forgrad_sigma=bad))
    with pytest.raises(ValueError, match="forgrad_post"):
        explain(model, images, "forgrad", options=ExplainOptions(forgrad_post="square"))
    assert {r.canonical for r in parse_methods("crigrad-forgrad,forgrad-crigrad")} == {
        "crigrad-forgrad-saliency"
    }


def test_forgrad_modifier_defaults_to_the_energy_rule(data):
    """No cutoff given: forgrad- uses energy 0.75, crigrad-forgrad- 0.9
    (docs/defaults_study.md); @energy= and forgrad_energy override them."""
    from captum_crigrad.forgrad.filter import forgrad

    images, labels = data
    model = load_default_model()
    out = explain(
        model,
        images,
        "saliency,crigrad,forgrad,crigrad-forgrad,forgrad@energy=0.5",
        target=labels,
    )
    torch.testing.assert_close(out["forgrad"], forgrad(out["saliency"], energy=0.75))
    torch.testing.assert_close(
        out["crigrad-forgrad"], forgrad(out["crigrad"], energy=0.9)
    )
    torch.testing.assert_close(
        out["forgrad@energy=0.5"], forgrad(out["saliency"], energy=0.5)
    )
    again = explain(
        model,
        images,
        "forgrad",
        target=labels,
        options=ExplainOptions(forgrad_energy=0.5),
    )
    torch.testing.assert_close(again["forgrad"], out["forgrad@energy=0.5"])


def test_expected_gradcam_by_name(data):
    from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM

    images, labels = data
    model = load_default_model()
    opts = ExplainOptions(layer=GRADCAM_LAYER, n_samples=4, stdev=0.1, seed=3)
    out = explain(
        model,
        images,
        "expectedgradcam,crigrad-expectedgradcam",
        target=labels,
        options=opts,
        batch_size=6,
    )
    layer = dict(model.named_modules())[GRADCAM_LAYER]
    cam = ExpectedGradCAM(model, layer).attribute(
        images,
        target=labels,
        n_samples=4,
        stdevs=0.1,
        generator=torch.Generator().manual_seed(3),
    )
    up = torch.nn.functional.interpolate(
        cam, size=(28, 28), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out["expectedgradcam"], up)
    assert out["crigrad-expectedgradcam"].shape == (6, 1, 28, 28)
    assert not torch.allclose(out["crigrad-expectedgradcam"], out["expectedgradcam"])
    again = explain(
        model, images, "expectedgradcam", target=labels, options=opts, batch_size=6
    )
    torch.testing.assert_close(
        again["expectedgradcam"], out["expectedgradcam"]
    )  # seeded


def test_other_cams_by_name(data):
    from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
    from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM

    images, labels = data
    model = load_default_model()
    layer = dict(model.named_modules())[GRADCAM_LAYER]
    out = explain(
        model,
        images,
        "gradcampp,integratedgradcam,crigrad-gradcampp",
        target=labels,
        options=ExplainOptions(layer=GRADCAM_LAYER, n_steps=5),
    )
    pp = GradCAMPlusPlus(model, layer).attribute(
        images, target=labels, upsample=(28, 28)
    )
    ig = IntegratedGradCAM(model, layer).attribute(
        images, target=labels, n_steps=5, upsample=(28, 28)
    )
    torch.testing.assert_close(out["gradcampp"], pp)
    torch.testing.assert_close(out["integratedgradcam"], ig)
    assert out["crigrad-gradcampp"].shape == (6, 1, 28, 28)


class HalfSquare(torch.nn.Module):
    """Class 0 = sum(x^2) / 2, so its gradient at x + eps is x + eps."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        y = self.scale * x.pow(2).flatten(1).sum(1) / 2
        return torch.stack([y, torch.zeros_like(y)], 1)


def test_smoothgrad_noise_is_captums_in_distribution():
    # SmoothGrad = x + the mean of n_samples draws of N(0, stdev^2): the
    # residual has mean 0 and std stdev / sqrt(n_samples), as with Captum's
    # NoiseTunnel(Saliency) (stdev in input units, not scaled by the range)
    from captum.attr import NoiseTunnel

    model = HalfSquare()
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 3
    target = torch.zeros(8, dtype=torch.long)
    ours = explain(
        model,
        x,
        "smoothgrad",
        target=target,
        options=ExplainOptions(n_samples=4, stdev=0.5),
    )["smoothgrad"]
    torch.manual_seed(0)
    captum = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=4, stdevs=0.5, target=0, abs=False
    )
    for maps in (ours, captum):
        residual = (maps - x).flatten()
        assert abs(residual.mean()) < 0.02
        assert abs(residual.std() - 0.25) < 0.02
