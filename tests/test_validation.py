"""The validation module: every check, every target form, and one target rule
(negative class indices count from the end) in every class and entry point."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from captum.attr import GradientShap, LayerGradCam, Saliency
from helpers import TinyCNN

from captum_crigrad import (
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    ExpectedGradCAM,
    FORGradLayerGradCam,
    FORGradSaliency,
    GradCAMPlusPlus,
    IntegratedGradCAM,
    crigrad_attribution,
    metrics,
)
from captum_crigrad.core.hooks import with_gradient_transform
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    UserInputError,
    check_bool,
    check_choice,
    check_device,
    check_finite_float,
    check_fraction,
    check_images,
    check_inputs,
    check_positive_int,
    check_score,
    check_target,
    format_baseline_distribution,
    format_baselines,
    has_negative_target,
    is_per_example,
    layer_names,
    resolve_layer,
    resolve_layers,
    resolve_target,
    select_examples,
    target_indices,
)
from captum_crigrad.crigrad.transform import CriGrad


def test_error_types_are_value_and_type_errors():
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(InvalidValueError, UserInputError)
    assert issubclass(InvalidTypeError, TypeError)
    assert issubclass(InvalidTypeError, UserInputError)
    assert not issubclass(UserInputError, (ValueError, TypeError))


# ------------------------------------------------------------------- numbers


def test_numbers():
    assert check_positive_int(3, "n") == 3
    assert check_positive_int(2, "n", minimum=2) == 2
    assert check_positive_int(None, "n", allow_none=True) is None
    for bad in (0, -1, 2.0, True, None, "3"):
        with pytest.raises(InvalidValueError, match=r"n: expected an int >= 1"):
            check_positive_int(bad, "n")
    with pytest.raises(ValueError, match="None or an int >= 1"):
        check_positive_int(0, "n", allow_none=True)

    assert check_fraction(0, "k") == 0.0 and check_fraction(1, "k") == 1.0
    assert check_fraction(0.5, "keep", include_zero=False) == 0.5
    for bad in (0.0, 1.5, -0.1, math.nan, math.inf):
        with pytest.raises(InvalidValueError, match=r"keep: .*\(0, 1\]"):
            check_fraction(bad, "keep", include_zero=False)
    with pytest.raises(InvalidTypeError, match="keep"):
        check_fraction("all", "keep")

    assert check_finite_float(0, "stdev", minimum=0) == 0.0
    for bad in (math.nan, math.inf, -math.inf, -0.1):
        with pytest.raises(InvalidValueError, match="stdev: expected a finite"):
            check_finite_float(bad, "stdev", minimum=0)
    with pytest.raises(InvalidValueError, match="> 0"):
        check_finite_float(0.0, "sigma", minimum=0, strict=True)
    with pytest.raises(InvalidTypeError, match="sigma"):
        check_finite_float(True, "sigma")

    assert check_choice("a", ("a", "b"), "mode") == "a"
    with pytest.raises(InvalidValueError, match=r"mode: expected one of \('a', 'b'\)"):
        check_choice("c", ("a", "b"), "mode")
    assert [check_score(s) for s in ("logit", "probability", "prob")] == [
        "logit",
        "probability",
        "probability",
    ]
    with pytest.raises(InvalidValueError, match=r"score: expected one of \('logit'"):
        check_score("softmax")
    assert check_bool(False, "flag") is False
    with pytest.raises(InvalidTypeError, match="flag"):
        check_bool(1, "flag")


# ------------------------------------------------------------ inputs, images


def test_inputs_and_images():
    x = torch.zeros(2, 3)
    assert check_inputs(x) == (x,)
    assert len(check_inputs((x, torch.zeros(2, 1, dtype=torch.long)))) == 2
    with pytest.raises(InvalidValueError, match="same non-zero batch size"):
        check_inputs((x, torch.zeros(3, 1)))
    with pytest.raises(InvalidValueError, match="same non-zero batch size"):
        check_inputs(torch.zeros(0, 3))
    with pytest.raises(InvalidValueError, match="empty tuple"):
        check_inputs(())
    with pytest.raises(InvalidTypeError, match="inputs: got a list"):
        check_inputs([x])
    with pytest.raises(InvalidValueError, match="floating-point"):
        check_inputs(torch.zeros(2, 3, dtype=torch.long), floating=True)
    with pytest.raises(InvalidValueError, match="batch dimension"):
        check_inputs(torch.tensor(1.0))

    img = torch.zeros(2, 1, 4, 4)
    assert check_images(img) is img
    for bad in (torch.zeros(1, 4, 4), torch.zeros(0, 1, 4, 4), img.long()):
        with pytest.raises(InvalidValueError, match=r"images: expected a non-empty"):
            check_images(bad)
    with pytest.raises(InvalidTypeError, match="inputs: expected one"):
        check_images((img,), argument="inputs")
    with pytest.raises(InvalidTypeError, match="images: expected a torch.Tensor"):
        check_images(img.numpy())


# ------------------------------------------------------------------- targets

FORMS_OK = [
    None,
    3,
    -1,
    (1,),
    (1, -1),
    [1, 2, 0],
    [(0, 1), (1, 1), (2, -1)],
    torch.tensor(2),
    torch.tensor([2]),
    torch.tensor([1, 2, -3]),
]


@pytest.mark.parametrize("target", FORMS_OK, ids=repr)
def test_every_captum_target_form_is_accepted(target):
    check_target(target, 3)
    check_target(target)


@pytest.mark.parametrize(
    "target, error, match",
    [
        (True, InvalidTypeError, "bool"),
        (1.0, InvalidTypeError, "got float"),
        ("3", InvalidTypeError, "got str"),
        (torch.tensor([1.0, 2.0, 0.0]), InvalidTypeError, "integer tensor"),
        (torch.tensor([True, False, True]), InvalidTypeError, "integer tensor"),
        ([1.0, 2.0, 3.0], InvalidTypeError, "list target must hold"),
        ([], InvalidTypeError, "list target must hold"),
        ((), InvalidTypeError, "tuple target"),
        ([1, 2], InvalidValueError, r"one entry per example \(3\), got 2"),
        ([1], InvalidValueError, r"one entry per example \(3\), got 1"),
        (torch.tensor([1, 2]), InvalidValueError, r"shape \(2,\)"),
        (torch.zeros(3, 1, dtype=torch.long), InvalidValueError, r"shape \(3, 1\)"),
    ],
)
def test_bad_target_forms(target, error, match):
    with pytest.raises(error, match="target: .*" + match):
        check_target(target, 3)


def test_resolve_target_negative_from_the_end_in_every_form():
    assert resolve_target(-1, 10) == 9
    assert resolve_target(9, 10) == 9
    assert resolve_target(None, 10) is None
    assert resolve_target([0, -1, -10], 10) == [0, 9, 0]
    assert resolve_target((1, -1), (3, 4)) == (1, 3)
    assert resolve_target([(0, -2), (-1, 1)], (3, 4)) == [(0, 2), (2, 1)]
    t = resolve_target(torch.tensor([3, -1, -2]), 10)
    assert t.tolist() == [3, 9, 8] and t.dtype == torch.int64
    assert resolve_target(torch.tensor(-1), 10).item() == 9
    for bad in (10, -11, [0, 10], torch.tensor([0, -11]), (0, 4)):
        with pytest.raises(
            InvalidValueError, match=r"target: class index -?\d+ is out"
        ):
            resolve_target(bad, (10, 4) if isinstance(bad, tuple) else 10)
    with pytest.raises(InvalidValueError, match="3 indices"):
        resolve_target((0, 0, 0), (3, 4))
    assert has_negative_target([(0, -1)]) and not has_negative_target([0, 1])


def test_target_indices():
    assert target_indices(None, 3) is None
    assert target_indices(2, 3).tolist() == [2, 2, 2]
    assert target_indices(-1, 3, 5).tolist() == [4, 4, 4]
    assert target_indices([0, -1, 1], 3, 5).tolist() == [0, 4, 1]
    assert target_indices(torch.tensor([-2]), 3, 5).tolist() == [3, 3, 3]
    assert target_indices(-1, 3).tolist() == [-1, -1, -1]  # not resolved yet
    with pytest.raises(InvalidValueError, match="tuple targets"):
        target_indices((0, 1), 3)
    with pytest.raises(InvalidValueError, match="out of range"):
        target_indices(5, 3, 5)


# -------------------------------------------------------------------- layers


def test_layers():
    model = TinyCNN()
    assert resolve_layer(model, "conv2") is model.conv2
    assert resolve_layer(model, model.conv2) is model.conv2
    with pytest.raises(InvalidValueError, match=r"layer: .*no submodule 'nope'.*conv1"):
        resolve_layer(model, "nope")
    with pytest.raises(InvalidValueError, match="--layer: .*no submodule ''"):
        resolve_layer(model, "", argument="--layer")
    with pytest.raises(InvalidValueError, match="not a submodule"):
        resolve_layer(model, nn.ReLU())
    with pytest.raises(InvalidTypeError, match="layer: expected a module name"):
        resolve_layer(model, 3)
    assert resolve_layers(model, "fc") == [model.fc]
    assert resolve_layers(model, ["conv1", model.fc]) == [model.conv1, model.fc]
    with pytest.raises(InvalidValueError, match="layers: empty list"):
        resolve_layers(model, [])
    assert layer_names(model, [model.relu, model]) == ("relu", "<model>")
    with pytest.raises(InvalidValueError, match=r"layers\[0\]: ReLU is not"):
        layer_names(model, [nn.ReLU()])


# ------------------------------------------------------------------- devices


def test_devices():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InvalidValueError, match="--device: 'nodevice' is not"):
        check_device("nodevice", argument="--device")
    with pytest.raises(InvalidValueError, match="device: 'meta' tensors hold no data"):
        check_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidValueError, match="CUDA was asked for"):
            check_device("cuda:0")
    with pytest.raises(InvalidTypeError):
        check_device(True)


# ----------------------------------------------------------------- baselines


def test_baselines():
    x = torch.randn(2, 3, 4, 4)
    (b,) = format_baselines(None, x)
    assert b.shape == x.shape and not b.any()
    (b,) = format_baselines(0.5, (x,))
    assert torch.all(b == 0.5)
    (b,) = format_baselines(torch.ones(3, 1, 1), x)
    assert b.shape == x.shape
    b1, b2 = format_baselines((0.0, torch.ones(1, 2)), (x, torch.zeros(2, 2)))
    assert b2.shape == (2, 2)
    with pytest.raises(InvalidValueError, match="baselines: entry 0 .*broadcast"):
        format_baselines(torch.ones(5, 3, 4, 4), x)
    with pytest.raises(InvalidValueError, match="baselines: expected 2 entries"):
        format_baselines(torch.ones(1), (x, x))
    with pytest.raises(InvalidValueError, match="finite"):
        format_baselines(math.nan, x)
    with pytest.raises(InvalidTypeError, match="entry 0 is a str"):
        format_baselines(("a",), x)

    refs, per_example, m = format_baseline_distribution(None, (x,))
    assert refs[0].shape == (1, 3, 4, 4) and not per_example and m == 1
    refs, per_example, m = format_baseline_distribution(torch.zeros(5, 3, 1, 1), (x,))
    assert refs[0].shape == (5, 3, 4, 4) and m == 5
    refs, per_example, m = format_baseline_distribution(
        lambda inp: inp.unsqueeze(1), (x,)
    )
    assert per_example and m == 1 and torch.equal(refs[0], x)
    with pytest.raises(InvalidValueError, match="same number M"):
        format_baseline_distribution(
            (torch.zeros(2, 3, 4, 4), torch.zeros(3, 2)), (x, torch.zeros(2, 2))
        )


# ------------------------------------------- one target rule in every class


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = TinyCNN().eval()  # 5 classes
    x = torch.randn(2, 3, 8, 8)
    return model, x


def _classes(model):
    return [
        lambda: CriGradSaliency(model, keep=0.5),
        lambda: CriGradInputXGradient(model, keep=0.5),
        lambda: CriGradIntegratedGradients(model, keep=0.5),
        lambda: CriGradLayerGradCam(model, model.conv2, keep=0.5),
        lambda: crigrad_attribution(GradientShap(model), keep=0.5),
        lambda: with_gradient_transform(LayerGradCam(model, model.conv2), CriGrad()),
        lambda: FORGradSaliency(model),
        lambda: FORGradSaliency(model, transform=CriGrad(keep=0.5)),
        lambda: FORGradLayerGradCam(model, model.conv2),
        lambda: ExpectedGradCAM(model, model.conv2),
        lambda: GradCAMPlusPlus(model, model.conv2),
        lambda: IntegratedGradCAM(model, model.conv2),
    ]


def _extra(explainer, x):
    if isinstance(explainer, ExpectedGradCAM):
        return dict(n_samples=2, generator=0)
    if isinstance(explainer, IntegratedGradCAM):
        return dict(n_steps=2)
    if "GradientShap" in repr(explainer):
        return dict(baselines=torch.zeros_like(x), n_samples=2)
    return {}


@pytest.mark.parametrize("index", range(12))
def test_negative_targets_mean_the_same_in_every_class(setup, index):
    model, x = setup
    explainer = _classes(model)[index]()
    extra = _extra(explainer, x)

    def run(target):
        torch.manual_seed(0)  # GradientShap draws with the global generators
        np.random.seed(0)
        return explainer.attribute(x, target=target, **extra)

    reference = run(torch.tensor([4, 3]))
    for target in (torch.tensor([-1, -2]), [-1, -2], [4, -2]):
        torch.testing.assert_close(run(target), reference, rtol=0, atol=0)
    torch.testing.assert_close(run(-1), run(4), rtol=0, atol=0)
    for bad in (-6, 5, torch.tensor([0, -6]), [5, 0]):
        with pytest.raises(InvalidValueError, match="target: class index"):
            run(bad)


def test_negative_targets_in_the_metrics(setup):
    model, x = setup
    attr = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for fn in (metrics.deletion, metrics.insertion):
        a = fn(model, x, attr, target=-1, n_steps=2)
        b = fn(model, x, attr, target=4, n_steps=2)
        torch.testing.assert_close(a.scores, b.scores)
        assert a.target.tolist() == [4, 4]
        with pytest.raises(InvalidValueError, match="target: class index 5"):
            fn(model, x, attr, target=[0, 5], n_steps=2)
    s1 = metrics.sensitivity_n(
        model,
        x,
        attr,
        n=2,
        n_subsets=2,
        target=[-1, -2],
        generator=torch.Generator().manual_seed(0),
    )
    s2 = metrics.sensitivity_n(
        model,
        x,
        attr,
        n=2,
        n_subsets=2,
        target=[4, 3],
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(s1.correlations, s2.correlations, equal_nan=True)
    i1 = metrics.infidelity(
        model,
        x,
        attr,
        target=-1,
        n_perturb_samples=2,
        generator=torch.Generator().manual_seed(0),
        size=2,
    )
    i2 = metrics.infidelity(
        model,
        x,
        attr,
        target=4,
        n_perturb_samples=2,
        generator=torch.Generator().manual_seed(0),
        size=2,
    )
    torch.testing.assert_close(i1, i2)


def test_negative_targets_in_the_drivers(setup):
    from captum_crigrad.methods.explain import explain
    from captum_crigrad.sanity import gradient_map

    model, x = setup
    a = explain(model, x, "saliency,crigrad-gradcam", target=[-1, -2])
    b = explain(model, x, "saliency,crigrad-gradcam", target=torch.tensor([4, 3]))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    with pytest.raises(InvalidValueError, match="target"):
        explain(model, x, "saliency", target=7)
    torch.testing.assert_close(
        gradient_map(model, x, "GradientExplanation", target=-1),
        gradient_map(model, x, "GradientExplanation", target=4),
    )
    assert Saliency(model).attribute(x, target=4).shape == x.shape


def test_per_example_forward_args():
    per, shared, scale = torch.arange(4.0)[:, None], torch.ones(3), 2.0
    assert [is_per_example(a, 4) for a in (per, shared, scale)] == [True, False, False]
    rows = select_examples((per, shared, scale), 4, torch.tensor([2, 2, 0]))
    assert rows is not None
    assert rows[0].flatten().tolist() == [2.0, 2.0, 0.0]
    assert rows[1] is shared and rows[2] == 2.0
    first = select_examples((per, shared), 4, slice(0, 1))
    assert first is not None and first[0].tolist() == [[0.0]]
    assert select_examples(None, 4, slice(0, 1)) is None
