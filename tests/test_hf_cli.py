"""``--model hf:PATH``: a Hugging Face transformers image classifier saved
with ``save_pretrained`` in every command (tiny random-init models, nothing
downloaded)."""

import json
import os

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from captum_crigrad.cli import main  # noqa: E402
from captum_crigrad.core.validation import InvalidValueError  # noqa: E402
from captum_crigrad.io import load_model  # noqa: E402
from captum_crigrad.io.hf import load_hf_model  # noqa: E402

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _save_processor(folder, **kwargs):
    transformers.ViTImageProcessor(**kwargs).save_pretrained(folder)


def _vit(folder, *, processor=True):
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=10,
    )
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    if processor:
        _save_processor(
            folder,
            size={"height": 32, "width": 32},
            image_mean=list(MEAN),
            image_std=list(STD),
        )
    return str(folder)


def _convnext(folder):
    config = transformers.ConvNextConfig(
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        num_labels=5,
        layer_scale_init_value=1.0,  # 1e-6 would leave only the skip paths
        image_size=64,
        id2label={i: f"class{i}" for i in range(5)},
        label2id={f"class{i}": i for i in range(5)},
    )
    transformers.ConvNextForImageClassification(config).save_pretrained(folder)
    _save_processor(folder, size={"shortest_edge": 64})
    return str(folder)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    return str(folder)


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return _vit(tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def convnext_dir(tmp_path_factory):
    return _convnext(tmp_path_factory.mktemp("convnext"))


@pytest.fixture(params=["vit", "convnext"])
def model_dir(request, vit_dir, convnext_dir):
    return {"vit": vit_dir, "convnext": convnext_dir}[request.param]


def test_load_hf_model_reads_the_processor_config(vit_dir):
    loaded = load_hf_model(vit_dir)
    assert loaded.size == 32
    assert loaded.channels == 3
    assert loaded.mean == pytest.approx(MEAN)
    assert loaded.std == pytest.approx(STD)
    assert loaded.classes is None  # generic LABEL_0, ... are no names
    assert not loaded.model.training
    assert type(loaded.model).__name__ == "ViTForImageClassification"


def test_load_model_takes_the_hf_prefix(vit_dir, convnext_dir):
    assert load_model(f"hf:{vit_dir}").size == 32
    loaded = load_model(f"hf:{convnext_dir}")
    assert loaded.size == 64  # {"shortest_edge": 64}
    assert list(loaded.classes) == [f"class{i}" for i in range(5)]
    with pytest.raises(InvalidValueError, match="--weights"):
        load_model(f"hf:{vit_dir}", "w.pt", names={"weights": "--weights"})


def test_crop_size_wins_and_no_processor_warns(tmp_path):
    folder = _vit(tmp_path / "crop", processor=False)
    with pytest.warns(UserWarning, match="preprocessor_config.json"):
        loaded = load_hf_model(folder)
    assert (loaded.size, loaded.mean) == (32, (0.485, 0.456, 0.406))
    _save_processor(folder, size={"height": 40, "width": 40}, crop_size=32)
    with open(os.path.join(folder, "preprocessor_config.json")) as f:
        json.load(f)  # written by transformers itself
    assert load_hf_model(folder).size == 32


@pytest.mark.parametrize("make", ["missing", "empty", "garbage"])
def test_not_a_model_folder_is_one_line(tmp_path, make):
    folder = tmp_path / "m"
    if make != "missing":
        folder.mkdir()
    if make == "garbage":
        (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidValueError) as err:
        load_model(f"hf:{folder}", names={"model": "--model"})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("--model: hf:")
    assert "save_pretrained" in message


def test_cli_error_is_one_line(tmp_path, images, capsys):
    code = main(["saliency", images, "--model", f"hf:{tmp_path}", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model: hf:" in err


def test_saliency(model_dir, images, tmp_path):
    out = tmp_path / "out"
    argv = ["saliency", images, "--model", f"hf:{model_dir}"]
    argv += ["--methods", "saliency,crigrad,gradcam", "--out", str(out)]
    assert main(argv + ["--no-progress"]) == 0
    assert (out / "run.json").is_file()
    written = [p.name for p in out.rglob("*") if p.is_file()]
    assert any(n.endswith(".png") for n in written), written
    maps = {
        m: torch.load(out / "maps" / f"{m}.pt")["maps"] for m in argv[-3].split(",")
    }
    assert all(bool(torch.isfinite(v).all()) for v in maps.values())
    assert float(maps["gradcam"].abs().max()) > 0
    # CriGrad filters the GELUs (ViT) / activations (ConvNeXt): another map
    assert not torch.allclose(maps["crigrad"], maps["saliency"])


def test_sanity(model_dir, images, tmp_path):
    out = tmp_path / "out"
    argv = ["sanity", images, "--model", f"hf:{model_dir}", "--n-images", "2"]
    argv += ["--methods", "saliency,gradcam", "--out", str(out), "--no-progress"]
    # the default init="reset" (ViTEmbeddings' class token and position
    # embeddings, which have no reset_parameters(), drawn from N(0, 0.02^2))
    assert main(argv) == 0
    assert (out / "run.json").is_file()
    assert (out / "table.md").is_file()


def test_eval(model_dir, images, tmp_path):
    out = tmp_path / "out"
    argv = ["eval", images, "--model", f"hf:{model_dir}", "--n-images", "2"]
    argv += ["--methods", "saliency,crigrad-saliency", "--metrics", "deletion_auc"]
    argv += ["--steps", "4", "--workers", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert (out / "results.csv").is_file()
    assert (out / "run.json").is_file()
