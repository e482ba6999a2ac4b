"""Checkpoint files, read with ``weights_only=True`` (a file that needs pickled
code is refused, never executed), state dicts matched to architectures, and
torchvision weights found in the local torch hub cache only.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from typing import Union

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidValueError,
)

PathLike = Union[str, "os.PathLike[str]"]


_LOCAL_ARCHITECTURES = ("smallcnn", "resnet20")


def _arg(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_checkpoint(path: PathLike, *, argument: str = "weights") -> dict:
    """The state dict in the checkpoint file ``path``, read with
    ``weights_only=True``; ``state_dict``/``model``/``model_state_dict``
    wrappers and ``module.`` prefixes (DataParallel) removed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidValueError(f"{argument}: no such file: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol before refusing a file:
            # the one-line error below says all there is to say
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, not a checkpoint, or needs pickled code
        text = str(exc).lower()
        if "unsupported global" in text or "can still be loaded" in text:
            raise InvalidValueError(
                f"{argument}: {path} needs pickled Python code to load (e.g. a "
                "whole saved nn.Module); for safety only plain state dicts are "
                "read: save model.state_dict() or a TorchScript file instead"
            ) from None
        reason = "" if "weights only load failed" in text else f": {_first_line(exc)}"
        raise InvalidValueError(
            f"{argument}: cannot read {path}: corrupt or not a PyTorch "
            f"checkpoint{reason}"
        ) from None
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(
        isinstance(v, Tensor) for v in ckpt.values()
    ):
        raise InvalidValueError(
            f"{argument}: {path} does not hold a state dict of tensors"
        )
    nan = [k for k, v in ckpt.items() if v.is_floating_point() and v.isnan().any()]
    if nan:
        raise InvalidValueError(
            f"{argument}: {path} holds NaN values ({len(nan)} tensor(s), e.g. "
            f"{nan[0]}); a model with them gives no meaningful explanation"
        )
    return {re.sub(r"^module\.", "", k): v for k, v in ckpt.items()}


def load_state(
    model: nn.Module,
    state: dict,
    *,
    what: str,
    source: str,
    argument: str = "weights",
) -> None:
    """``model.load_state_dict(state)``; when ``state`` is for another
    model, one line naming the missing/unexpected keys or mismatched shapes
    (``what``: the architecture's name, ``source``: where ``state`` came from)."""
    try:
        model.load_state_dict(state)
    except RuntimeError:
        expected, given = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        if missing or unexpected:
            detail = (
                f"{len(missing)} missing key(s) (e.g. "
                f"{', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected "
                f"(e.g. {', '.join(unexpected[:3]) or '-'})"
            )
        else:
            bad = [k for k in expected if model.state_dict()[k].shape != state[k].shape]
            detail = f"shape mismatch in {', '.join(bad[:3])}"
        raise InvalidValueError(
            f"{argument}: {source} is not a checkpoint for {what}: {detail}"
        ) from None


def torchvision_model_names() -> list[str]:
    """The classification models torchvision can build."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def cached_torchvision_weights(arch: str, name: str, *, argument: str = "weights"):
    """``(weights enum, state dict)`` of torchvision's weights ``name`` for
    ``arch``, read from the torch hub cache; never downloaded."""
    import torchvision

    try:
        if "." in name:
            weights = torchvision.models.get_weight(name)
        else:
            weights = torchvision.models.get_model_weights(arch)[name]
    except (KeyError, ValueError, AttributeError):
        try:
            known = ", ".join(
                w.name for w in torchvision.models.get_model_weights(arch)
            )
        except (KeyError, ValueError):
            known = "(none)"
        raise InvalidValueError(
            f"{argument}: {name!r} is neither a file nor a torchvision weights name "
            f"of {arch}; known names: DEFAULT, {known}"
        ) from None
    cache = os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url)
    )
    if not os.path.isfile(cache):
        raise InvalidValueError(
            f"{argument}: {weights} must be downloaded from {weights.url}, and "
            "captum-crigrad never downloads anything. On a machine with internet "
            f'run `python -c "import torchvision; torchvision.models.{arch}('
            f"weights='{weights.name}')\"`, then copy the file to {cache}, or pass "
            f"{argument} /path/to/{os.path.basename(weights.url)}"
        )
    return weights, read_checkpoint(cache, argument=argument)


def _infer_num_classes(state: dict) -> int | None:
    matrices = [v for v in state.values() if v.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else None
