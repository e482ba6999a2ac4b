"""A model's forward passes as the package runs them: the logits of whatever
a model returns (:func:`logits_of`, the one place that reads a model's
output), the device a model lives on, its predictions in batches, its
predicted classes and output size, and how many examples go into one pass
(:func:`rows_per_pass`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import InvalidTypeError, check_positive_int

#: Input elements per forward pass of the metrics when their
#: ``max_examples_per_batch`` is None: 2**20, i.e. 6 images of 3 x 224 x 224
#: and, with :data:`MOST_EXAMPLES_PER_PASS`, 64 of 3 x 32 x 32. Large batches
#: of large images are slower per image on a CPU (EfficientNet-Lite0 at
#: 224 px, one thread: about 2.5x per image at 64 than at 1-8; the benchmark
#: is benchmarks/bench_metrics.py), small images gain a little from them.
FORWARD_ELEMENTS = 2**20
#: The most examples one automatically sized forward pass holds.
MOST_EXAMPLES_PER_PASS = 64


def rows_per_pass(
    inputs: Tensor | tuple[Tensor, ...],
    n_rows: int,
    budget: int = FORWARD_ELEMENTS,
    *,
    most: int | None = None,
) -> int:
    """Examples (rows) per pass: as many as fit in ``budget`` input elements
    (all inputs of one example together), at least 1 and at most ``n_rows``
    (and ``most``). The one rule behind every automatic batch size."""
    inputs_tuple = inputs if isinstance(inputs, tuple) else (inputs,)
    per_row = sum(int(inp[0].numel()) for inp in inputs_tuple) if n_rows else 1
    rows = min(int(n_rows), budget // max(1, per_row))
    if most is not None:
        rows = min(rows, most)
    return max(1, rows)


def metric_batch(max_examples_per_batch: int | None, inputs: Tensor) -> int:
    """A metric's examples per forward call: ``max_examples_per_batch`` when
    given (a positive int), else :func:`rows_per_pass` of ``inputs`` (at most
    :data:`MOST_EXAMPLES_PER_PASS`)."""
    if max_examples_per_batch is None:
        return rows_per_pass(inputs, MOST_EXAMPLES_PER_PASS)
    return check_positive_int(max_examples_per_batch, "max_examples_per_batch")


def logits_of(output: Any, *, source: str = "the model") -> Tensor:
    """The logits in what a model's forward returned.

    * a tensor: itself;
    * a mapping with a ``"logits"`` entry, such as a Hugging Face
      transformers ``ModelOutput`` (``ImageClassifierOutput``, ...): that
      entry;
    * a tuple or list (a named tuple too) whose first element is a tensor:
      the first element (transformers with ``return_dict=False``, models
      returning ``(logits, aux)``).

    Anything else raises :class:`InvalidTypeError` naming what came back
    and how to wrap the model.
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        logits = output.get("logits")
        if isinstance(logits, Tensor):
            return logits
        keys = ", ".join(repr(k) for k in list(output)[:6])
        found = f"a {type(output).__name__} with keys {keys or 'none'}"
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    elif isinstance(output, (tuple, list)):
        first = type(output[0]).__name__ if output else "nothing"
        found = f"a {type(output).__name__} whose first element is {first}"
    else:
        found = f"a {type(output).__name__}"
    raise InvalidTypeError(
        f"{source}: returned {found}; expected logits: a tensor (N, classes), a "
        "transformers ModelOutput or mapping with 'logits', or a tuple/list whose "
        "first element is the logits. Wrap the model so that it returns them, "
        "e.g. nn.Module whose forward is `return model(x)[KEY]`"
    )


def model_device(
    model: nn.Module, fallback: torch.device | str = "cpu"
) -> torch.device:
    """The device of the model's first parameter or buffer, else ``fallback``."""
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device(fallback)


@torch.no_grad()
def predict(
    model: nn.Module, images: Tensor, batch_size: int = 64
) -> tuple[Tensor, Tensor]:
    """``(predicted class (N,), softmax probability of it (N,))``, computed
    in chunks of ``batch_size`` images moved to the model's device (the
    results are on that device)."""
    device = model_device(model, images.device)
    classes, probs = [], []
    for start in range(0, images.shape[0], batch_size):
        logits = logits_of(model(images[start : start + batch_size].to(device)))
        cls = logits.argmax(1)
        classes.append(cls)
        probs.append(logits.softmax(1).gather(1, cls[:, None]).squeeze(1))
    return torch.cat(classes), torch.cat(probs)


def predicted_class(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """The arg-max class of ``model`` per image, (N,) long."""
    return predict(model, images, batch_size)[0]


@torch.no_grad()
def num_classes(model: nn.Module, images: Tensor) -> int:
    """The size of the model's class dimension, from one forward pass of the
    first image."""
    return int(logits_of(model(images[:1])).shape[1])
