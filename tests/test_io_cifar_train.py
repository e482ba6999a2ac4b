"""The CIFAR-10 training archive reader and the split of the defaults study."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io import cifar10_split, load_cifar10_tar
from captum_crigrad.io.models import CifarCNN


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, array in members:
            buf = io.BytesIO()
            Image.fromarray(array).save(buf, format="JPEG", quality=95)
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))


def test_reads_members_in_class_order(tmp_path):
    rng = np.random.default_rng(0)
    flat = {
        c: np.full((32, 32, 3), v, np.uint8) for c, v in (("dog", 200), ("cat", 50))
    }
    members = [
        ("train/dog/0002.jpg", flat["dog"]),
        ("train/cat/0007.jpg", flat["cat"]),
        ("train/airplane/0001.jpg", (rng.random((32, 32, 3)) * 255).astype(np.uint8)),
        ("train/cat/0003.jpg", flat["cat"]),
    ]
    _tar(tmp_path / "c.tar.gz", members)
    images, labels, names = load_cifar10_tar(tmp_path / "c.tar.gz")
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 3, 3, 5]  # airplane, cat, cat, dog
    assert names == [
        "train/airplane/0001.jpg",
        "train/cat/0003.jpg",
        "train/cat/0007.jpg",
        "train/dog/0002.jpg",
    ]
    assert abs(float(images[3].float().mean()) - 200) < 2  # JPEG of a flat image


def test_reader_errors(tmp_path):
    _tar(tmp_path / "a.tar.gz", [("train/lion/1.jpg", np.zeros((32, 32, 3), np.uint8))])
    with pytest.raises(InvalidValueError, match="class folder"):
        load_cifar10_tar(tmp_path / "a.tar.gz")
    _tar(tmp_path / "b.tar.gz", [("train/cat/1.jpg", np.zeros((16, 16, 3), np.uint8))])
    with pytest.raises(InvalidValueError, match="32x32"):
        load_cifar10_tar(tmp_path / "b.tar.gz")
    (tmp_path / "c.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(InvalidValueError, match="tar"):
        load_cifar10_tar(tmp_path / "c.tar.gz")


def test_split_is_stratified_disjoint_and_seeded():
    labels = torch.arange(10).repeat_interleave(20)[torch.randperm(200)]
    train, held = cifar10_split(labels, heldout_per_class=5, seed=3)
    assert len(held) == 50 and len(train) == 150
    assert torch.equal(torch.cat([train, held]).sort().values, torch.arange(200))
    assert torch.bincount(labels[held], minlength=10).tolist() == [5] * 10
    assert torch.equal(held, held.sort().values)
    again = cifar10_split(labels, heldout_per_class=5, seed=3)
    assert torch.equal(again[1], held)
    assert not torch.equal(cifar10_split(labels, 5, seed=4)[1], held)
    with pytest.raises(InvalidValueError, match="heldout_per_class"):
        cifar10_split(labels, heldout_per_class=20)


WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "cifar10_cnn.pt"


@pytest.mark.skipif(not WEIGHTS.exists(), reason="weights/cifar10_cnn.pt absent")
def test_committed_cifar_cnn_weights_match_their_record():
    """weights/cifar10_cnn.pt (scripts/train_cifar_cnn.py) loads into CifarCNN
    with weights_only=True and is the file its JSON record describes."""
    info = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == info["weights_sha256"]
    model = CifarCNN()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert info["split"]["n_heldout"] == 5000 and 0.5 < info["heldout_accuracy"] < 1
