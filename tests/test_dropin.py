"""The drop-in classes are Captum's: signatures, call forms, composition.

Every call form here failed before (issue 13's Captum compatibility run;
scripts/check_captum_compat.py runs Captum's own tests): forward functions
that are not modules, list-of-tuple and negative targets, Captum's
positional constructor arguments, Captum constructing our classes itself.
"""

import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    LayerIntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from captum.metrics import infidelity, sensitivity_max
from helpers import hook_count

from captum_crigrad import (
    CriGrad,
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    FORGradInputXGradient,
    FORGradIntegratedGradients,
    FORGradLayerGradCam,
    FORGradSaliency,
    crigrad_attribution,
    forgrad,
)
from captum_crigrad.core.activations import ACTIVATION_MODULES, count_calls

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")

DROP_INS = [
    (CriGradSaliency, Saliency),
    (CriGradInputXGradient, InputXGradient),
    (CriGradIntegratedGradients, IntegratedGradients),
    (CriGradLayerGradCam, LayerGradCam),
    (FORGradSaliency, Saliency),
    (FORGradInputXGradient, InputXGradient),
    (FORGradIntegratedGradients, IntegratedGradients),
    (FORGradLayerGradCam, LayerGradCam),
]


def _positional(sig):
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        (p.name, p.kind, p.default) for p in sig.parameters.values() if p.kind in kinds
    ]


@pytest.mark.parametrize("ours,captum", DROP_INS, ids=lambda c: c.__name__)
def test_signatures_are_captums(ours, captum):
    for method in ("__init__", "attribute"):
        mine = inspect.signature(getattr(ours, method))
        theirs = inspect.signature(getattr(captum, method))
        assert _positional(mine) == _positional(theirs), method
        for name, p in mine.parameters.items():
            if name in theirs.parameters:
                assert p.kind == theirs.parameters[name].kind, (method, name)
                assert p.default == theirs.parameters[name].default, (method, name)
            else:  # our options: keyword-only
                assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), (method, name)
    # attribute is decorated as Captum's (NoiseTunnel calls __wrapped__)
    assert hasattr(ours.attribute, "__wrapped__")
    prefix = "CriGrad" if ours.__name__.startswith("CriGrad") else "FORGrad"
    assert ours.get_name() == f"{prefix} {captum.get_name()}"


class _Nets:
    """Small models whose activations are modules, functions or neither."""

    @staticmethod
    def relu6_modules():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU6(),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.Hardswish(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 5),
        ).eval()

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            h = F.relu(self.conv(x))
            h = F.gelu(self.conv2(h)) + torch.relu(h).sigmoid()
            return self.fc(h.mean(dim=(2, 3)).relu())

        def logits(self, x):
            return self(x)


X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _forward_funcs():
    seq = _Nets.relu6_modules()
    fun = _Nets.Functional().eval()
    return [
        ("module", seq, seq),
        ("lambda", (lambda x: seq(x)), seq),
        ("bound method", fun.logits, fun),
        ("closure", (lambda f: lambda x: f(x))(fun), fun),
        # Captum's own tests pass model.forward: it skips the module's hooks
        ("model.forward", seq.forward, seq),
        ("functional model.forward", fun.forward, fun),
        ("lambda calling model.forward", (lambda x: fun.forward(x)), fun),
    ]


