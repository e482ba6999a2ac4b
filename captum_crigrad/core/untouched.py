"""Running a caller's model without changing it.

A forward pass of a module in training mode changes the model: BatchNorm
updates its running statistics and ``num_batches_tracked``, other layers
their own buffers. Functions that promise to leave the model untouched
(parameters, buffers, train/eval mode of every module, hooks) run it through
:func:`private_if_training`: a model with no module in training mode is used
as it is (its forward passes change nothing), any other is deep-copied once
per call, so the caller's model is never written, not even for a moment
(another thread may be training it). The copy keeps every module's mode, so
results are those the model gives in its own mode.

:func:`eval_mode` is for code that wants inference behaviour (dropout off,
BatchNorm on its running statistics): every module in eval mode inside the
block, each module's own flag restored after it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
import torch.nn as nn


def in_training_mode(model: nn.Module) -> bool:
    """True when any module of ``model`` is in training mode."""
    return any(m.training for m in model.modules())


@contextlib.contextmanager
def private_if_training(model: nn.Module) -> Iterator[nn.Module]:
    """Yield a model whose forward passes cannot change ``model``.

    ``model`` itself when every module is in eval mode; otherwise a deep copy
    (same modes, same device). A model that cannot be deep-copied is used as
    it is and every buffer is put back (in place) on exit, exceptions
    included.
    """
    if not in_training_mode(model):
        yield model
        return
    try:
        private = copy.deepcopy(model)
    except Exception:  # e.g. a module holding a lock or an open file
        private = None
    if private is not None:
        yield private
        return
    saved = [
        (module, name, buf, buf.detach().clone())
        for module in model.modules()
        for name, buf in module._buffers.items()
        if buf is not None
    ]
    try:
        yield model
    finally:
        with torch.no_grad():
            for module, name, original, values in saved:
                if module._buffers.get(name) is not original:
                    module._buffers[name] = original
                original.copy_(values)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` in eval mode inside the block; each module's
    own train/eval flag restored on exit (``model.train(was_training)`` would
    reset a submodule kept in training mode on purpose, such as MC dropout)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
