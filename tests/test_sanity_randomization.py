import pytest
import torch
import torch.nn as nn

from captum_crigrad.io.models import SmallCNN, resnet20
from captum_crigrad.sanity.randomization import (
    default_blocks,
    randomize_model_parameters,
    randomized_models,
)


def _trained_like(model: nn.Module, seed: int = 123) -> nn.Module:
    """Move every parameter and BatchNorm statistic away from its default
    initialisation, as training would (so a reset is always visible)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 + torch.rand(p.shape, generator=gen))
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(0.5 + torch.rand(b.shape, generator=gen))
            else:
                b.add_(7)
    return model.eval()


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(model, snapshot):
    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    for k, v in snapshot.items():
        assert torch.equal(state[k], v), k


def _in_block(key: str, block: str) -> bool:
    return key.startswith(block + ".")


def _param_keys(model):
    return [k for k, _ in model.named_parameters()]


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return _trained_like(SmallCNN())


@pytest.fixture
def rn20():
    torch.manual_seed(0)
    return _trained_like(resnet20())


def test_default_blocks_top_first(cnn, rn20):
    assert default_blocks(cnn) == [
        "classifier.4",
        "classifier.2",
        "features.5",
        "features.3",
        "features.0",
    ]
    blocks = default_blocks(rn20, "block")
    assert blocks[0] == "linear" and blocks[-2:] == ["bn1", "conv1"]
    assert "layer3.2" in blocks and "layer1.0" in blocks and len(blocks) == 12
    assert len(default_blocks(rn20, "module")) == 1 + 2 + 9 * 4


@pytest.mark.parametrize("init", ["reset", "normal"])
@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_caller_model_bit_identical_and_rng_untouched(rn20, mode, init):
    before = _snapshot(rn20)
    rng_before = torch.random.get_rng_state()
    rn20.train()
    steps = 0
    for _name, randomized in randomized_models(
        rn20, mode, granularity="block", init=init, seed=3
    ):
        assert randomized is not rn20
        assert randomized.training  # mode copied, not changed
        _assert_same(rn20, before)
        steps += 1
    assert steps == 12
    _assert_same(rn20, before)
    assert rn20.training
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    out = randomize_model_parameters(rn20, ["layer2.1", "linear"], init=init)
    _assert_same(rn20, before)
    assert out is not rn20


@pytest.mark.parametrize("init", ["reset", "normal"])
def test_cascading_step_i_randomises_exactly_first_i_blocks(rn20, init):
    trained = _snapshot(rn20)
    blocks = default_blocks(rn20, "block")
    for i, (name, randomized) in enumerate(
        randomized_models(rn20, "cascading", granularity="block", init=init, seed=1)
    ):
        assert name == blocks[i]
        state = randomized.state_dict()
        done = blocks[: i + 1]
        for key in _param_keys(rn20):
            changed = not torch.equal(state[key], trained[key])
            assert changed == any(_in_block(key, b) for b in done), (i, key)
        # buffers (BatchNorm statistics) kept by default
        for key, value in randomized.named_buffers():
            assert torch.equal(value, trained[key])
        # the randomised blocks hold exactly their seeded re-initialisation
        alone = randomize_model_parameters(rn20, [blocks[i]], init=init, seed=1)
        alone_state = alone.state_dict()
        for key in _param_keys(rn20):
            if _in_block(key, blocks[i]):
                assert torch.equal(state[key], alone_state[key])


def test_independent_step_differs_in_its_block_only(cnn):
    trained = _snapshot(cnn)
    blocks = default_blocks(cnn)
    names = []
    for name, randomized in randomized_models(cnn, "independent", seed=5):
        names.append(name)
        state = randomized.state_dict()
        for key in _param_keys(cnn):
            changed = not torch.equal(state[key], trained[key])
            assert changed == _in_block(key, name), (name, key)
    assert names == blocks


def test_reset_uses_module_default_init_and_normal_uses_std(rn20):
    reset = randomize_model_parameters(rn20, ["layer3.2", "linear"], init="reset")
    bn = reset.layer3[2].bn1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
    w = reset.layer3[2].conv1.weight
    fan_in = w[0].numel()
    assert w.abs().max() <= 1 / fan_in**0.5 + 1e-7  # kaiming_uniform(a=sqrt(5))
    # BatchNorm statistics kept although BatchNorm.reset_parameters resets them
    assert torch.equal(bn.running_mean, rn20.layer3[2].bn1.running_mean)

    normal = randomize_model_parameters(
        rn20, ["layer3.2"], init="normal", std=0.01, seed=0
    )
    values = torch.cat([p.flatten() for p in normal.layer3[2].parameters()])
    assert abs(values.std().item() - 0.01) < 0.0005
    assert abs(values.mean().item()) < 0.0005


def test_batchnorm_stats_reset_option(rn20):
    out = randomize_model_parameters(
        rn20, ["layer1.0"], init="normal", batchnorm_stats="reset"
    )
    bn = out.layer1[0].bn2
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    untouched = out.layer2[0].bn1
    assert torch.equal(untouched.running_mean, rn20.layer2[0].bn1.running_mean)


def test_seed_reproducible_and_different_seeds_differ(cnn):
    a = randomize_model_parameters(cnn, ["features.3"], seed=7)
    b = randomize_model_parameters(cnn, ["features.3"], seed=7)
    c = randomize_model_parameters(cnn, ["features.3"], seed=8)
    assert torch.equal(a.features[3].weight, b.features[3].weight)
    assert not torch.equal(a.features[3].weight, c.features[3].weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(blocks=["features.9"]), "no submodule 'features.9'"),
        (dict(blocks=[]), "blocks: empty list"),
        (dict(blocks=["features.1"]), "no learnable parameters"),
        (dict(blocks=["features", "features.0"]), "must not overlap"),
        (dict(mode="sideways"), "mode: expected one of"),
        (dict(init="xavier"), "init: expected one of"),
        (dict(batchnorm_stats="drop"), "batchnorm_stats"),
        (dict(granularity="layer"), "granularity"),
        (dict(std=-1.0, init="normal"), "std: expected a finite number > 0"),
    ],
)
def test_bad_input_clear_error_before_any_work(cnn, kwargs, match):
    before = _snapshot(cnn)
    with pytest.raises(ValueError, match=match):
        randomized_models(cnn, **kwargs)  # raises at call, not at first next()
    _assert_same(cnn, before)


def test_reset_without_reset_parameters_draws_the_fallback():
    """A module owning parameters but no reset_parameters() (a ViT's class
    token) gets N(0, RESET_FALLBACK_STD^2) under init='reset', seeded."""
    from captum_crigrad.sanity.randomization import RESET_FALLBACK_STD

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(4096))

        def forward(self, x):
            return x * self.gain[:3]

    model = nn.Sequential(nn.Linear(3, 3), Scale())
    snap = _snapshot(model)
    out = randomize_model_parameters(model, ["1"], init="reset", seed=3)
    _assert_same(model, snap)
    gain = out[1].gain.detach()
    assert abs(float(gain.mean())) < 5 * RESET_FALLBACK_STD / 64
    assert float(gain.std()) == pytest.approx(RESET_FALLBACK_STD, rel=0.05)
    again = randomize_model_parameters(model, ["1"], init="reset", seed=3)
    assert torch.equal(again[1].gain, out[1].gain)
    assert torch.equal(out[0].weight, model[0].weight)  # only block "1"
    steps = [name for name, _ in randomized_models(model, init="reset")]
    assert steps == ["1", "0"]


def test_not_a_module():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        randomized_models(lambda x: x)
