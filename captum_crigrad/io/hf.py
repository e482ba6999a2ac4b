"""Hugging Face transformers image classifiers from a local folder
(:func:`load_hf_model`, ``--model hf:PATH``).

The folder is what ``save_pretrained`` writes: ``config.json``, the weights
and optionally the image processor's ``preprocessor_config.json``. It is
read with ``local_files_only=True``: nothing is ever downloaded.
transformers is imported only when a model is loaded.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from captum_crigrad.core.validation import InvalidValueError

if TYPE_CHECKING:  # the floor below zoo would import it back
    from captum_crigrad.io.zoo import LoadedModel

__all__ = ["HF_PREFIX", "load_hf_model", "hf_preprocessing"]

#: The ``--model`` prefix of a transformers folder: ``hf:PATH``.
HF_PREFIX = "hf:"

_IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
_IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
_GENERIC_LABEL = re.compile(r"LABEL_\d+")


def _arg(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def _read_json(path: str, m_arg: str, spec: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise InvalidValueError(
            f"{m_arg}: {spec}: cannot read {os.path.basename(path)} "
            f"({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidValueError(
            f"{m_arg}: {spec}: {os.path.basename(path)} is not a JSON object"
        )
    return data


def _side(value: Any) -> int | None:
    """A square side from a processor's ``size``/``crop_size`` (an int,
    ``{"height", "width"}`` or ``{"shortest_edge"}``), None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        if "height" in value and "width" in value:
            h, w = value["height"], value["width"]
            if isinstance(h, int) and isinstance(w, int):
                if h != w:
                    warnings.warn(
                        f"the image processor's size is {h}x{w}; images are "
                        f"read square, {min(h, w)} a side (set --input-size)",
                        stacklevel=3,
                    )
                return min(h, w)
        edge = value.get("shortest_edge")
        if isinstance(edge, int) and not isinstance(edge, bool):
            return edge
    return None


def _stats(value: Any, channels: int) -> tuple[float, ...] | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * channels
    if isinstance(value, Sequence) and not isinstance(value, str):
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            return None
    return None


def hf_preprocessing(
    processor: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    *,
    source: str = "the model",
) -> tuple[int, int, tuple[float, ...], tuple[float, ...]]:
    """``(channels, size, mean, std)`` of a transformers image classifier:
    from its ``preprocessor_config.json`` (``processor``; ``crop_size``
    before ``size``, ``image_mean``/``image_std``, none if ``do_normalize``
    is false) when given, else its ``config.json``'s ``image_size`` (224 if
    absent) and ImageNet's statistics, with a one-line warning. Channels:
    the config's ``num_channels`` (3 if absent)."""
    raw_channels = config.get("num_channels", 3)
    channels = raw_channels if isinstance(raw_channels, int) else 3
    config_size = _side(config.get("image_size"))
    if processor is None:
        warnings.warn(
            f"{source} has no preprocessor_config.json: using its image_size "
            f"({config_size or 224}) and ImageNet mean/std",
            stacklevel=2,
        )
        size = config_size or 224
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
    else:
        size = (
            (
                _side(processor.get("crop_size"))
                if processor.get("do_center_crop", True)
                else None
            )
            or _side(processor.get("size"))
            or config_size
            or 224
        )
        if processor.get("do_normalize", True) is False:
            mean, std = (0.0,), (1.0,)
        else:
            mean = _stats(processor.get("image_mean"), channels) or _IMAGENET_MEAN
            std = _stats(processor.get("image_std"), channels) or _IMAGENET_STD
    if channels == 1 and len(mean) == 3 and mean == _IMAGENET_MEAN:
        mean, std = (0.449,), (0.226,)  # grey version of ImageNet's
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    return channels, size, tuple(mean), tuple(std)


def _class_names(config: Any) -> list[str] | None:
    id2label = getattr(config, "id2label", None) or {}
    try:
        labels = [str(id2label[i]) for i in range(len(id2label))]
    except (KeyError, TypeError):
        return None
    if not labels or all(_GENERIC_LABEL.fullmatch(label) for label in labels):
        return None
    return labels


def load_hf_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    names: Mapping[str, str] | None = None,
) -> LoadedModel:
    """The transformers image classifier saved in the folder ``path``
    (``save_pretrained``: ``config.json``, weights, optionally
    ``preprocessor_config.json``), loaded with
    ``AutoModelForImageClassification.from_pretrained(path,
    local_files_only=True)``, in eval mode on ``device``, with its
    preprocessing (:func:`hf_preprocessing`) and class names (the config's
    ``id2label`` unless they are the generic ``LABEL_0``, ...).

    A ``hf:`` prefix on ``path`` is dropped. A path that is not such a
    folder raises :class:`InvalidValueError` naming ``names["model"]``.
    """
    from captum_crigrad.io.zoo import LoadedModel

    m_arg = _arg(names, "model")
    text = os.fspath(path)
    if text.startswith(HF_PREFIX):
        text = text[len(HF_PREFIX) :]
    spec = f"{HF_PREFIX}{text}"
    expected = (
        f"expected {HF_PREFIX}PATH with PATH a folder written by save_pretrained "
        "(config.json and the weights)"
    )
    if not text or not os.path.isdir(text):
        raise InvalidValueError(f"{m_arg}: {spec}: no such folder; {expected}")
    config_file = os.path.join(text, "config.json")
    if not os.path.isfile(config_file):
        raise InvalidValueError(f"{m_arg}: {spec}: no config.json; {expected}")
    config_json = _read_json(config_file, m_arg, spec)
    proc_file = os.path.join(text, "preprocessor_config.json")
    processor = (
        _read_json(proc_file, m_arg, spec) if os.path.isfile(proc_file) else None
    )
    try:
        import transformers
    except ImportError:
        raise InvalidValueError(
            f"{m_arg}: {spec} needs the transformers library: pip install transformers"
        ) from None
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar on stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = transformers.AutoModelForImageClassification.from_pretrained(
                text, local_files_only=True
            )
    except Exception as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InvalidValueError(
            f"{m_arg}: {spec}: not a transformers image classifier ({line}); {expected}"
        ) from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    channels, size, mean, std = hf_preprocessing(processor, config_json, source=spec)
    return LoadedModel(
        net.to(device).eval(),
        f"transformers {type(net).__name__} ({text})",
        channels,
        size,
        mean,
        std,
        _class_names(net.config),
    )
