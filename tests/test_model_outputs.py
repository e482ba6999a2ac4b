"""Models whose forward returns something other than a tensor of logits: a
transformers ``ModelOutput``, a tuple, a mapping with ``"logits"``. Every
entry point reads the logits from them (one place:
``captum_crigrad.core.forward.logits_of``) and gives the result it gives on
the same model returning the tensor; anything else is one clear TypeError.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from helpers import hook_count

from captum_crigrad import (
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    ExpectedGradCAM,
    FORGradSaliency,
    GradCAM,
    GradCAMPlusPlus,
    gradient_map,
)
from captum_crigrad.core.forward import logits_of, predict
from captum_crigrad.methods.explain import explain
from captum_crigrad.metrics import deletion, infidelity, insertion, road, sensitivity_n


class _Net(nn.Module):
    """A small CNN; ``wrap`` turns its logits into another output type."""

    def __init__(self, wrap=None):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)
        )
        self.wrap = wrap

    def forward(self, x):
        logits = self.head(self.features(x))
        return logits if self.wrap is None else self.wrap(logits)


def _model_output(logits):
    transformers = pytest.importorskip("transformers")
    return transformers.modeling_outputs.ImageClassifierOutput(logits=logits)


WRAPS = {
    "transformers ModelOutput": _model_output,
    "tuple": lambda z: (z, z.detach() * 0),
    "list": lambda z: [z],
    "mapping": lambda z: OrderedDict(loss=None, logits=z),
    "dict": lambda z: {"logits": z, "aux": z.sum()},
}


def _x():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 12, 12, generator=g)


ENTRY_POINTS = {
    "CriGradSaliency": lambda m, x: CriGradSaliency(m).attribute(x, target=1),
    "CriGradSaliency on model.forward": lambda m, x: CriGradSaliency(
        m.forward, model=m
    ).attribute(x, target=1),
    "CriGradIntegratedGradients": lambda m, x: CriGradIntegratedGradients(
        m, keep=0.3
    ).attribute(x, target=1, n_steps=4),
    "FORGradSaliency": lambda m, x: FORGradSaliency(m).attribute(x, target=1),
    "GradCAM": lambda m, x: GradCAM(m, m.features[2]).attribute(x, target=1),
    "CriGradLayerGradCam": lambda m, x: CriGradLayerGradCam(m, m.features[2]).attribute(
        x, target=1
    ),
    "GradCAMPlusPlus": lambda m, x: GradCAMPlusPlus(m, m.features[2]).attribute(
        x, target=1
    ),
    "ExpectedGradCAM": lambda m, x: ExpectedGradCAM(m, m.features[2]).attribute(
        x, target=1, n_samples=4, generator=torch.Generator().manual_seed(0)
    ),
    "explain": lambda m, x: torch.cat(
        [a.flatten() for a in explain(m, x, "saliency,crigrad,gradcam").values()]
    ),
    "gradient_map": lambda m, x: gradient_map(m, x, "GuidedBackprop", target=1),
    "predict": lambda m, x: torch.stack(predict(m, x)).float(),
    "deletion": lambda m, x: deletion(m, x, x.abs(), target=1, n_steps=4).scores,
    "insertion": lambda m, x: insertion(m, x, x.abs(), target=1, n_steps=4).scores,
    "road": lambda m, x: (
        road(m, x, x.abs(), target=1, fractions=(0.2, 0.5), noise=0.0).morf
    ),
    "sensitivity_n": lambda m, x: torch.as_tensor(
        sensitivity_n(
            m, x, x, n=(4,), n_subsets=8, target=1, seeds=[0, 1, 2]
        ).correlations
    ),
    "infidelity": lambda m, x: infidelity(
        m, x, x, target=1, n_perturb_samples=4, seeds=[0, 1, 2]
    ),
}


@pytest.mark.parametrize("wrap", sorted(WRAPS))
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_reads_the_logits(entry, wrap):
    x = _x()
    plain = _Net().eval()
    wrapped = _Net(WRAPS[wrap]).eval()
    expected = ENTRY_POINTS[entry](plain, x)
    got = ENTRY_POINTS[entry](wrapped, x)
    assert torch.allclose(torch.as_tensor(got), torch.as_tensor(expected), atol=1e-6)
    assert hook_count(wrapped) == 0  # nothing left on the model


@pytest.mark.parametrize(
    "bad, said",
    [
        (lambda z: "logits", "returned a str"),
        (lambda z: {"scores": z}, "returned a dict with keys 'scores'"),
        (lambda z: (), "returned a tuple whose first element is nothing"),
        (lambda z: ("a", z), "returned a tuple whose first element is str"),
    ],
)
@pytest.mark.parametrize("entry", ["CriGradSaliency", "GradCAM", "predict", "deletion"])
def test_anything_else_is_one_clear_type_error(bad, said, entry):
    model = _Net(bad).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match=said) as info:
        ENTRY_POINTS[entry](model, _x())
    assert "expected logits" in str(info.value) and "Wrap the model" in str(info.value)
    assert hook_count(model) == 0 and not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_logits_of_reads_each_form_and_leaves_a_tensor_alone():
    z = torch.randn(2, 4)
    assert logits_of(z) is z
    assert logits_of((z, 1)) is z
    assert logits_of({"logits": z}) is z
    with pytest.raises(TypeError, match="the model: returned a NoneType"):
        logits_of(None)
    with pytest.raises(TypeError, match="forward_func: returned a int"):
        logits_of(3, source="forward_func")


def test_a_transformers_classifier_passed_straight_in():
    """A tiny random-init ViTForImageClassification (no download) in the
    drop-ins, the CAMs and the metrics, with no glue."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()

    class Logits(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).logits

    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    glue = Logits(model).eval()
    layer = model.vit.layers[-1]  # transformers 5 (4: vit.encoder.layer)
    pairs = [
        (
            CriGradSaliency(model).attribute(x, target=1),
            CriGradSaliency(glue).attribute(x, target=1),
        ),
        (
            GradCAM(model, layer).attribute(x, target=1),
            GradCAM(glue, layer).attribute(x, target=1),
        ),
        (
            deletion(model, x, x.abs(), target=1, n_steps=4).scores,
            deletion(glue, x, x.abs(), target=1, n_steps=4).scores,
        ),
    ]
    for ours, reference in pairs:
        assert torch.allclose(ours, reference, atol=1e-5)
    assert hook_count(model) == 0
