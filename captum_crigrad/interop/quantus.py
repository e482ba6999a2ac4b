"""Our methods as Quantus's ``explain_func``.

Quantus (``pip install quantus``) scores explanations that an
``explain_func`` computes on its numpy batches::

    import quantus
    from captum_crigrad.interop.quantus import explain_func

    metric = quantus.FaithfulnessCorrelation(nr_runs=20, subset_size=64)
    scores = metric(
        model=model, x_batch=x, y_batch=y,
        explain_func=explain_func,
        explain_func_kwargs={"method": "crigrad-saliency", "keep": 0.3},
    )

Quantus calls ``explain_func(model=..., inputs=np.ndarray, targets=np.ndarray,
**explain_func_kwargs)`` (channel-first inputs) and wants a numpy array of
attributions shaped like the inputs or with one channel. :func:`explain_func`
accepts every name of the one registry (:mod:`captum_crigrad.methods`:
modifiers and ``@`` options included) and every field of
:class:`~captum_crigrad.methods.ExplainOptions` as a keyword, and computes the
maps with :func:`captum_crigrad.methods.explain.explain`, so a map is the one every
other entry point gives for that name. Nothing here imports Quantus.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.maps import CHANNEL_REDUCTIONS, reduce_channels
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_bool,
    check_module,
    check_positive_int,
)
from captum_crigrad.methods import ExplainOptions, parse_method
from captum_crigrad.methods.explain import explain
from captum_crigrad.methods.registry import _valid_names

__all__ = ["CHANNEL_REDUCTION_CHOICES", "explain_func"]

#: ``channel_reduction`` values: ``"auto"`` reduces a multi-channel map as
#: the registry reads the method (signed sum or magnitude), ``"none"`` keeps
#: what the method returns.
CHANNEL_REDUCTION_CHOICES = ("auto", "none", *CHANNEL_REDUCTIONS)

_OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(ExplainOptions))


def explain_func(
    model: nn.Module,
    inputs: np.ndarray | Tensor,
    targets: np.ndarray | Tensor | int | None,
    *,
    method: str | None = None,
    channel_reduction: str = "auto",
    channel_first: bool = True,
    batch_size: int = 16,
    device: Any = None,
    **options: Any,
) -> np.ndarray:
    """Attributions of a registered method, in Quantus's ``explain_func`` form.

    Args:
        model: the classifier (Quantus passes the ``nn.Module``); it runs on
            its own device (the device of its first parameter or buffer),
            in eval mode for the call, and is left unchanged (no hook,
            parameter, buffer or train/eval flag changes).
        inputs: ``(N, C, H, W)`` images (``(N, H, W, C)`` with
            ``channel_first=False``), numpy or torch; converted to float32.
        targets: ``(N,)`` class indices or one int; None: the predicted
            classes.
        method: a method name of :mod:`captum_crigrad.methods`, e.g.
            ``"crigrad-saliency"``, ``"gradcam"``, ``"forgrad-ig@sigma=7"``.
        channel_reduction: ``"auto"`` (default): a map with several channels
            is reduced to ``(N, 1, H, W)`` as the registry reads the method
            (signed channel sum for signed methods, ``sum_c |a_c|``
            otherwise; the metrics of this package read maps the same way);
            ``"none"``: the method's own output ((N, C, H, W) for gradient
            methods); ``"sum"``, ``"abs"``, ``"max"``: that reduction.
        channel_first: False for channels-last inputs; the result is then
            channels-last too.
        batch_size: images per forward/backward pass.
        device: accepted because Quantus passes its ``device`` argument here;
            not used: the model's device decides.
        **options: fields of :class:`~captum_crigrad.methods.ExplainOptions`
            (``layer``, ``keep``, ``n_steps``, ``seed``, ...).

    Returns:
        float32 numpy array ``(N, 1, H, W)`` (or ``(N, C, H, W)``), on the CPU.
    """
    del device  # the model's own device is used (see Args)
    check_module(model, "model")
    if method is None:
        raise InvalidValueError(
            "method: no method given; pass explain_func_kwargs={'method': NAME} "
            f"to Quantus; valid names: {_valid_names()}"
        )
    request = parse_method(method)  # the registry's own error for a bad name
    unknown = sorted(set(options) - set(_OPTION_FIELDS))
    if unknown:
        raise InvalidValueError(
            f"explain_func: unknown option(s) {', '.join(map(repr, unknown))}; "
            "expected method, channel_reduction, channel_first, batch_size, "
            f"device or a field of ExplainOptions: {', '.join(_OPTION_FIELDS)}"
        )
    opts = ExplainOptions(**options)
    opts.validate()
    if channel_reduction not in CHANNEL_REDUCTION_CHOICES:
        raise InvalidValueError(
            f"channel_reduction: expected one of {CHANNEL_REDUCTION_CHOICES}, got "
            f"{channel_reduction!r}"
        )
    check_bool(channel_first, "channel_first")
    check_positive_int(batch_size, "batch_size")
    images = _as_images(inputs, channel_first)
    target = _as_targets(targets)
    if isinstance(target, int):  # one class for every image
        target = torch.full((images.shape[0],), target, dtype=torch.long)

    maps = explain(model, images, [method], target, opts, batch_size=batch_size)
    out = next(iter(maps.values()))
    if channel_reduction == "auto":
        if out.shape[1] > 1:
            out = reduce_channels(out, request.channel_reduction)
    elif channel_reduction != "none":
        out = reduce_channels(out, channel_reduction)
    if not channel_first:
        out = out.permute(0, 2, 3, 1)
    return out.detach().to(torch.float32).cpu().contiguous().numpy()


def _as_images(inputs: Any, channel_first: bool) -> Tensor:
    if isinstance(inputs, np.ndarray):
        if not np.issubdtype(inputs.dtype, np.number) or np.iscomplexobj(inputs):
            raise InvalidTypeError(
                f"inputs: expected a real-valued array, got dtype {inputs.dtype}"
            )
        images = torch.from_numpy(np.array(inputs, dtype=np.float32, copy=True))
    elif isinstance(inputs, Tensor):
        if inputs.is_complex() or inputs.dtype == torch.bool:
            raise InvalidTypeError(
                f"inputs: expected a real-valued tensor, got {inputs.dtype}"
            )
        images = inputs.detach().to(torch.float32)
    else:
        raise InvalidTypeError(
            "inputs: expected a numpy array or a torch.Tensor (N, C, H, W), got "
            f"{type(inputs).__name__}"
        )
    if images.dim() != 4:
        layout = "(N, C, H, W)" if channel_first else "(N, H, W, C)"
        raise InvalidValueError(
            f"inputs: expected a 4-D batch {layout}, got shape {tuple(images.shape)}"
        )
    if not channel_first:
        images = images.permute(0, 3, 1, 2)
    return images.contiguous()


def _as_targets(targets: Any) -> Tensor | int | None:
    """Quantus's targets as explain's: a tensor of class indices, an int or
    None (the form and range are checked by explain)."""
    if targets is None or isinstance(targets, (int, np.integer)):
        return None if targets is None else int(targets)
    if isinstance(targets, np.ndarray):
        if not np.issubdtype(targets.dtype, np.integer):
            raise InvalidTypeError(
                f"targets: expected integer class indices, got dtype {targets.dtype}"
            )
        return torch.from_numpy(targets.astype(np.int64).reshape(-1))
    if isinstance(targets, Tensor):
        return targets.detach().reshape(-1)
    if isinstance(targets, (list, tuple)):
        return torch.as_tensor(targets).reshape(-1)
    raise InvalidTypeError(
        "targets: expected class indices (a numpy array, tensor, list or int), "
        f"got {type(targets).__name__}"
    )
