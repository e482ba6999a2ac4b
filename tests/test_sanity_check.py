import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.io import load_mnist
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.methods import register_method, unregister_method
from captum_crigrad.sanity.check import plot_sanity_curves, sanity_check
from captum_crigrad.sanity.randomization import default_blocks

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def mnist_cnn():
    """SmallCNN (nn.ReLU modules) trained for a few seconds on 1000 MNIST
    test digits; 16 held-out digits to explain."""
    from conftest import ASSETS

    folder = ASSETS / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found in {folder}")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = load_mnist(folder)
        x = (x - MNIST_MEAN) / MNIST_STD
        torch.manual_seed(0)
        model = SmallCNN(width=8)
        train_classifier(model, x[:1000], y[:1000], epochs=4, lr=5e-3, seed=0)
        model.zero_grad(set_to_none=True)
        acc = accuracy(model, x[9000:9500], y[9000:9500])
    finally:
        torch.set_num_threads(old)
    return model, x[9000:9016], acc


@pytest.mark.slow
def test_guided_backprop_fails_where_gradient_passes(mnist_cnn):
    """Adebayo et al. (2018): under cascading randomisation Guided Backprop's
    maps stay much more similar to the trained model's than plain gradients."""
    model, images, acc = mnist_cnn
    assert acc > 0.6  # the network really learned something
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = sanity_check(
        model, images, ["GradientExplanation", "GuidedBackprop"], "cascading", seed=0
    )
    assert result.steps == default_blocks(model)
    for measure in result.measures:
        grad = result.mean("GradientExplanation", measure)
        guided = result.mean("GuidedBackprop", measure)
        assert guided.mean() > grad.mean() + 0.15, measure
        # fully randomised network: Guided Backprop still resembles the
        # trained map, the gradient does not
        assert guided[-1] > grad[-1] + 0.1, measure
        assert grad[-1] < 0.35, measure
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_table_and_plot(mnist_cnn, tmp_path):
    model, images, _ = mnist_cnn
    result = sanity_check(
        model,
        images[:6],
        ["GradientExplanation", "GradCAM"],
        "independent",
        measures=["spearman_abs", "ssim"],
        seed=1,
    )
    assert result.steps == default_blocks(model)
    rows = result.rows()
    assert len(rows) == 2 * len(result.steps) * 2
    row = rows[0]
    values = result.scores[(row["method"], row["measure"])][0]
    assert row["mean"] == pytest.approx(values.mean()) and row["std"] == pytest.approx(
        values.std()
    )
    table = result.to_markdown()
    assert "| ssim (independent), step | GradientExplanation | GradCAM |" in table
    assert all(step in table for step in result.steps)
    fig = plot_sanity_curves(result, title="SmallCNN, independent")
    assert len(fig.axes) == 2
    # first point is the trained model at similarity 1, then the steps
    xs, ys = fig.axes[0].lines[0].get_data()
    assert len(xs) == len(result.steps) + 1 and ys[0] == 1.0
    np.testing.assert_allclose(
        ys[1:], result.mean("GradientExplanation", "spearman_abs")
    )
    path = tmp_path / "curves.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="measures: 'hog_pearson' not in the result"):
        plot_sanity_curves(result, measures=["hog_pearson"])


def test_weight_independent_method_stays_at_one():
    """A 'method' that ignores the weights (the image itself) is identical at
    every step: the check must report similarity 1, i.e. a failure."""

    def image_itself(ctx):
        return lambda x, t: x.detach().clone()

    register_method("ImageItselfTest", "the image itself", image_itself)
    try:
        torch.manual_seed(0)
        model = SmallCNN(width=4).eval()
        images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        result = sanity_check(model, images, ["ImageItselfTest", "GradientExplanation"])
    finally:
        unregister_method("ImageItselfTest")
    for measure in result.measures:
        np.testing.assert_allclose(
            result.scores[("ImageItselfTest", measure)], 1.0, atol=1e-9
        )
        assert result.mean("GradientExplanation", measure)[-1] < 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(blocks=["features.42"]), "no submodule 'features.42'"),
        (dict(blocks=[]), "blocks: empty list"),
        (dict(methods=["Occlusion"]), "valid names"),
        (dict(measures=["psnr"]), "measures"),
        (dict(mode="backwards"), "mode"),
    ],
)
def test_bad_input_before_work(kwargs, match):
    model = SmallCNN(width=4).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        sanity_check(model, torch.rand(2, 1, 28, 28), **kwargs)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