@pytest.mark.parametrize("name,forward_func,model", _forward_funcs())
def test_any_forward_func_keep_one_is_captum_and_filters_below(
    name, forward_func, model
):
    targets = [2, -1, [0, 4, -2], torch.tensor([1, 2, 3])]
    for target in targets:
        ref_target = target
        if isinstance(target, list):
            ref_target = [t % 5 for t in target]
        elif isinstance(target, int) and target < 0:
            ref_target = target % 5
        ref = Saliency(forward_func).attribute(X, target=ref_target)
        same = CriGradSaliency(forward_func, keep=1.0).attribute(X, target=target)
        torch.testing.assert_close(same, ref, atol=0, rtol=0)
        # the default two_pass mode starts its plain backward at the output
        # of each call of forward_func, whatever forward_func is (model= or
        # not): the same map as on the module itself
        on_module = CriGradSaliency(model, keep=0.3).attribute(X, target=target)
        assert not torch.allclose(on_module, ref)
        for named in (None, model):
            ours = CriGradSaliency(forward_func, keep=0.3, model=named).attribute(
                X, target=target
            )
            torch.testing.assert_close(ours, on_module, atol=1e-6, rtol=1e-5)
        online = CriGradSaliency(forward_func, keep=0.3, mode="online")
        ours = online.attribute(X, target=target)
        assert ours.shape == ref.shape and not torch.allclose(ours, ref)
    assert hook_count(model) == 0


@pytest.mark.parametrize("name,forward_func,model", _forward_funcs())
def test_two_pass_sees_every_forward_func_in_every_class(name, forward_func, model):
    """The call forms of Captum's classification tests (IntegratedGradients
    and InputXGradient of ``model.forward``) and the layer and wrapped
    methods: the default two_pass CriGrad equals its result on the module."""
    target = [1, 4, -1]
    base = torch.zeros_like(X)

    def classes(f):
        return [
            (CriGradInputXGradient(f, keep=0.3), {}),
            (CriGradIntegratedGradients(f, keep=0.3), {"n_steps": 4}),
            (
                crigrad_attribution(IntegratedGradients(f), keep=0.3),
                {"n_steps": 4, "baselines": base},
            ),
        ]

    for (ours, kw), (ref, _) in zip(classes(forward_func), classes(model), strict=True):
        expected = ref.attribute(X, target=target, **kw)
        got = ours.attribute(X, target=target, **kw)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    layer = model[2] if isinstance(model, nn.Sequential) else model.conv2
    cam = CriGradLayerGradCam(forward_func, layer, keep=0.3).attribute(X, target=2)
    ref_cam = CriGradLayerGradCam(model, layer, keep=0.3).attribute(X, target=2)
    torch.testing.assert_close(cam, ref_cam, atol=1e-6, rtol=1e-5)
    plain = LayerGradCam(model, layer).attribute(X, target=2)
    assert cam.shape == plain.shape
    assert hook_count(model) == 0


@pytest.mark.parametrize("name,forward_func,model", _forward_funcs())
def test_two_pass_sees_every_forward_func_in_the_cams(name, forward_func, model):
    """The CAMs' ``gradient_transform=CriGrad()`` (default two_pass) on every
    forward_func form equals it on the module."""
    from captum_crigrad.cam import ExpectedGradCAM, GradCAMPlusPlus, IntegratedGradCAM

    layer = model[2] if isinstance(model, nn.Sequential) else model.conv2
    for cls in (ExpectedGradCAM, GradCAMPlusPlus, IntegratedGradCAM):
        maps = []
        for f in (model, forward_func):
            cam = cls(f, layer, gradient_transform=CriGrad(keep=0.3))
            kw = {"generator": 1} if cls is ExpectedGradCAM else {}
            maps.append(cam.attribute(X, target=2, **kw))
        torch.testing.assert_close(maps[1], maps[0], atol=1e-6, rtol=1e-5)
    assert hook_count(model) == 0


def test_two_pass_without_a_forward_pass_to_see_is_a_clear_error_before_work():
    """A transform context with neither a model nor a forward function to
    delimit cannot run two_pass: a ValueError before the first pass."""
    fun = _Nets.Functional().eval()
    calls = []

    def forward(x):
        calls.append(1)
        return fun(x)

    with pytest.raises(ValueError, match="model="):
        with CriGrad(keep=0.3).context(None):
            forward(X)
    assert calls == [] and hook_count(fun) == 0


