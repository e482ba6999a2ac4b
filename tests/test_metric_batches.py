"""The automatic batch size of the metrics (core.forward.rows_per_pass):
small images keep 64 examples per forward call, 224 px images get a few, an
explicit max_examples_per_batch is honoured, and the scores do not depend on
it."""

import pytest
import torch
import torch.nn as nn

from captum_crigrad.core.forward import (
    FORWARD_ELEMENTS,
    MOST_EXAMPLES_PER_PASS,
    metric_batch,
    rows_per_pass,
)
from captum_crigrad.metrics import deletion, infidelity, sensitivity_n


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def _batches(model, fn) -> list[int]:
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda _m, inp: sizes.append(inp[0].shape[0])
    )
    try:
        fn()
    finally:
        handle.remove()
    return sizes


def test_rows_per_pass_follows_the_element_budget():
    assert rows_per_pass(torch.zeros(2, 3, 224, 224), 1000) == 6
    assert rows_per_pass(torch.zeros(2, 3, 32, 32), 1000) == 341
    assert rows_per_pass(torch.zeros(2, 3, 32, 32), 1000, most=64) == 64
    assert rows_per_pass(torch.zeros(2, 3, 32, 32), 10) == 10
    assert rows_per_pass(torch.zeros(1, 3, 4096, 4096), 8) == 1
    two = (torch.zeros(2, 3, 224, 224), torch.zeros(2, 3, 224, 224))
    assert rows_per_pass(two, 1000) == FORWARD_ELEMENTS // (2 * 3 * 224 * 224)


def test_metric_batch_default_and_explicit():
    assert metric_batch(None, torch.zeros(1, 3, 32, 32)) == MOST_EXAMPLES_PER_PASS
    assert metric_batch(None, torch.zeros(1, 3, 224, 224)) == 6
    assert metric_batch(7, torch.zeros(1, 3, 224, 224)) == 7
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        metric_batch(0, torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("size, most", [(32, 64), (224, 6)])
def test_deletion_batches_by_image_size(size, most):
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(3, 3, size, size)
    a = torch.randn(3, 3, size, size)
    sizes = _batches(model, lambda: deletion(model, x, a, n_steps=8))
    # 3 images x 8 perturbed steps (the start is the clean forward), chunked
    assert max(sizes) == min(most, 3 * 8)
    explicit = _batches(
        model, lambda: deletion(model, x, a, n_steps=8, max_examples_per_batch=5)
    )
    assert max(explicit) == 5


def test_scores_do_not_depend_on_the_automatic_batch():
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(3, 3, 224, 224)
    a = torch.randn(3, 3, 224, 224)
    auto = deletion(model, x, a, n_steps=4).scores
    one = deletion(model, x, a, n_steps=4, max_examples_per_batch=15).scores
    torch.testing.assert_close(auto, one, rtol=1e-5, atol=1e-6)
    sens_auto = sensitivity_n(
        model, x, a, n=(64,), n_subsets=4, generator=torch.Generator().manual_seed(1)
    ).correlations
    sens_big = sensitivity_n(
        model,
        x,
        a,
        n=(64,),
        n_subsets=4,
        generator=torch.Generator().manual_seed(1),
        max_examples_per_batch=12,
    ).correlations
    torch.testing.assert_close(sens_auto, sens_big, rtol=1e-5, atol=1e-6)
    sizes = _batches(
        model,
        lambda: infidelity(
            model, x, a, n_perturb_samples=4, generator=torch.Generator().manual_seed(2)
        ),
    )
    assert max(sizes) <= max(6, 3)  # Captum's floor: every image once per call
