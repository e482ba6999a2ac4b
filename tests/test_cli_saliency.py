import csv
import os

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods.explain import ExplainOptions, explain


@pytest.fixture
def digits(tmp_path):
    """A folder with 4 shipped digits as PNG files (lossless)."""
    folder = tmp_path / "digits"
    folder.mkdir()
    raw, labels = load_default_images(normalized=False)
    for i in range(4):
        arr = (raw[i, 0] * 255).round().byte().numpy()
        Image.fromarray(arr).save(folder / f"d{i}_{int(labels[i])}.png")
    (folder / "notes.txt").write_text("not an image, skipped in folders")
    return folder


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_default_model_on_a_folder(tmp_path, digits, capsys):
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        "saliency",
        digits,
        "--methods",
        "saliency,gradcam",
        "--crigrad",
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    names = ["saliency", "gradcam", "crigrad-saliency", "crigrad-gradcam"]
    assert sorted(os.listdir(out / "maps")) == sorted(f"{n}.pt" for n in names)
    assert len(os.listdir(out / "overlays")) == 4 * 4
    assert "4 image(s) x 4 method(s)" in stdout
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [os.path.basename(r["file"]) for r in rows] == [
        f"d{i}_{i // 2}.png" for i in range(4)
    ]
    assert [int(r["predicted"]) for r in rows] == [0, 0, 1, 1]
    # the maps are those of the shipped (normalised) digits: preprocessing is right
    images, _ = load_default_images()
    expected = explain(
        load_default_model(),
        images[:4],
        "saliency,crigrad-saliency",
        options=ExplainOptions(),
    )
    for name in ("saliency", "crigrad-saliency"):
        saved = torch.load(out / "maps" / f"{name}.pt", weights_only=True)
        torch.testing.assert_close(
            saved["attributions"], expected[name], atol=1e-5, rtol=1e-4
        )
        assert saved["maps"].shape == (4, 1, 28, 28)
    png = Image.open(out / "overlays" / "d0_0_crigrad-saliency.png")
    assert png.size == (224, 224) and png.mode == "RGB"


def test_crigrad_and_forgrad_switches(tmp_path, digits, capsys):
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        "saliency",
        digits / "d0_0.png",
        "--methods",
        "saliency",
        "--crigrad",
        "--forgrad",
        "--sigma",
        "5",
        "--out",
        out,
    )
    assert code == 0, err
    names = sorted(os.listdir(out / "maps"))
    assert names == sorted(
        f"{n}.pt"
        for n in [
            "saliency",
            "crigrad-saliency",
            "forgrad-saliency",
            "crigrad-forgrad-saliency",
        ]
    )
    filtered = torch.load(out / "maps" / "forgrad-saliency.pt", weights_only=True)
    assert (
        filtered["attributions"].shape == (1, 1, 28, 28)
        and filtered["attributions"].min() >= 0
    )


def test_npy_format_target_and_single_file(tmp_path, digits, capsys):
    out = tmp_path / "out"
    code, _, err = _run(
        capsys,
        "saliency",
        digits / "d2_1.png",
        "--methods",
        "integratedgradients",
        "--n-steps",
        "4",
        "--target",
        "7",
        "--format",
        "npy",
        "--out",
        out,
    )
    assert code == 0, err
    arr = np.load(out / "maps" / "integratedgradients.npy")
    assert arr.shape == (1, 1, 28, 28)
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert rows[0]["target"] == "7" and rows[0]["predicted"] == "1"


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_architecture_with_checkpoint_file_and_torchscript(tmp_path, digits, capsys):
    torch.manual_seed(0)
    net = SmallCNN(in_channels=1)
    ckpt = tmp_path / "small.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, ckpt
    )
    code, _, err = _run(
        capsys,
        "saliency",
        digits,
        "--model",
        "smallcnn",
        "--weights",
        ckpt,
        "--methods",
        "saliency",
        "--out",
        tmp_path / "a",
    )
    assert code == 0, err
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), scripted)
    code, _, err = _run(
        capsys,
        "saliency",
        digits,
        "--model",
        scripted,
        "--channels",
        "1",
        "--input-size",
        "28",
        "--mean",
        "0.1307",
        "--std",
        "0.3081",
        "--methods",
        "saliency",
        "--out",
        tmp_path / "b",
    )
    assert code == 0, err
    a = torch.load(tmp_path / "a" / "maps" / "saliency.pt", weights_only=True)[
        "attributions"
    ]
    b = torch.load(tmp_path / "b" / "maps" / "saliency.pt", weights_only=True)[
        "attributions"
    ]
    torch.testing.assert_close(a, b)


