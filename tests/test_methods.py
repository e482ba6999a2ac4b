"""The one registry of named methods: one grammar, MATLAB aliases, each
method's meaning, and the same names accepted by every entry point."""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from captum_crigrad import methods as registry
from captum_crigrad.cli import main
from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.evaluation.suite import evaluate
from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.methods import (
    available_methods,
    method_names,
    parse_method,
    parse_methods,
    register_method,
    unregister_method,
)
from captum_crigrad.methods.explain import ExplainOptions, explain
from captum_crigrad.metrics import deletion
from captum_crigrad.sanity import gradient_map

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")


def every_name() -> list[str]:
    """Every base name and alias, every modifier combination, options."""
    names = list(method_names())
    for base in available_methods():
        if registry.get_method(base).modifiers:
            names += [f"crigrad-{base}", f"forgrad-{base}", f"forgrad-crigrad-{base}"]
    names += ["CriGrad", "FORGrad", "CriGrad+FORGrad", "crigrad-forgrad"]
    names += ["crigrad-ig@0.3", "crigrad-ixg@keep=0.5", "forgrad-gradcam@sigma=5"]
    names += ["GradientExplanation", "GuidedBackprop", "ZeilerFergus", "GradCAM"]
    return names


def test_grammar():
    assert parse_method("crigrad").canonical == "crigrad-saliency"
    assert parse_method("CriGrad+FORGrad").canonical == "crigrad-forgrad-saliency"
    assert parse_method("forgrad-crigrad-gradcam").canonical == (
        "crigrad-forgrad-gradcam"
    )
    r = parse_method(" crigrad-IG@0.3 ")
    assert (r.name, r.method.name, r.crigrad, r.keep) == (
        "crigrad-IG@0.3",
        "integratedgradients",
        True,
        0.3,
    )
    assert parse_method("forgrad-gradcam@sigma=5").sigma == 5.0
    assert parse_method("ZeilerFergus").method.name == "deconvolution"
    assert parse_method("GradientExplanation").method.name == "saliency"
    bad = [
        "nope",
        "crigrad-nope",
        "foo-saliency",
        "crigrad-crigrad-saliency",
        "saliency@0.3",  # keep without crigrad-
        "crigrad-saliency@1.5",
        "crigrad-saliency@keep=x",
        "saliency@sigma=3",
        "crigrad-random",  # the control takes no modifier
    ]
    for name in bad:
        with pytest.raises(InvalidValueError, match="methods"):
            parse_method(name)
    with pytest.raises(InvalidValueError, match="methods: empty list"):
        parse_methods(" , ")
    assert [r.name for r in parse_methods("ig, IG ,crigrad")] == ["ig", "crigrad"]


def test_every_method_has_a_meaning():
    for name in available_methods():
        m = registry.get_method(name)
        assert m.kind in registry.KINDS and m.description
        assert name.islower()
    assert not parse_method("saliency").signed  # read by magnitude
    assert parse_method("integratedgradients").signed
    assert parse_method("ig").channel_reduction == "sum"
    assert parse_method("forgrad-ig").channel_reduction == "abs"
    assert parse_method("gradcam").kind == "cam"
    assert registry.get_method("ig").baseline == "zero"
    assert "saliency (also gradientexplanation)" in registry.describe_methods()


@pytest.fixture(scope="module")
def data():
    images, _ = load_default_images()
    model = load_default_model()
    with torch.no_grad():
        target = model(images[:3]).argmax(1)
    return model, images[:3], target


def test_saliency_is_the_signed_gradient_everywhere(data):
    model, x, t = data
    grad = Saliency(model).attribute(x.clone(), target=t, abs=False)
    out = explain(model, x, "saliency,GradientExplanation", target=t)
    torch.testing.assert_close(out["saliency"], grad)
    torch.testing.assert_close(out["gradientexplanation"], grad)
    raw = gradient_map(model, x, "saliency", target=t)
    torch.testing.assert_close(raw, gradient_map(model, x, "GradientExplanation"))
    # the eval suite reads saliency by magnitude: as Saliency(abs=True) before
    rows = evaluate(model, x, ["saliency"], ["deletion_auc"], n_steps=4)
    ref = deletion(model, x, Saliency(model).attribute(x, target=t), n_steps=4)
    assert rows[0]["mean"] == pytest.approx(float(ref.auc().double().mean()))
    # and integrated gradients by its signed channel sum
    rows = evaluate(model, x, ["ig"], ["deletion_auc"], n_steps=4)
    ig = IntegratedGradients(model).attribute(x, target=t, n_steps=32)
    ref = deletion(model, x, ig, n_steps=4)
    assert rows[0]["mean"] == pytest.approx(float(ref.auc().double().mean()), abs=1e-5)


