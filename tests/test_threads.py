"""Transformed calls act only on their own passes (issue 12, defects 2 and 6).

N threads share one model (and, as a control, each has its own): gradient
steps of training, plain Captum, CriGrad with different options (online,
two_pass, explicit layers), FORGrad with CriGrad, and no-grad forwards.
Each must get exactly what it gets alone. A layer call that sees another
thread run the model is refused (Captum's layer hooks are shared). The
caller's input keeps its ``requires_grad`` flag on every path.
"""

import copy
import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, Saliency
from helpers import hook_count

from captum_crigrad import (
    CriGrad,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    FORGradSaliency,
    crigrad_attribution,
)
from captum_crigrad.core.hooks import ConcurrentUseError

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")

ROUNDS = 4


def _x():
    return X.clone()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.act(self.conv1(x))
        h = F.gelu(self.conv2(h))  # a functional activation too
        return self.fc(h.mean(dim=(2, 3)))


X = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 3])


def _jobs(model):
    """name -> function of the model computing one result. Each call gets its
    own input tensor: Captum sets and resets ``requires_grad`` on the tensor
    it is given, so threads must not share one input tensor (a Captum rule,
    not a model one)."""

    def training_gradient(m):
        loss = F.cross_entropy(m(X.clone()), Y)
        return torch.cat(
            [g.flatten() for g in torch.autograd.grad(loss, list(m.parameters()))]
        )

    def no_grad_forward(m):
        with torch.no_grad():
            return m(X.clone())

    return {
        "training": training_gradient,
        "no_grad": no_grad_forward,
        "saliency": lambda m: Saliency(m).attribute(_x(), target=Y),
        "ig": lambda m: IntegratedGradients(m).attribute(_x(), target=1, n_steps=3),
        "crigrad_0.3": lambda m: CriGradSaliency(m, keep=0.3).attribute(_x(), target=Y),
        "crigrad_0.7": lambda m: CriGradSaliency(m, keep=0.7).attribute(_x(), target=Y),
        "two_pass": lambda m: CriGradIntegratedGradients(
            m, keep=0.3, mode="two_pass"
        ).attribute(_x(), target=2, n_steps=3),
        "layers": lambda m: CriGradSaliency(m, keep=0.2, layers=[m.act]).attribute(
            _x(), target=Y
        ),
        "forgrad": lambda m: FORGradSaliency(
            m, sigma=2.0, transform=CriGrad(keep=0.4)
        ).attribute(_x(), target=Y),
        "wrapped": lambda m: crigrad_attribution(Saliency(m), keep=0.5).attribute(
            _x(), target=-1
        ),
    }


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate"])
def test_each_thread_gets_what_it_gets_alone(shared):
    model = Net().eval()
    jobs = _jobs(model)
    alone = {name: job(model) for name, job in jobs.items()}
    results = {name: [] for name in jobs}
    errors = []
    barrier = threading.Barrier(len(jobs))

    def run(name, job):
        m = model if shared else copy.deepcopy(model)
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                results[name].append(job(m))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append((name, repr(exc)))

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, got in results.items():
        assert len(got) == ROUNDS
        for r in got:
            torch.testing.assert_close(r, alone[name], atol=1e-6, rtol=1e-5, msg=name)
    assert hook_count(model) == 0


def test_layer_call_refuses_another_threads_pass_of_the_model():
    model = Net().eval()

    def forward_with_a_foreign_pass(x):
        other = threading.Thread(target=lambda: model(X))
        other.start()
        other.join()
        return model(x)

    alone = CriGradLayerGradCam(model, model.conv2, keep=0.3).attribute(_x(), target=Y)
    with pytest.raises(ConcurrentUseError, match="another thread"):
        CriGradLayerGradCam(
            forward_with_a_foreign_pass, model.conv2, keep=0.3, model=model
        ).attribute(_x(), target=Y)
    # the same call without the foreign pass gives the map of the plain call
    again = CriGradLayerGradCam(
        lambda x: model(x), model.conv2, keep=0.3, model=model
    ).attribute(_x(), target=Y)
    torch.testing.assert_close(again, alone)
    assert not torch.allclose(
        alone, LayerGradCam(model, model.conv2).attribute(_x(), Y)
    )
    assert hook_count(model) == 0


def _failing_calls(model):
    """Calls that fail after Captum has set requires_grad on the inputs."""
    return [
        lambda x: CriGradSaliency(model, keep=0.3).attribute(x, target=7),
        lambda x: CriGradSaliency(model, keep=1.0).attribute(x, target=7),
        lambda x: CriGradIntegratedGradients(model, keep=0.3).attribute(
            x, target=9, n_steps=2
        ),
        lambda x: FORGradSaliency(model, sigma=2.0).attribute(x, target=(0, 5)),
        lambda x: crigrad_attribution(Saliency(model), keep=0.3).attribute(
            x, target=11
        ),
        lambda x: CriGradSaliency(model, keep=0.3, layers=[nn.ReLU()]).attribute(
            x, target=0
        ),
    ]


@pytest.mark.parametrize("requires_grad", [False, True])
def test_callers_input_flags_restored_on_every_path(requires_grad):
    model = Net().eval()
    for i, call in enumerate(_failing_calls(model)):
        x = X.clone().requires_grad_(requires_grad)
        with pytest.raises((ValueError, TypeError, IndexError)):
            call(x)
        assert x.requires_grad is requires_grad, i
        assert x.grad is None
    x = X.clone().requires_grad_(requires_grad)
    CriGradSaliency(model, keep=0.3).attribute(x, target=Y)
    assert x.requires_grad is requires_grad
    assert hook_count(model) == 0
