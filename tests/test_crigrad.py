"""CriGrad: invariants, a hand-computed network, Captum composition, bad input."""

import pytest
import torch
import torch.nn as nn
import torchvision
from captum.attr import (
    Deconvolution,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from helpers import MLP, TinyCNN, assert_untouched, hook_count, snapshot

from captum_crigrad import (
    CriGrad,
    CriGradExtractor,
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    crigrad_attribution,
)
from captum_crigrad.io import load_resnet20
from captum_crigrad.io.models import resnet20

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")


def _seeded(model_fn, seed=0):
    torch.manual_seed(seed)
    return model_fn().eval()


@pytest.fixture(scope="module")
def resnet18():
    return _seeded(lambda: torchvision.models.resnet18(weights=None))


@pytest.fixture
def x64():
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


# --- keep=1.0 is Captum ----------------------------------------------------


def test_keep_one_reproduces_captum(resnet18, x64):
    m, t = resnet18, [1, 5, 7]
    pairs = [
        (
            Saliency(m).attribute(x64, target=t),
            CriGradSaliency(m, keep=1.0).attribute(x64, target=t),
        ),
        (
            InputXGradient(m).attribute(x64, target=t),
            CriGradInputXGradient(m, keep=1.0).attribute(x64, target=t),
        ),
        (
            IntegratedGradients(m).attribute(x64, target=t, n_steps=5),
            CriGradIntegratedGradients(m, keep=1.0).attribute(x64, target=t, n_steps=5),
        ),
        (
            LayerGradCam(m, m.layer3).attribute(x64, target=t),
            CriGradLayerGradCam(m, m.layer3, keep=1.0).attribute(x64, target=t),
        ),
    ]
    for ref, ours in pairs:
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_filtering_changes_the_map(resnet18, x64):
    ref = Saliency(resnet18).attribute(x64, target=3)
    ours = CriGradSaliency(resnet18, keep=0.2).attribute(x64, target=3)
    assert not torch.allclose(ours, ref)


# --- a hand-computed network ----------------------------------------------


class _OneLayer(nn.Module):
    """y = w2 . relu(x): A = relu(x), G = w2 at the ReLU output."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[3.0, -1.0, 1.0, 5.0]]))

    def forward(self, x):
        return self.head(self.relu(x))


@pytest.mark.parametrize(
    "options,expected",
    [
        # A = [1, 2, 3, 0], G = [3, -1, 1, 5], I = A*G = [3, -2, 3, 0]
        (dict(keep=0.5), [3.0, 0.0, 1.0, 0.0]),  # top-2 of I: 3, 3
        (
            dict(keep=0.75),
            [3.0, 0.0, 1.0, 0.0],
        ),  # threshold 0 keeps entry 3 (ReLU kills it)
        (dict(keep=0.75, signed=False), [3.0, -1.0, 1.0, 0.0]),  # |I| top-3: 3, 3, 2
        (dict(keep=0.5, importance="grad"), [3.0, 0.0, 0.0, 0.0]),  # G top-2: 5, 3
        (
            dict(keep=0.5, importance="activation"),
            [0.0, -1.0, 1.0, 0.0],
        ),  # A top-2: 3, 2
        (dict(keep=1.0), [3.0, -1.0, 1.0, 0.0]),  # plain gradient
    ],
)
def test_hand_computed_masks(options, expected):
    model = _OneLayer()
    x = torch.tensor([[1.0, 2.0, 3.0, -1.0]])
    # one layer: the modes and the per-layer and global thresholds agree
    for mode, threshold in (
        ("online", "layer"),
        ("two_pass", "layer"),
        ("two_pass", "global"),
    ):
        grad = CriGradSaliency(
            model, mode=mode, threshold=threshold, **options
        ).attribute(x, target=0, abs=False)
        assert grad.tolist() == [expected], (mode, threshold, options)


def _reference_crigrad(model: MLP, x, target, keep, mode):
    """CriGrad on an MLP written out with explicit matrices (no hooks)."""
    lins = [m for m in model.net if isinstance(m, nn.Linear)]
    acts, pre = [], x
    for lin in lins[:-1]:
        z = pre @ lin.weight.T + lin.bias
        pre = torch.relu(z)
        acts.append((z, pre))
    g_top = lins[-1].weight[target]  # dy/dA of the last hidden layer

    def keep_mask(score):
        k = max(1, -(-int(keep * score.numel() * 1000) // 1000))
        k = min(score.numel(), max(1, int(torch.tensor(keep * score.numel()).ceil())))
        thr = score.sort(descending=True).values[k - 1]
        return score >= thr

    def backward(masks):
        g = g_top.clone()
        for i in reversed(range(len(acts))):
            z, a = acts[i]
            if masks is None:  # online
                g = g * keep_mask(a * g)
            elif masks[i] is not None:
                g = g * masks[i]
            g = (g * (z > 0)) @ lins[i].weight
        return g

    if mode == "online":
        return backward(None)
    # two_pass: plain gradients at every layer first
    g, plain = g_top.clone(), [None] * len(acts)
    for i in reversed(range(len(acts))):
        z, a = acts[i]
        plain[i] = g
        g = (g * (z > 0)) @ lins[i].weight
    scores = [acts[i][1] * plain[i] for i in range(len(acts))]
    if mode == "global":  # one threshold over the units of every layer
        pooled = torch.cat(scores)
        k = min(pooled.numel(), max(1, int(torch.tensor(keep * pooled.numel()).ceil())))
        thr = pooled.sort(descending=True).values[k - 1]
        return backward([s >= thr for s in scores])
    return backward([keep_mask(s) for s in scores])


def test_online_and_two_pass_match_reference_and_differ():
    differ = 0
    for seed in range(6):
        model = _seeded(lambda: MLP(6, (10, 10, 10), 3), seed)
        x = torch.randn(1, 6, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref = {
                mode: _reference_crigrad(model, x[0], 2, 0.3, mode)
                for mode in ("online", "two_pass")
            }
        got = {
            mode: CriGradSaliency(
                model, keep=0.3, mode=mode, threshold="layer"
            ).attribute(x, target=2, abs=False)[0]
            for mode in ("online", "two_pass")
        }
        for mode in ref:
            torch.testing.assert_close(got[mode], ref[mode], atol=1e-6, rtol=1e-5)
        differ += not torch.allclose(got["online"], got["two_pass"])
    assert differ > 0, "online and two_pass never differed on 3-layer MLPs"


def test_global_threshold_matches_reference_and_differs_from_per_layer():
    differ = 0
    for seed in range(6):
        # layers of different widths: a global threshold keeps a different
        # share of each layer's units
        model = _seeded(lambda: MLP(6, (16, 8, 4), 3), seed)
        x = torch.randn(1, 6, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref = _reference_crigrad(model, x[0], 1, 0.2, "global")
        cg = CriGradSaliency(model, keep=0.2, mode="two_pass", threshold="global")
        got = cg.attribute(x, target=1, abs=False)[0]
        torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
        per_layer = CriGradSaliency(
            model, keep=0.2, mode="two_pass", threshold="layer"
        ).attribute(x, target=1, abs=False)[0]
        differ += not torch.allclose(got, per_layer)
    assert differ > 0, "global and per-layer thresholds never differed"
    with pytest.raises(ValueError, match="two_pass"):
        CriGrad(threshold="global", mode="online")
    # the default threshold follows the mode: global with two_pass (the
    # default), per layer online; with_options keeps that pairing
    assert CriGrad().threshold == "global" and CriGrad().mode == "two_pass"
    assert CriGrad(mode="online").threshold == "layer"
    assert CriGrad().with_options(mode="online").threshold == "layer"
    assert CriGrad(threshold="layer").with_options(keep=0.5).threshold == "layer"
    with pytest.raises(ValueError, match="threshold"):
        CriGrad(threshold="pathway", mode="two_pass")
    assert "threshold='global'" in repr(CriGrad(mode="two_pass", threshold="global"))


def test_two_pass_masks_serve_every_backward_of_a_retained_graph():
    # The two_pass hooks multiply into a mask in place only when the
    # backward frees the graph; with retain_graph each backward through the
    # same forward pass is filtered alike, and create_graph keeps the
    # filtered gradient differentiable.
    model = _seeded(lambda: MLP(6, (16, 8, 4), 3), 0)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    want = CriGradSaliency(model, keep=0.2).attribute(x, target=1, abs=False)
    with torch.no_grad():
        ref = _reference_crigrad(model, x[0], 1, 0.2, "global")
    torch.testing.assert_close(want[0], ref, atol=1e-6, rtol=1e-5)
    with CriGrad(keep=0.2).context(model):
        inp = x.clone().requires_grad_(True)
        score = model(inp)[:, 1].sum()
        first = torch.autograd.grad(score, inp, retain_graph=True)[0]
        second = torch.autograd.grad(score, inp, create_graph=True)[0]
        third = torch.autograd.grad(score, inp)[0]
    for got in (first, second, third):
        torch.testing.assert_close(got, want)
    assert second.requires_grad and not third.requires_grad
    inp = x.clone().requires_grad_(True)
    plain = torch.autograd.grad(model(inp)[:, 1].sum(), inp)[0]
    assert not torch.allclose(plain, want)  # outside the block: not filtered


# --- per-sample maps, shapes, models ----------------------------------------


@pytest.mark.parametrize(
    "mode, threshold",
    [("online", "layer"), ("two_pass", "layer"), ("two_pass", "global")],
)
def test_map_does_not_depend_on_batch_neighbours(resnet18, x64, mode, threshold):
    cg = CriGradSaliency(resnet18, keep=0.3, mode=mode, threshold=threshold)
    full = cg.attribute(x64, target=[1, 2, 3])
    alone = cg.attribute(x64[1:2], target=2)
    torch.testing.assert_close(alone, full[1:2], atol=1e-6, rtol=1e-4)


def test_inplace_relu_module_called_twice_is_filtered_per_call():
    model = _seeded(TinyCNN)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ex = CriGradExtractor(model, keep=0.25)
    res = ex.forward(x)
    assert len(res.features) == 2  # one shared ReLU module, two calls
    assert res.features[0].shape == (2, 6, 8, 8) and res.features[1].shape == (
        2,
        8,
        8,
        8,
    )
    grads = ex.backward(res, [0, 3])
    assert grads.shape == x.shape
    torch.testing.assert_close(
        grads.abs(), CriGradSaliency(model, keep=0.25).attribute(x, target=[0, 3])
    )
    assert hook_count(model) == 0


def test_tuple_inputs_give_tuple_and_targets_any_form():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(3, 4), nn.Linear(2, 4), nn.ReLU()
            self.head = nn.Linear(4, 3)

        def forward(self, x1, x2):
            return self.head(self.relu(self.a(x1) + self.b(x2)))

    model = _seeded(Two)
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)
    cg = CriGradSaliency(model, keep=0.5)
    out = cg.attribute((x1, x2), target=1)
    assert (
        isinstance(out, tuple) and out[0].shape == x1.shape and out[1].shape == x2.shape
    )
    single = CriGradSaliency(model, keep=0.5).attribute(
        x1, target=1, additional_forward_args=(x2,)
    )
    assert isinstance(single, torch.Tensor)
    a = cg.attribute((x1, x2), target=[1, 1, 1, 1])
    b = cg.attribute((x1, x2), target=torch.tensor([1, 1, 1, 1]))
    for u, v, w in zip(out, a, b, strict=True):
        assert torch.equal(u, v) and torch.equal(u, w)


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_torchvision_models(arch, x64):
    model = _seeded(lambda: getattr(torchvision.models, arch)(weights=None))
    x = x64[:1]
    snap = snapshot(model)
    ours = CriGradSaliency(model, keep=0.3).attribute(x, target=4)
    assert ours.shape == x.shape and torch.isfinite(ours).all() and ours.abs().sum() > 0
    assert not torch.allclose(ours, Saliency(model).attribute(x, target=4))
    assert_untouched(model, snap)


def test_functional_relu_model_filtered_by_default_and_with_layers():
    from conftest import ASSETS

    ckpt = ASSETS / "cifar10_resnet20" / "resnet20-12fca82f.th"
    model = load_resnet20(ckpt) if ckpt.exists() else _seeded(resnet20)
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3) for b in stage]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = Saliency(model).attribute(x, target=[3, 8])
    # F.relu calls are found without layers= (no nn.ReLU module in ResNet-20)
    default = CriGradSaliency(model, keep=0.3).attribute(x, target=[3, 8])
    assert default.shape == x.shape and not torch.allclose(default, ref)
    ours = CriGradSaliency(model, keep=0.3, layers=blocks).attribute(x, target=[3, 8])
    assert ours.shape == x.shape and not torch.allclose(ours, ref)
    assert not torch.allclose(ours, default)  # blocks != every ReLU call
    same = CriGradSaliency(model, keep=1.0, layers=blocks).attribute(x, target=[3, 8])
    torch.testing.assert_close(same, ref, atol=1e-6, rtol=0)
    cam = CriGradLayerGradCam(model, model.layer3, keep=0.3, layers=blocks).attribute(
        x, target=[3, 8]
    )
    assert cam.shape == (2, 1, 8, 8)


def test_granularity_and_importance_options_run(resnet18, x64):
    x = x64[:2]
    maps = {}
    for gran in ("element", "channel", "location"):
        for imp in ("gxi", "grad", "activation"):
            maps[gran, imp] = CriGradSaliency(
                resnet18, keep=0.3, granularity=gran, importance=imp
            ).attribute(x, target=0)
    assert len({round(float(v.sum()), 4) for v in maps.values()}) > 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_models_device(resnet18, x64):  # pragma: no cover - GPU only
    m = _seeded(lambda: torchvision.models.resnet18(weights=None)).cuda()
    out = CriGradSaliency(m, keep=0.3).attribute(x64.cuda(), target=1)
    assert out.device.type == "cuda"


# --- composition -------------------------------------------------------------


def test_noise_tunnel_wraps_every_class(resnet18, x64):
    x = x64[:2]
    classes = [
        CriGradSaliency(resnet18, keep=0.3),
        CriGradInputXGradient(resnet18, keep=0.3),
        CriGradIntegratedGradients(resnet18, keep=0.3),
        CriGradLayerGradCam(resnet18, resnet18.layer4, keep=0.3),
    ]
    for method in classes:
        extra = {"n_steps": 3} if isinstance(method, IntegratedGradients) else {}
        plain = method.attribute(x, target=1, **extra)
        nt = NoiseTunnel(method).attribute(
            x, nt_samples=3, stdevs=0.0, target=1, **extra
        )
        torch.testing.assert_close(nt, plain, atol=1e-6, rtol=1e-5)
    # and with noise, it is CriGrad's SmoothGrad, not Captum's
    torch.manual_seed(0)
    ours = NoiseTunnel(CriGradSaliency(resnet18, keep=0.3)).attribute(
        x, nt_samples=2, stdevs=0.1, target=1
    )
    torch.manual_seed(0)
    ref = NoiseTunnel(Saliency(resnet18)).attribute(
        x, nt_samples=2, stdevs=0.1, target=1
    )
    assert not torch.allclose(ours, ref)


def test_generic_wrapper_on_other_methods(resnet18, x64):
    x, base = x64[:2], torch.zeros(3, 3, 64, 64)
    for make in (lambda: GuidedBackprop(resnet18), lambda: Deconvolution(resnet18)):
        ref = make().attribute(x, target=2)
        torch.testing.assert_close(
            crigrad_attribution(make(), keep=1.0).attribute(x, target=2), ref
        )
        assert not torch.allclose(
            crigrad_attribution(make(), keep=0.05).attribute(x, target=2), ref
        )
    torch.manual_seed(0)
    ref = GradientShap(resnet18).attribute(x, baselines=base, target=2, n_samples=3)
    torch.manual_seed(0)
    same = crigrad_attribution(GradientShap(resnet18), keep=1.0).attribute(
        x, baselines=base, target=2, n_samples=3
    )
    torch.testing.assert_close(same, ref)
    torch.manual_seed(0)
    ours = crigrad_attribution(GradientShap(resnet18), keep=0.3).attribute(
        x, baselines=base, target=2, n_samples=3
    )
    assert not torch.allclose(ours, ref)
    nt = NoiseTunnel(crigrad_attribution(Saliency(resnet18), keep=0.3))
    torch.testing.assert_close(
        nt.attribute(x, nt_samples=2, stdevs=0.0, target=2),
        CriGradSaliency(resnet18, keep=0.3).attribute(x, target=2),
    )
    # the wrapped object is not modified
    sal = Saliency(resnet18)
    crigrad_attribution(sal, keep=0.3)
    torch.testing.assert_close(
        sal.attribute(x, target=2), Saliency(resnet18).attribute(x, target=2)
    )


def test_layer_gradcam_filters_only_layers_above():
    # a layer above which no ReLU runs: CriGrad has nothing to filter
    top = _seeded(
        lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
    )
    xs = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        CriGradLayerGradCam(top, top[3], keep=0.1).attribute(xs, target=1),
        LayerGradCam(top, top[3]).attribute(xs, target=1),
    )
    assert not torch.allclose(
        CriGradLayerGradCam(top, top[1], keep=0.1).attribute(xs, target=1),
        LayerGradCam(top, top[1]).attribute(xs, target=1),
    )


# --- bad input ----------------------------------------------------------------


def _bad_cases(model):
    x = torch.randn(2, 3, 16, 16)
    other = nn.ReLU()
    unused = nn.Conv2d(3, 3, 1)
    model.add_module("unused_head", unused)  # a submodule that forward never calls
    return [
        (lambda: CriGradSaliency(model, keep=0.0), ValueError, "keep"),
        (lambda: CriGradSaliency(model, keep=1.5), ValueError, "keep"),
        (lambda: CriGradSaliency(model, keep="all"), TypeError, "keep"),
        (
            lambda: CriGradSaliency(model, importance="gradxinput"),
            ValueError,
            "importance",
        ),
        (
            lambda: CriGradSaliency(model, granularity="pixel"),
            ValueError,
            "granularity",
        ),
        (lambda: CriGradSaliency(model, mode="fast"), ValueError, "mode"),
        (lambda: CriGradSaliency(model, layers=[other]), ValueError, "layers"),
        (lambda: CriGradSaliency(model, layers=[]), ValueError, "layers"),
        (
            lambda: CriGradSaliency(model, layers=[unused]).attribute(x, target=0),
            ValueError,
            "layers: unused_head",
        ),
        (lambda: CriGradSaliency(model).attribute(x, target=7), ValueError, "target"),
        (
            lambda: CriGradSaliency(model, mode="two_pass").attribute(x, target=[0, 9]),
            ValueError,
            "target",
        ),
        (
            lambda: CriGradLayerGradCam(model, model.conv2).attribute(x, target=6),
            ValueError,
            "target",
        ),
        # -1 is the last class (5 outputs), -6 is out of range
        (lambda: CriGradSaliency(model).attribute(x, target=-6), ValueError, "target"),
        (
            lambda: CriGradSaliency(model).attribute(x, target=[0, 1, 2]),
            ValueError,
            "target",
        ),
        (lambda: CriGradSaliency(model).attribute((x, x[:1])), ValueError, "inputs"),
        (lambda: CriGradSaliency(model).attribute([x]), TypeError, "inputs"),
        (
            lambda: CriGradSaliency(model, crigrad=CriGrad(), keep=0.3),
            TypeError,
            "crigrad",
        ),
        (lambda: CriGradSaliency(model, CriGrad()), TypeError, "positional"),
        # two_pass with no forward pass it can see: neither a model nor a
        # Captum attribution's forward function
        (lambda: CriGrad(keep=0.3).context(None).__enter__(), ValueError, "model="),
    ]


def test_bad_input_clear_error_and_model_untouched():
    model = _seeded(TinyCNN)
    model.train()  # a mode that must survive
    cases = _bad_cases(model)
    snap = snapshot(model)
    for call, exc, text in cases:
        with pytest.raises(exc, match=text):
            call()
        assert_untouched(model, snap)


def test_model_without_activations_warns_and_gives_the_plain_gradient():
    model = _seeded(lambda: nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="no activation call.*layers="):
        ours = CriGradSaliency(model, keep=0.3).attribute(x, target=1)
    torch.testing.assert_close(ours, Saliency(model).attribute(x, target=1))
    same = CriGradSaliency(model, keep=1.0).attribute(x, target=1)  # no warning
    torch.testing.assert_close(same, Saliency(model).attribute(x, target=1))


def test_no_hook_after_exception_inside_forward():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.relu = nn.Linear(3, 3), nn.ReLU()

        def forward(self, x):
            self.relu(self.lin(x))
            raise RuntimeError("boom")

    model = Boom()
    snap = snapshot(model)
    for mode in ("online", "two_pass"):
        with pytest.raises(RuntimeError, match="boom"):
            CriGradSaliency(model, mode=mode).attribute(torch.randn(2, 3), target=0)
        assert_untouched(model, snap)


def test_success_leaves_model_untouched(resnet18, x64):
    snap = snapshot(resnet18)
    for mode in ("online", "two_pass"):
        CriGradSaliency(resnet18, keep=0.3, mode=mode).attribute(x64[:1], target=0)
        CriGradLayerGradCam(resnet18, resnet18.layer3, keep=0.3, mode=mode).attribute(
            x64[:1], target=0
        )
        crigrad_attribution(GuidedBackprop(resnet18), keep=0.3, mode=mode).attribute(
            x64[:1], target=0
        )
    assert_untouched(resnet18, snap)


def test_positional_arguments_follow_captum(resnet18, x64):
    x = x64[:1]
    base = torch.zeros_like(x)
    ref = IntegratedGradients(resnet18).attribute(x, base, 3, n_steps=3)
    ours = CriGradIntegratedGradients(resnet18, keep=1.0).attribute(
        x, base, 3, n_steps=3
    )
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="target"):
        CriGradIntegratedGradients(resnet18).attribute(x, base, 5000, n_steps=2)
