"""Shared test utilities: model state snapshots and hook counting."""

import torch
import torch.nn as nn


def hook_count(model: nn.Module) -> int:
    """Module hooks of every kind on ``model`` and its submodules."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def snapshot(model: nn.Module):
    """Parameters, buffers and train/eval flags, copied."""
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
    )


def assert_untouched(model: nn.Module, snap) -> None:
    state, modes = snap
    assert hook_count(model) == 0, "a hook was left on the model"
    assert [m.training for m in model.modules()] == modes, "train/eval mode changed"
    now = model.state_dict()
    assert state.keys() == now.keys()
    for k, v in state.items():
        assert torch.equal(v, now[k]), f"{k} changed"


class MLP(nn.Module):
    def __init__(self, d_in=6, hidden=(8, 8), d_out=4):
        super().__init__()
        layers, d = [], d_in
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class TinyCNN(nn.Module):
    """A CNN with an in-place ReLU module called twice per forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))