def test_list_of_tuples_target_on_multi_dimensional_output():
    net = nn.Sequential(
        nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 6), nn.Unflatten(1, (2, 3))
    )
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    target = [(0, 1), (1, 2), (0, -1)]
    ref = Saliency(net).attribute(x, target=[(0, 1), (1, 2), (0, 2)])
    ours = CriGradSaliency(net, keep=1.0).attribute(x, target=target)
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    nt = NoiseTunnel(CriGradSaliency(net, keep=1.0)).attribute(
        x, target=target, nt_samples=2, stdevs=0.0
    )
    torch.testing.assert_close(nt, ref)


def test_captums_positional_constructor_arguments():
    net = _Nets.relu6_modules()
    base = torch.zeros_like(X)
    for cls in (IntegratedGradients, CriGradIntegratedGradients):
        ig = cls(net, False)  # IntegratedGradients(forward_func, multiply_by_inputs)
        assert ig.multiplies_by_inputs is False
    ref = IntegratedGradients(net, False).attribute(X, base, 3, n_steps=4)
    ours = CriGradIntegratedGradients(net, False, keep=1.0).attribute(
        X, base, 3, n_steps=4
    )
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    # LayerGradCam(forward_func, layer, device_ids)
    cam = CriGradLayerGradCam(net, net[2], None, keep=1.0).attribute(X, 1)
    torch.testing.assert_close(cam, LayerGradCam(net, net[2], None).attribute(X, 1))
    with pytest.raises(TypeError):
        CriGradSaliency(net, CriGrad())  # options are keyword-only


def test_captum_constructs_our_classes_itself(monkeypatch):
    """The deep substitution: Captum's LayerIntegratedGradients and
    GuidedGradCam build IntegratedGradients / LayerGradCam themselves."""
    import captum.attr._core.guided_grad_cam as ggc
    import captum.attr._core.layer.layer_integrated_gradients as lig
    import captum.attr._core.neuron.neuron_integrated_gradients as nig
    from captum.attr import NeuronIntegratedGradients

    net = _Nets.relu6_modules()
    ref_lig = LayerIntegratedGradients(net, net[2]).attribute(X, target=1, n_steps=4)
    ref_ggc = GuidedGradCam(net, net[2]).attribute(X, target=1)
    ref_nig = NeuronIntegratedGradients(net, net[2]).attribute(X, (1, 3, 3), n_steps=4)
    for keep in (1.0, 0.5):
        monkeypatch.setattr(
            lig,
            "IntegratedGradients",
            lambda *a, keep=keep, **k: CriGradIntegratedGradients(*a, keep=keep, **k),
        )
        monkeypatch.setattr(
            nig,
            "IntegratedGradients",
            lambda *a, keep=keep, **k: CriGradIntegratedGradients(*a, keep=keep, **k),
        )
        monkeypatch.setattr(
            ggc,
            "LayerGradCam",
            lambda *a, keep=keep, **k: CriGradLayerGradCam(*a, keep=keep, **k),
        )
        ours_lig = LayerIntegratedGradients(net, net[2]).attribute(
            X, target=1, n_steps=4
        )
        ours_ggc = GuidedGradCam(net, net[2]).attribute(X, target=1)
        ours_nig = NeuronIntegratedGradients(net, net[2]).attribute(
            X, (1, 3, 3), n_steps=4
        )
        if keep == 1.0:
            torch.testing.assert_close(ours_lig, ref_lig, atol=1e-6, rtol=0)
            torch.testing.assert_close(ours_ggc, ref_ggc, atol=1e-6, rtol=0)
            torch.testing.assert_close(ours_nig, ref_nig, atol=1e-6, rtol=0)
        else:
            assert not torch.allclose(ours_lig, ref_lig)
            assert ours_ggc.shape == ref_ggc.shape
            assert not torch.allclose(ours_nig, ref_nig)
    assert hook_count(net) == 0


