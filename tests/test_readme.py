"""The README's Python examples run as written.

Each ```python block of README.md is executed on its own, in a namespace that
holds only what the README leaves to the reader: their model and data
(``model``, ``images``/``labels``, ``x``/``y``, an attribution ``attr``, a
``torch.Generator`` ``g``, an image ``img`` in [0, 1]), here the embedded
default. Everything else a block uses it must import itself. The block that
picks ``model.layer4`` gets a (randomly initialised) torchvision ResNet-18.
Methods a block registers are unregistered after it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from captum.attr import Saliency

from captum_crigrad import methods
from captum_crigrad.io import default

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    """Each block's code, preceded by blank lines so that tracebacks give
    README.md's own line numbers."""
    text = README.read_text()
    return [
        "\n" * text.count("\n", 0, m.start(1)) + m.group(1)
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


BLOCKS = _python_blocks()


def _embedded_default() -> dict[str, object]:
    model = default.load_default_model()
    images, labels = default.load_default_images()
    x, y = images[:2], labels[:2]
    return dict(
        model=model,
        images=images,
        labels=labels,
        x=x,
        y=y,
        attr=Saliency(model).attribute(x, target=y),
        g=torch.Generator().manual_seed(0),
        img=default.denormalize_mnist(x[:1])[0],
    )


def _resnet() -> dict[str, object]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    gen = torch.Generator().manual_seed(0)
    return dict(
        model=model,
        x=torch.randn(2, 3, 32, 32, generator=gen),
        y=torch.tensor([1, 7]),
        train_batch=torch.randn(4, 3, 32, 32, generator=gen),
    )


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize(
    "block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))]
)
def test_readme_python_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may save figures
    namespace = _resnet() if "model.layer4" in block else _embedded_default()
    before = set(methods.available_methods())
    try:
        exec(compile(block, str(README), "exec"), namespace)
    finally:  # a block that registers a method must not leak it into other tests
        for name in set(methods.available_methods()) - before:
            methods.unregister_method(name)
