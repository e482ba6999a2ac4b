import pytest
import torch
import torch.nn as nn

from captum_crigrad.metrics.roar import attribute_dataset, roar

INFORMATIVE = [(1, 1), (2, 5), (5, 2), (6, 6)]


def toy(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    evidence = sum(x[:, 0, i, j] for i, j in INFORMATIVE)
    return x, (evidence > 0).long()


def oracle(images, labels):
    attr = torch.zeros_like(images)
    for i, j in INFORMATIVE:
        attr[:, :, i, j] = 1.0
    return attr


def model_fn():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.slow
def test_oracle_ranking_degrades_accuracy_faster_than_random():
    xtr, ytr = toy(768, 0)
    xte, yte = toy(256, 1)
    atr = attribute_dataset(oracle, xtr, ytr, batch_size=100)
    ate = attribute_dataset(oracle, xte, yte)
    state = torch.random.get_rng_state()
    res = roar(
        xtr,
        ytr,
        xte,
        yte,
        atr,
        ate,
        fractions=[0.1],
        seeds=[0, 1],
        model_fn=model_fn,
        train_kwargs=dict(epochs=8, lr=1e-2),
    )
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched
    assert res.fractions.tolist() == [0.0, 0.1]
    unmodified, oracle_acc, random_acc = (
        res.accuracy[0].mean(),
        res.accuracy[1].mean(),
        res.random_accuracy[1].mean(),
    )
    assert unmodified > 0.85
    assert oracle_acc < 0.65  # the label is gone: near chance
    assert random_acc > oracle_acc + 0.15
    # reproducible: same seeds, same numbers
    again = roar(
        xtr,
        ytr,
        xte,
        yte,
        atr,
        ate,
        fractions=[0.1],
        seeds=[0],
        model_fn=model_fn,
        train_kwargs=dict(epochs=8, lr=1e-2),
        random_control=False,
    )
    assert again.accuracy[1, 0] == res.accuracy[1, 0]


def test_train_fn_contract_and_bad_inputs():
    xtr, ytr = toy(64, 0)
    atr = oracle(xtr, ytr)
    seen = []

    def train_fn(loader):
        seen.append(len(loader.dataset))
        return model_fn().eval()

    res = roar(
        xtr,
        ytr,
        xtr,
        ytr,
        atr,
        atr,
        fractions=[0.5],
        seeds=[0],
        train_fn=train_fn,
        random_control=False,
    )
    assert seen == [64, 64] and res.accuracy.shape == (2, 1)
    with pytest.raises(TypeError, match="train_fn: returned NoneType"):
        roar(
            xtr,
            ytr,
            xtr,
            ytr,
            atr,
            atr,
            fractions=[0.5],
            seeds=[0],
            train_fn=lambda loader: None,
        )
    with pytest.raises(ValueError, match="fractions"):
        roar(xtr, ytr, xtr, ytr, atr, atr, fractions=[1.5], model_fn=model_fn)
    with pytest.raises(ValueError, match="train_attributions: shape"):
        roar(xtr, ytr, xtr, ytr, atr[:, :, :4], atr, model_fn=model_fn)
    with pytest.raises(ValueError, match="model_fn"):
        roar(xtr, ytr, xtr, ytr, atr, atr)