def test_captum_metrics_and_noise_tunnel_take_our_methods():
    net = _Nets.relu6_modules()
    ours = CriGradSaliency(net, keep=1.0)

    def perturb(inputs):
        noise = torch.full_like(inputs, 0.01)
        return noise, inputs - noise

    torch.manual_seed(0)
    ref = infidelity(net, perturb, X, Saliency(net).attribute(X, target=2), target=2)
    torch.manual_seed(0)
    mine = infidelity(net, perturb, X, ours.attribute(X, target=2), target=2)
    torch.testing.assert_close(mine, ref)
    torch.manual_seed(0)
    ref = sensitivity_max(
        Saliency(net).attribute, X, target=[0, 1, 2], n_perturb_samples=2
    )
    torch.manual_seed(0)
    mine = sensitivity_max(ours.attribute, X, target=[0, 1, 2], n_perturb_samples=2)
    torch.testing.assert_close(mine, ref)
    torch.manual_seed(0)
    ref = NoiseTunnel(Saliency(net)).attribute(X, target=-1, nt_samples=2, stdevs=0.1)
    torch.manual_seed(0)
    mine = NoiseTunnel(ours).attribute(X, target=-1, nt_samples=2, stdevs=0.1)
    torch.testing.assert_close(mine, ref)


@pytest.mark.parametrize("module_type", ACTIVATION_MODULES, ids=lambda t: t.__name__)
def test_every_activation_module_is_intercepted_once_per_call(module_type):
    from captum_crigrad.core.activations import ACTIVATION_FUNCTIONS

    module = module_type()
    x = torch.randn(2, 3)
    assert count_calls(lambda: (module(x), module(x)), ACTIVATION_FUNCTIONS) == 2


def test_gxi_on_gelu_keeps_negative_activations_with_negative_gradient():
    """A * G is the first-order contribution relative to A = 0: after GELU a
    unit with A < 0 and G < 0 raises the score and is kept (signed)."""

    class OneGelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.GELU()
            self.head = nn.Linear(4, 1, bias=False)
            with torch.no_grad():
                self.head.weight.copy_(torch.tensor([[-1.0, 1.0, 1.0, -1.0]]))

        def forward(self, x):
            return self.head(self.act(x))

    model = OneGelu()
    x = torch.tensor(
        [[-1.0, -1.0, 2.0, 2.0]]
    )  # A = GELU(x): [-0.16, -0.16, 1.95, 1.95]
    a = F.gelu(x)
    assert (a[0, :2] < 0).all()
    # G = head weights; A * G = [+0.16, -0.16, +1.95, -1.95]
    got = CriGradSaliency(model, keep=0.5).attribute(x, target=0, abs=False)
    dgelu = torch.autograd.functional.jacobian(F.gelu, x)[0, :, 0, :].diagonal()
    expected = torch.tensor([-1.0, 0.0, 1.0, 0.0]) * dgelu
    torch.testing.assert_close(got[0], expected)
    # |A * G| keeps the two large ones, whatever their sign
    got = CriGradSaliency(model, keep=0.5, signed=False).attribute(
        x, target=0, abs=False
    )
    torch.testing.assert_close(got[0], torch.tensor([0.0, 0.0, 1.0, -1.0]) * dgelu)


def test_layer_methods_are_transformed_above_their_layer_everywhere():
    """One rule (hooks.layer_scope): every way of asking for CriGrad on
    Grad-CAM gives the same map."""
    net = _Nets.relu6_modules()
    layer = net[0]
    crigrad = CriGrad(keep=0.3)
    cam = CriGradLayerGradCam(net, layer, crigrad=crigrad).attribute(X, target=1)
    wrapped = crigrad_attribution(LayerGradCam(net, layer), crigrad).attribute(
        X, target=1
    )
    torch.testing.assert_close(wrapped, cam, atol=0, rtol=0)
    up = F.interpolate(cam, size=X.shape[-2:], mode="bilinear", align_corners=False)
    post = forgrad(up, 2.0, post="relu")
    both = FORGradLayerGradCam(net, layer, sigma=2.0, transform=crigrad).attribute(
        X, target=1
    )
    torch.testing.assert_close(both, post, atol=1e-6, rtol=0)
    assert not torch.allclose(cam, LayerGradCam(net, layer).attribute(X, target=1))


