import json

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io.models import SmallCNN


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "cnn.pt"
    torch.save(SmallCNN(in_channels=3, width=4).state_dict(), weights)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        array = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"img_{i:02d}_{i}.png")
    return tmp_path, weights, folder


def test_cli_sanity_writes_table_and_figures(setup, capsys):
    tmp_path, weights, folder = setup
    out = tmp_path / "out"
    rc = main(
        [
            "sanity",
            str(folder),
            "--model",
            "smallcnn",
            "--weights",
            str(weights),
            "--normalize",
            "none",
            "--methods",
            "GradientExplanation,GuidedBackprop",
            "--mode",
            "independent",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    table = (out / "table.md").read_text()
    assert (
        "| spearman_abs (independent), step | GradientExplanation | GuidedBackprop |"
        in table
    )
    assert "| classifier.4 |" in table and "| features.0 |" in table
    for name in ("curves.png", "maps.png"):
        assert (out / name).stat().st_size > 5_000
    assert not list(out.glob("*.tmp*"))
    assert sorted(p.name for p in out.iterdir()) == [
        "class_sensitivity.md",
        "curves.png",
        "maps.png",
        "run.json",
        "table.md",
    ]
    classes = (out / "class_sensitivity.md").read_text()
    assert "lower is better" in classes and "| GuidedBackprop |" in classes


def test_cli_sanity_class_sensitivity_only(setup, capsys):
    tmp_path, weights, folder = setup
    out = tmp_path / "out"
    args = ["sanity", str(folder), "--model", "smallcnn", "--weights", str(weights)]
    args += ["--normalize", "none", "--methods", "GradientExplanation,GradCAM"]
    rc = main(args + ["--test", "class-sensitivity", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "class_sensitivity.md",
        "maps.png",
        "run.json",
    ]
    printed = capsys.readouterr().out
    assert "| GradCAM |" in printed and "class_sensitivity.md" in printed
    run = json.loads((out / "run.json").read_text())
    other, target = (
        run["class_sensitivity"]["other"],
        run["class_sensitivity"]["target"],
    )
    assert len(other) == 3 and all(o != t for o, t in zip(other, target, strict=True))


def test_cli_sanity_bad_input_one_line_error(setup, capsys):
    tmp_path, weights, folder = setup
    out = tmp_path / "out"
    rc = main(
        [
            "sanity",
            "--model",
            "smallcnn",
            "--weights",
            str(weights),
            "--images",
            str(folder),
            "--methods",
            "Occlusion",
            "--out",
            str(out),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown method 'Occlusion'; valid names: saliency" in err
    assert not out.exists()
    rc = main(
        [
            "sanity",
            "--model",
            "smallcnn",
            "--weights",
            str(tmp_path / "missing.pt"),
            "--images",
            str(folder),
            "--out",
            str(out),
        ]
    )
    assert rc == 2 and "--weights: no such file" in capsys.readouterr().err
