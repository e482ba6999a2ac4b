"""captum_crigrad.io: checkpoints, models, TorchScript, images and MNIST
folders, loaded offline, with one-line user errors; and the command line's
error policy (user errors: one line, exit 2; anything else: traceback, 1)."""

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad import io
from captum_crigrad.cli import CLIError, main
from captum_crigrad.core.validation import InvalidValueError, UserInputError
from captum_crigrad.io.models import SmallCNN, resnet20


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("io")
    torch.manual_seed(0)
    small = SmallCNN(in_channels=3, num_classes=7, width=8)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in small.state_dict().items()}},
        t / "small.pth",
    )
    torch.save(small, t / "pickled.pth")
    torch.save({"a": 1}, t / "notensors.pth")
    (t / "corrupt.pth").write_bytes(b"\x00not a checkpoint" * 8)
    torch.jit.save(torch.jit.script(SmallCNN(in_channels=3).eval()), t / "net.ts")
    images = t / "images"
    images.mkdir()
    for i, size in enumerate([(40, 30), (20, 20)]):
        arr = (np.arange(size[0] * size[1] * 3) % 255).astype(np.uint8)
        Image.fromarray(arr.reshape(size[1], size[0], 3)).save(images / f"{i}.png")
    (images / "notes.txt").write_text("not an image")
    (t / "fake.png").write_text("not an image")
    mnist = t / "mnist"
    mnist.mkdir()
    n = io.MNIST_HELDOUT_START + 2
    pixels = np.zeros((n, 28, 28), dtype=np.uint8)
    pixels[-1, 10:18, 10:18] = 255
    with gzip.open(mnist / io.MNIST_IMAGES, "wb") as fh:
        fh.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + pixels.tobytes())
    with gzip.open(mnist / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">HBBI", 0, 8, 1, n) + bytes(n))
    return t


def test_read_checkpoint(files):
    state = io.read_checkpoint(files / "small.pth")
    assert set(state) == set(
        SmallCNN(in_channels=3, num_classes=7, width=8).state_dict()
    )
    cases = [
        ("none.pth", "weights: no such file"),
        ("corrupt.pth", "corrupt or not a PyTorch checkpoint"),
        ("pickled.pth", "needs pickled Python code"),
        ("notensors.pth", "does not hold a state dict of tensors"),
    ]
    for name, message in cases:
        with pytest.raises(InvalidValueError, match=message):
            io.read_checkpoint(files / name)
    with pytest.raises(InvalidValueError, match="^--ckpt: no such file"):
        io.read_checkpoint(files / "none.pth", argument="--ckpt")


def test_load_model(files):
    default = io.load_model()
    assert default.channels == 1 and default.size == 28 and not default.model.training
    small = io.load_model("smallcnn", str(files / "small.pth"))
    assert (small.channels, small.size, small.mean) == (3, 32, io.IMAGENET_MEAN)
    assert small.model(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    scripted = io.load_model(str(files / "net.ts"))
    assert scripted.description == "TorchScript net.ts" and not scripted.channels_known
    names = {"model": "--model", "weights": "--weights"}
    bad = [
        (("default", "x.pth"), "--weights: the embedded default model has its own"),
        (("resnet1000", None), "--model: unknown model 'resnet1000'"),
        (("resnet20", None), "--weights: resnet20 needs weights"),
        (("resnet20", "nope.pth"), "--weights: no such file"),
        (("resnet20", str(files / "small.pth")), "is not a checkpoint for resnet20"),
        ((str(files / "corrupt.pth"),), "--model: .* is not a readable TorchScript"),
        ((str(files / "net.ts"), "w.pth"), "--weights: only with an architecture"),
        (("resnet18", "NOPE"), "neither a file nor a torchvision weights name"),
    ]
    for args, message in bad:
        with pytest.raises(InvalidValueError, match=message):
            io.load_model(*args, names=names)


def test_load_resnet20(tmp_path):
    torch.manual_seed(0)
    net = resnet20()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "r.th")
    loaded = io.load_resnet20(tmp_path / "r.th")
    assert not loaded.training
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            loaded.state_dict().values(), net.state_dict().values(), strict=True
        )
    )


def test_cli_resnet20_uses_crigrads_default_layers(tmp_path):
    """The command line's ResNet-20 filters what CriGradSaliency(model)
    filters by default (every activation call, the defaults study's choice),
    not a hand-picked layer list."""
    from captum_crigrad import CriGradSaliency
    from captum_crigrad.methods import ExplainOptions
    from captum_crigrad.methods.explain import explain

    torch.manual_seed(0)
    torch.save({"state_dict": resnet20().state_dict()}, tmp_path / "r.th")
    loaded = io.load_model("resnet20", str(tmp_path / "r.th"))
    assert loaded.crigrad_layers is None
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    options = ExplainOptions(crigrad_layers=loaded.crigrad_layers)
    target = torch.tensor([1, 1])
    ours = explain(loaded.model, x, "crigrad-saliency", target, options)
    ref = CriGradSaliency(loaded.model).attribute(x, target=1, abs=False)
    ours = ours["crigrad-saliency"]
    torch.testing.assert_close(ours, ref)