def test_bad_target_is_a_value_error_and_captums_assertion_error():
    """Captum signals a bad target with AssertionError (its hook-removal
    tests expect it); ours is an InvalidValueError that is one too."""
    net = _Nets.relu6_modules()
    for make in (
        lambda: CriGradSaliency(net, keep=1.0),
        lambda: CriGradSaliency(net, keep=0.3),
        lambda: CriGradLayerGradCam(net, net[2], keep=0.3),
        lambda: NoiseTunnel(CriGradIntegratedGradients(net, keep=0.3)),
    ):
        for target in ((9999,) * 20, 5, [0, 1, 9], -6):
            with pytest.raises(AssertionError, match="target"):
                make().attribute(X, target=target)
            with pytest.raises(ValueError, match="target"):
                make().attribute(X, target=target)
    assert hook_count(net) == 0


def test_two_pass_ranks_from_where_the_backward_starts(monkeypatch):
    """Captum's NeuronIntegratedGradients differentiates a neuron inside the
    model, not the model output: two_pass ranks the plain gradients of that
    neuron, as if forward_func returned it."""
    import captum.attr._core.neuron.neuron_integrated_gradients as nig
    from captum.attr import NeuronIntegratedGradients

    net = _Nets.relu6_modules()
    monkeypatch.setattr(
        nig,
        "IntegratedGradients",
        lambda *a, **k: CriGradIntegratedGradients(*a, keep=0.3, **k),
    )
    ours = NeuronIntegratedGradients(net, net[2]).attribute(X, (1, 3, 3), n_steps=4)
    neuron = CriGradIntegratedGradients(lambda x: net[:3](x)[:, 1, 3, 3], keep=0.3)
    expected = neuron.attribute(X, n_steps=4)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    monkeypatch.undo()
    plain = NeuronIntegratedGradients(net, net[2]).attribute(X, (1, 3, 3), n_steps=4)
    assert not torch.allclose(ours, plain)
    assert hook_count(net) == 0


def test_a_new_drop_in_is_one_class_statement():
    """The family mixins make a drop-in from any Captum class: Captum's
    signature, the family's options keyword-only, Captum's result at
    keep=1.0 and a different one below."""
    from captum.attr import GuidedBackprop

    from captum_crigrad.crigrad.attr import CriGradMethod
    from captum_crigrad.forgrad.attr import FORGradMethod

    class CriGradGuidedBackprop(CriGradMethod, GuidedBackprop):
        """GuidedBackprop with critical gradients."""

    class FORGradGuidedBackprop(FORGradMethod, GuidedBackprop):
        """GuidedBackprop with FORGrad."""

    for ours in (CriGradGuidedBackprop, FORGradGuidedBackprop):
        test_signatures_are_captums(ours, GuidedBackprop)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)
    ).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    plain = GuidedBackprop(model).attribute(x, target=1)
    same = CriGradGuidedBackprop(model, keep=1.0).attribute(x, target=1)
    assert torch.allclose(same, plain, atol=1e-6)
    filtered = CriGradGuidedBackprop(model, keep=0.2).attribute(x, target=1)
    assert not torch.allclose(filtered, plain, atol=1e-4)
    assert CriGradGuidedBackprop(model, keep=0.3).crigrad.keep == 0.3
    assert FORGradGuidedBackprop(model).attribute(x, target=1).shape == (2, 1, 8, 8)
    with pytest.raises(TypeError):  # Captum's own arguments keep their rules
        CriGradGuidedBackprop()


def test_a_drop_in_family_must_set_itself_up():
    from captum.attr import Saliency

    from captum_crigrad.core.hooks import TransformedMethod

    class NoSetUp(TransformedMethod):
        pass

    with pytest.raises(TypeError, match="_set_up"):

        class Broken(NoSetUp, Saliency):
            pass