def test_torchvision_weights_name_from_the_hub_cache(
    tmp_path, digits, capsys, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline_guard(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline_guard)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_guard)
    argv = [
        "saliency",
        digits / "d0_0.png",
        "--model",
        "resnet18",
        "--weights",
        "IMAGENET1K_V1",
        "--input-size",
        "64",
        "--methods",
        "saliency",
        "--out",
        tmp_path / "out",
    ]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "never downloads" in err and "resnet18-f37072fd.pth" in err
    assert not (tmp_path / "out").exists()
    # the same weights, once in the cache, load offline
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(
        torchvision.models.resnet18().state_dict(), cache / "resnet18-f37072fd.pth"
    )
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert rows[0]["predicted_name"] == categories[int(rows[0]["predicted"])]


def _bad_inputs(tmp_path, digits):
    (tmp_path / "corrupt.pth").write_bytes(os.urandom(200))
    torch.save(SmallCNN(in_channels=1).state_dict(), tmp_path / "small.pth")
    torch.save(SmallCNN(in_channels=1), tmp_path / "pickled.pth")
    (tmp_path / "blocker").write_text("a file")
    return {
        "missing image": ([tmp_path / "nope.png"], "no such file or folder"),
        "non-image file": ([digits / "notes.txt"], "is not an image"),
        "corrupt checkpoint": (
            [digits, "--model", "resnet18", "--weights", tmp_path / "corrupt.pth"],
            "corrupt or not a PyTorch checkpoint",
        ),
        "corrupt torchscript": (
            [digits, "--model", tmp_path / "corrupt.pth"],
            "not a readable TorchScript file",
        ),
        "other architecture": (
            [digits, "--model", "resnet20", "--weights", tmp_path / "small.pth"],
            "is not a checkpoint for resnet20",
        ),
        "pickled module": (
            [digits, "--model", "smallcnn", "--weights", tmp_path / "pickled.pth"],
            "needs pickled Python code",
        ),
        "unknown method": (
            [digits, "--methods", "saliency,sailency"],
            "unknown method 'sailency'",
        ),
        "unknown model": ([digits, "--model", "resnet1000"], "unknown model"),
        "unwritable output": ([digits, "--out", tmp_path / "blocker" / "out"], "--out"),
        "bad target": ([digits, "--target", "10"], "out of range"),
        "bad keep": ([digits, "--keep", "0"], "keep"),
        "bad crigrad layer": (
            [digits, "--crigrad-layers", "features.99"],
            "crigrad_layers",
        ),
        "bad sigma": (
            [digits, "--methods", "forgrad", "--sigma", "50"],
            "forgrad_sigma",
        ),
        "bad energy": ([digits, "--methods", "forgrad", "--energy", "1"], "--energy"),
        "sigma and energy": (
            [digits, "--methods", "forgrad", "--sigma", "3", "--energy", "0.5"],
            "--energy: cannot be combined with --sigma",
        ),
    }


def test_bad_inputs_one_line_error_nothing_written(tmp_path, digits, capsys):
    cases = _bad_inputs(tmp_path, digits)
    before = sorted(os.listdir(tmp_path))
    for what, (args, message) in cases.items():
        out = tmp_path / "out"
        argv = ["saliency", *args]
        if "--out" not in args:
            argv += ["--out", out]
        code, stdout, err = _run(capsys, *argv)
        assert code == 2, what
        assert message in err, (what, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, what
        assert sorted(os.listdir(tmp_path)) == before, what  # nothing half written