def test_a_registered_method_works_in_every_entry_point(data):
    model, x, t = data

    @register_method("doubled", "twice the gradient (test)", signed=True)
    def _doubled(ctx):
        explainer = Saliency(ctx.model)
        return lambda x, t: 2 * explainer.attribute(x, target=t, abs=False)

    try:
        grad = Saliency(model).attribute(x.clone(), target=t, abs=False)
        out = explain(model, x, "doubled,crigrad-doubled,forgrad-doubled", target=t)
        torch.testing.assert_close(out["doubled"], 2 * grad)
        assert out["forgrad-doubled"].shape == (3, 1, 28, 28)
        assert gradient_map(model, x, "Doubled", target=t).shape == (3, 1, 28, 28)
        rows = evaluate(model, x, ["doubled"], ["deletion_auc"], n_steps=2)
        assert rows[0]["method"] == "doubled"
        with pytest.raises(InvalidValueError, match="already names"):
            register_method("doubled", "again", _doubled)
        with pytest.raises(InvalidValueError, match="may not contain"):
            register_method("my-method", "bad name", _doubled)
    finally:
        unregister_method("doubled")
    with pytest.raises(InvalidValueError, match="unknown method 'doubled'"):
        parse_method("doubled")


class _Parsed(Exception):
    """Raised after a command parsed its --methods: stops before any work."""


COMMANDS = {
    "demo": ["demo"],
    "saliency": ["saliency", "unused.png"],
    "eval": ["eval"],
    "sanity": ["sanity"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_accepts_every_name(monkeypatch, capsys, tmp_path, command):
    """The names one command accepts are accepted by all: each command
    resolves --methods through the one registry, before any work."""
    names = every_name()
    seen = []
    real = registry.parse_methods

    def parse_then_stop(spec):
        seen.append(real(spec))
        raise _Parsed

    monkeypatch.setattr(registry, "parse_methods", parse_then_stop)
    argv = [*COMMANDS[command], "--methods", ",".join(names)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1  # stopped by _Parsed
    assert "_Parsed" in capsys.readouterr().err
    assert len(seen) == 1
    assert {r.name.lower() for r in seen[0]} == {n.lower() for n in names}
    monkeypatch.setattr(registry, "parse_methods", real)
    argv = [*COMMANDS[command], "--methods", "saliency,nosuchmethod"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nosuchmethod'" in err and len(err.splitlines()) == 1


def test_eval_and_sanity_run_gradient_names_of_the_other_commands(tmp_path, capsys):
    """eval scores a CAM and a MATLAB name; sanity checks eval's short names."""
    code = main(
        [
            "eval",
            "--n-images",
            "2",
            "--steps",
            "2",
            "--methods",
            "gradcam,ZeilerFergus,crigrad-ig@0.3",
            "--metrics",
            "deletion_auc",
            "--no-progress",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "ZeilerFergus" in (tmp_path / "eval" / "results.csv").read_text()
    code = main(
        [
            "sanity",
            "--n-images",
            "2",
            "--granularity",
            "block",
            "--methods",
            "ixg,random",
            "--no-progress",
            "--out",
            str(tmp_path / "sanity"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "random" in (tmp_path / "sanity" / "table.md").read_text()


def test_options_in_names_override_the_options(data):
    model, x, t = data
    out = explain(
        model,
        x,
        "crigrad-saliency@0.5,crigrad-saliency@keep=0.5,crigrad-saliency",
        target=t,
        options=ExplainOptions(keep=0.02),
    )
    torch.testing.assert_close(
        out["crigrad-saliency@0.5"], out["crigrad-saliency@keep=0.5"]
    )
    assert not torch.allclose(out["crigrad-saliency@0.5"], out["crigrad-saliency"])
    same = explain(
        model, x, "crigrad-saliency", target=t, options=ExplainOptions(keep=0.5)
    )
    torch.testing.assert_close(same["crigrad-saliency"], out["crigrad-saliency@0.5"])
