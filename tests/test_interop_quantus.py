"""captum_crigrad.interop.quantus.explain_func: our methods as Quantus's
explain_func (the adapter's own behaviour needs no Quantus; the metric runs
skip without it)."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from helpers import assert_untouched, snapshot

from captum_crigrad.cam import GradCAM
from captum_crigrad.core.maps import upsample
from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError
from captum_crigrad.crigrad import CriGradSaliency
from captum_crigrad.interop.quantus import explain_func
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods import parse_method


def _setup(channels=3, n=6, size=32, seed=0):
    torch.manual_seed(seed)
    model = SmallCNN(in_channels=channels, num_classes=10).eval()
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def test_adapter_equals_our_classes():
    model, x, y = _setup()
    a = explain_func(
        model=model, inputs=x.numpy(), targets=y.numpy(), method="crigrad-saliency"
    )
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert a.shape == (6, 1, 32, 32)
    ours = CriGradSaliency(model).attribute(
        x.clone().requires_grad_(), target=y, abs=False
    )
    expected = ours.abs().sum(1, keepdim=True)  # the registry reads it by magnitude
    np.testing.assert_allclose(a, expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    # CriGrad filters the gradient: it is not the plain saliency map
    plain = Saliency(model).attribute(x.clone().requires_grad_(), target=y, abs=True)
    assert not np.allclose(a, plain.sum(1, keepdim=True).numpy(), atol=1e-6)

    cam = explain_func(
        model=model,
        inputs=x.numpy(),
        targets=y.numpy(),
        method="gradcam",
        layer="features.5",
    )
    ref = GradCAM(model, model.features[5]).attribute(
        x, target=y, relu_attributions=True
    )
    ref = upsample(ref.detach(), (32, 32))
    np.testing.assert_allclose(cam, ref.numpy(), rtol=1e-6, atol=1e-7)

    raw = explain_func(
        model=model,
        inputs=x.numpy(),
        targets=y.numpy(),
        method="inputxgradient",
        channel_reduction="none",
    )
    assert raw.shape == (6, 3, 32, 32)
    signed = explain_func(
        model=model, inputs=x.numpy(), targets=y.numpy(), method="inputxgradient"
    )
    # a signed method is read as the signed channel sum
    np.testing.assert_allclose(signed, raw.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_adapter_channels_last_and_targets():
    model, x, y = _setup()
    first = explain_func(model=model, inputs=x.numpy(), targets=y.numpy(), method="ig")
    last = explain_func(
        model=model,
        inputs=x.permute(0, 2, 3, 1).numpy(),
        targets=y.tolist(),
        method="ig",
        channel_first=False,
    )
    assert last.shape == (6, 32, 32, 1)
    np.testing.assert_allclose(last, first.transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-7)
    # float64 inputs are computed in float32; None targets: predicted classes
    f64 = explain_func(
        model=model, inputs=x.double().numpy(), targets=None, method="ig"
    )
    np.testing.assert_allclose(f64, first, rtol=1e-6, atol=1e-7)
    # one int: that class for every image
    one = explain_func(model=model, inputs=x.numpy(), targets=3, method="ig")
    every = explain_func(
        model=model, inputs=x.numpy(), targets=np.full(6, 3), method="ig"
    )
    np.testing.assert_array_equal(one, every)
    assert not np.allclose(one, first)


def test_adapter_leaves_model_untouched():
    model, x, y = _setup()
    model.train()
    model.features[0].eval()  # mixed flags must survive as they are
    snap = snapshot(model)
    for method in ("saliency", "crigrad-gradcam", "forgrad-smoothgrad", "gradcampp"):
        explain_func(model=model, inputs=x.numpy(), targets=y.numpy(), method=method)
        assert_untouched(model, snap)
    assert all(p.grad is None for p in model.parameters())


def test_bad_names_and_options_fail_before_any_work():
    model, x, y = _setup()
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append(1))
    with pytest.raises(InvalidValueError) as err:
        explain_func(model=model, inputs=x.numpy(), targets=y.numpy(), method="nosuch")
    with pytest.raises(InvalidValueError) as registry:
        parse_method("nosuch")
    assert str(err.value) == str(registry.value)  # the registry's own message
    with pytest.raises(InvalidValueError, match="crigrad-saliency@2"):
        explain_func(
            model=model, inputs=x.numpy(), targets=y, method="crigrad-saliency@2"
        )
    with pytest.raises(InvalidValueError, match="explain_func_kwargs"):
        explain_func(model=model, inputs=x.numpy(), targets=y.numpy())
    with pytest.raises(InvalidValueError, match="'kepp'.*keep"):
        explain_func(
            model=model, inputs=x.numpy(), targets=y, method="crigrad", kepp=0.3
        )
    with pytest.raises(InvalidValueError, match="n_steps"):
        explain_func(model=model, inputs=x.numpy(), targets=y, method="ig", n_steps=0)
    with pytest.raises(InvalidValueError, match="channel_reduction"):
        explain_func(
            model=model,
            inputs=x.numpy(),
            targets=y,
            method="ig",
            channel_reduction="l2",
        )
    with pytest.raises(InvalidValueError, match="inputs: expected a 4-D"):
        explain_func(model=model, inputs=x[0].numpy(), targets=y, method="ig")
    with pytest.raises(InvalidTypeError, match="integer class indices"):
        explain_func(
            model=model, inputs=x.numpy(), targets=y.numpy() + 0.5, method="ig"
        )
    with pytest.raises(InvalidTypeError, match="inputs"):
        explain_func(model=model, inputs="x", targets=y, method="ig")
    assert calls == []  # no forward pass ran


def test_package_import_does_not_import_quantus_or_grad_cam():
    code = (
        "import sys, captum_crigrad, captum_crigrad.interop; "
        "print('quantus' in sys.modules, 'pytorch_grad_cam' in sys.modules)"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------ Quantus runs


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_quantus_pixel_flipping_and_faithfulness_correlation_run_our_methods():
    quantus = pytest.importorskip("quantus")
    model, x, y = _setup(channels=1, n=4)
    kwargs = {"method": "crigrad-saliency", "keep": 0.5}
    pf = quantus.PixelFlipping(features_in_step=64, disable_warnings=True)
    through_adapter = _quiet(
        pf,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        explain_func=explain_func,
        explain_func_kwargs=kwargs,
        device="cpu",
    )
    a = explain_func(model=model, inputs=x.numpy(), targets=y.numpy(), **kwargs)
    precomputed = _quiet(
        pf,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=a,
        device="cpu",
    )
    curves = np.asarray(through_adapter)
    assert curves.shape == (4, 16)
    np.testing.assert_allclose(curves, np.asarray(precomputed), rtol=1e-6)

    fc = quantus.FaithfulnessCorrelation(
        nr_runs=8, subset_size=32, disable_warnings=True, return_aggregate=False
    )
    scores = _quiet(
        fc,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        explain_func=explain_func,
        explain_func_kwargs={"method": "gradcam", "layer": "features.5"},
        device="cpu",
    )
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    assert np.all(np.abs(scores) <= 1)


def test_quantus_mprt_runs_our_methods():
    quantus = pytest.importorskip("quantus")
    model, x, y = _setup(n=4)
    snap = snapshot(model)
    mprt = quantus.MPRT(disable_warnings=True)
    sal = _quiet(
        mprt,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        explain_func=explain_func,
        explain_func_kwargs={"method": "saliency"},
        device="cpu",
    )
    # every layer of SmallCNN randomised in turn, top down, then compared with
    # the original map: a model-dependent map decorrelates
    assert list(sal) == [
        "original",
        "classifier.4",
        "classifier.2",
        "features.5",
        "features.3",
        "features.0",
    ]
    np.testing.assert_allclose(sal["original"], 1.0, atol=1e-6)
    assert np.all(np.asarray(sal["features.0"]) < 0.9)
    # the random control does not look at the model: it fails the check
    control = _quiet(
        mprt,
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        explain_func=explain_func,
        explain_func_kwargs={"method": "random"},
        device="cpu",
    )
    for layer, values in control.items():
        np.testing.assert_allclose(values, 1.0, atol=1e-6, err_msg=layer)
    assert_untouched(model, snap)  # Quantus randomises a copy