def test_images_and_mnist_folders(files):
    found = io.find_images([files / "images"])
    assert [p.rsplit("/", 1)[1] for p in found] == ["0.png", "1.png"]
    x = io.read_images(found, 3, 16)
    assert x.shape == (2, 3, 16, 16) and 0 <= x.min() and x.max() <= 1
    assert io.read_images(found, 1, 8).shape == (2, 1, 8, 8)
    for paths, message in [
        ([files / "nope.png"], "images: no such file or folder"),
        ([files / "mnist" / ".." / "images" / "notes.txt"], None),
        ([], "images: give at least one image file or folder"),
    ]:
        if message is None:
            with pytest.raises(InvalidValueError, match="is not an image"):
                io.read_images(io.find_images(paths), 3, 8)
        else:
            with pytest.raises(InvalidValueError, match=message):
                io.find_images(paths)
    entries = io.image_sources([files / "mnist", files / "images" / "1.png"])
    assert entries[:2] == [(str(files / "mnist"), 8000), (str(files / "mnist"), 8001)]
    batch = io.read_sources(entries, 1, 14)
    assert batch.shape == (3, 1, 14, 14) and batch[0].max() == 0 and batch[1].max() == 1


def test_preprocessing():
    loaded = io.load_model()
    assert io.preprocessing(loaded) == (loaded.mean, loaded.std)
    assert io.preprocessing(loaded, normalize="none") == ((0.0,), (1.0,))
    assert io.preprocessing(loaded, mean=[0.5], std=[0.25]) == ((0.5,), (0.25,))
    names = {"channels": "--channels", "mean": "--mean", "std": "--std"}
    for kwargs, message in [
        (dict(channels=3), "--channels: embedded default .* takes 1 channel"),
        (dict(mean=[0.1, 0.2], std=[1, 1]), "--mean/--std: the model takes 1"),
        (dict(std=[0.0]), "--std: expected a finite number > 0"),
        (dict(normalize="zscore"), "normalize: expected one of"),
    ]:
        with pytest.raises(InvalidValueError, match=message):
            io.preprocessing(loaded, names=names, **kwargs)


def test_load_inputs(files):
    inputs = io.load_inputs(n_images=3)
    assert inputs.images.shape == (3, 1, 28, 28) and inputs.n_outputs == 10
    assert inputs.files[0].startswith("default-digit-00")
    torch.testing.assert_close(
        inputs.images, (inputs.raw - 0.1307) / 0.3081, rtol=0, atol=1e-6
    )
    small = io.load_inputs(
        [files / "images"], model="smallcnn", weights=str(files / "small.pth")
    )
    assert small.images.shape == (2, 3, 32, 32) and small.n_outputs == 7
    for kwargs, message in [
        (dict(device="meta"), "device: 'meta'"),
        (dict(n_images=0), "n_images: expected an int >= 1"),
        (dict(input_size=4), "input_size: expected an int >= 8"),
        (dict(model="smallcnn", weights="x"), "images: give image files or folders"),
        (
            dict(images=[files / "images"], model=str(files / "net.ts"), channels=1),
            "model: forward pass failed",
        ),
    ]:
        with pytest.raises(InvalidValueError, match=message):
            io.load_inputs(**kwargs)


# ---------------------------------------------------- command-line error policy


def _fake_run(exc):
    def run(args):
        raise exc

    return run


@pytest.mark.parametrize(
    "exc, code, one_line",
    [
        (CLIError("--x: bad"), 2, True),
        (InvalidValueError("target: class index 12 is out of range"), 2, True),
        (ValueError("a plain ValueError is a bug"), 1, False),
        (TypeError("unsupported operand"), 1, False),
        (RuntimeError("shape mismatch"), 1, False),
    ],
)
def test_cli_error_policy(monkeypatch, capsys, exc, code, one_line):
    from captum_crigrad.cli import demo

    monkeypatch.setattr(demo, "run", _fake_run(exc))
    assert main(["demo"]) == code
    err = capsys.readouterr().err
    if one_line:
        assert isinstance(exc, UserInputError)
        assert err.strip().splitlines() == [f"captum-crigrad demo: error: {exc}"]
    else:
        assert "Traceback" in err and str(exc) in err
        assert "bug in captum-crigrad" in err and "please report it" in err
