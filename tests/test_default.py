import hashlib
import os

import pytest
import torch

from captum_crigrad.core.training import accuracy
from captum_crigrad.io import default as d
from captum_crigrad.io import load_mnist
from captum_crigrad.io.models import SmallCNN


def test_shipped_model_classifies_shipped_images():
    model = d.load_default_model()
    images, labels = d.load_default_images()
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.float32
    assert labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert accuracy(model, images, labels) >= 0.90


def test_images_normalised_as_model_expects():
    raw, labels = d.load_default_images(normalized=False)
    norm, labels2 = d.load_default_images()
    assert torch.equal(labels, labels2)
    assert raw.min() >= 0 and raw.max() <= 1 and raw.max() > 0.9
    torch.testing.assert_close(d.normalize_mnist(raw), norm)
    torch.testing.assert_close(d.denormalize_mnist(norm), raw)
    # The model only works on normalised inputs: raw [0, 1] digits must do worse
    # on the logit margin, so a wrong normalisation here would be caught.
    model = d.load_default_model()
    with torch.no_grad():
        p_norm = model(norm).softmax(1).gather(1, labels[:, None]).mean()
        p_raw = model(raw).softmax(1).gather(1, labels[:, None]).mean()
    assert p_norm > p_raw


def test_weights_are_small_plain_state_dict_matching_provenance():
    assert os.path.getsize(d.MODEL_FILE) < 1_000_000  # "well under 5 MB"
    state = torch.load(d.MODEL_FILE, map_location="cpu", weights_only=True)
    assert set(state) == set(SmallCNN(in_channels=1).state_dict())
    info = d.default_model_info()
    with open(d.MODEL_FILE, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == info["weights_sha256"]
    assert info["heldout_accuracy"] == d.DEFAULT_HELDOUT_ACCURACY
    assert info["training"]["epochs"] == d.TRAIN_EPOCHS
    assert info["split"]["n_train"] == d.N_TRAIN


def test_load_default_model_is_fresh_and_in_eval_mode():
    a, b = d.load_default_model(), d.load_default_model()
    assert not a.training
    with torch.no_grad():
        a.features[0].weight.zero_()
    assert b.features[0].weight.abs().sum() > 0


def test_split_and_pick_validate_and_are_seeded():
    x, y = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10) % 2
    a = d.mnist_split(x, y, n_train=7, seed=3)
    b = d.mnist_split(x, y, n_train=7, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert sorted(torch.cat([a[0], a[2]]).flatten().tolist()) == list(range(10))
    with pytest.raises(ValueError, match="n_train"):
        d.mnist_split(x, y, n_train=10)
    assert d.pick_examples(y, per_class=2, num_classes=2).tolist() == [0, 2, 1, 3]
    with pytest.raises(ValueError, match="class 1"):
        d.pick_examples(torch.zeros(5, dtype=torch.long), per_class=1, num_classes=2)


@pytest.mark.assets
def test_heldout_accuracy_matches_stated_number(assets):
    images, labels = load_mnist(assets / "mnist")
    _, _, held_x, held_y = d.mnist_split(images, labels)
    acc = accuracy(d.load_default_model(), d.normalize_mnist(held_x), held_y)
    assert abs(acc - d.DEFAULT_HELDOUT_ACCURACY) <= 0.005


@pytest.mark.assets
def test_shipped_images_are_held_out_digits(assets):
    images, labels = load_mnist(assets / "mnist")
    train_x, _, held_x, held_y = d.mnist_split(images, labels)
    shipped, shipped_y = d.load_default_images(normalized=False)
    picks = d.pick_examples(held_y)
    torch.testing.assert_close(shipped, held_x[picks], atol=0.5 / 255, rtol=0)
    assert torch.equal(shipped_y, held_y[picks])
    # none of them was seen in training
    flat_train = train_x.flatten(1)
    for img in shipped.flatten(1):
        assert not (flat_train - img).abs().amax(1).lt(0.5 / 255).any()
