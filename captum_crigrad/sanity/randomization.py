"""Model-parameter randomisation for the sanity checks of Adebayo et al. (2018).

"Sanity Checks for Saliency Maps" (NeurIPS 2018) re-initialises a trained
network's weights and asks whether an explanation changes: a map that stays
the same when the weights it should explain are random does not explain the
model. Two schedules, both from the output downwards ("top" = next to the
logits):

* **cascading**: step ``i`` re-initialises blocks ``0..i`` together
  (cumulative, top first);
* **independent**: step ``i`` re-initialises block ``i`` only, every other
  block keeps its trained weights.

A *block* is a named submodule. ``granularity="module"`` takes every module
that owns learnable parameters (a conv, a linear, a BatchNorm);
``granularity="block"`` takes the children of the model with parameters,
opening ``nn.Sequential``/``nn.ModuleList`` containers (so a torchvision or
CIFAR ResNet gives its stem, each residual block and the classifier). Or name
the blocks yourself.

Re-initialisation (``init``): ``"reset"`` calls each module's own
``reset_parameters()`` (PyTorch's default initialisation, what the paper
did); the parameters of a module without one (a transformer's class token
and position embeddings, a layer scale) are drawn from N(0,
:data:`RESET_FALLBACK_STD`^2), the initialisation timm and transformers give
such parameters; ``"normal"`` draws every learnable parameter from N(0, ``std``^2) with
``std = 0.01`` (MATLAB's ``randomizeModelParameters``). BatchNorm running
statistics are kept (``batchnorm_stats="keep"``, default) or reset to mean 0,
variance 1 (``"reset"``).

Everything works on a deep copy: the caller's model (parameters, buffers,
train/eval mode, hooks) and the global random state are never modified. The
random values of a block depend only on ``(seed, block name)``, so cascading
step ``i`` equals the independent randomisations of blocks ``0..i`` applied
together.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_finite_float,
    check_int,
    check_module,
    resolve_layer,
)

MODES = ("cascading", "independent")
GRANULARITIES = ("module", "block")
INITS = ("reset", "normal")
#: ``init="reset"``: the std of the parameters of modules that have no
#: ``reset_parameters()`` (timm's and transformers' trunc_normal(0.02) for
#: class tokens and position embeddings).
RESET_FALLBACK_STD = 0.02
BATCHNORM_STATS = ("keep", "reset")

_CONTAINERS = (nn.Sequential, nn.ModuleList)
_NORM_TYPES = (nn.modules.batchnorm._NormBase,)


def _has_parameters(module: nn.Module, recurse: bool = True) -> bool:
    return any(True for _ in module.parameters(recurse=recurse))


def _block_candidates(model: nn.Module, granularity: str) -> list[str]:
    """Block names in registration order (input side first)."""
    if granularity == "module":
        return [
            name
            for name, module in model.named_modules()
            if name and _has_parameters(module, recurse=False)
        ]
    names: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            full = f"{prefix}.{child_name}" if prefix else child_name
            if not _has_parameters(child):
                continue
            if isinstance(child, _CONTAINERS):
                visit(full, child)
            else:
                names.append(full)

    visit("", model)
    if not names and _has_parameters(model, recurse=False):
        raise InvalidValueError(
            "granularity: the model owns its parameters directly and has no "
            "child blocks; use granularity='module' or name the blocks"
        )
    return names


def default_blocks(model: nn.Module, granularity: str = "module") -> list[str]:
    """The blocks randomised by default, **top (output side) first**.

    Registration order reversed: for models that register their modules in
    the order they run (torchvision, most hand-written models) this is the
    paper's order, logits first. Pass ``blocks`` explicitly otherwise.
    """
    check_choice(granularity, GRANULARITIES, "granularity")
    return list(reversed(_block_candidates(model, granularity)))


def _resolve_blocks(
    model: nn.Module, blocks: Sequence[str] | None, granularity: str
) -> list[str]:
    if blocks is None:
        names = default_blocks(model, granularity)
        if not names:
            raise InvalidValueError("model: has no learnable parameters to randomise")
        return names
    if isinstance(blocks, str):
        blocks = [blocks]
    names = list(blocks)
    if not names:
        raise InvalidValueError(
            "blocks: empty list; give at least one module name, or None for "
            f"the default {granularity!r} blocks"
        )
    for name in names:
        if not isinstance(name, str):
            raise InvalidTypeError(f"blocks: expected module names (str), got {name!r}")
        module = resolve_layer(model, name, argument="blocks")
        if not _has_parameters(module):
            raise InvalidValueError(
                f"blocks: module {name!r} ({type(module).__name__}) has "
                "no learnable parameters to randomise"
            )
    if len(set(names)) != len(names):
        raise InvalidValueError(f"blocks: names repeat: {names}")
    for a in names:
        for b in names:
            if a != b and b.startswith(a + "."):
                raise InvalidValueError(
                    f"blocks: {b!r} lies inside {a!r}; blocks must not overlap"
                )
    return names


def _block_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _norm_buffers(block: nn.Module) -> dict[str, Tensor]:
    saved = {}
    for sub_name, sub in block.named_modules():
        if isinstance(sub, _NORM_TYPES):
            for buf_name, buf in sub.named_buffers(recurse=False):
                if buf is not None:
                    saved[f"{sub_name}/{buf_name}"] = buf.detach().clone()
    return saved


def _restore_norm_buffers(block: nn.Module, saved: dict[str, Tensor]) -> None:
    modules = dict(block.named_modules())
    with torch.no_grad():
        for key, value in saved.items():
            sub_name, buf_name = key.split("/")
            getattr(modules[sub_name], buf_name).copy_(value)


@torch.no_grad()
def _randomize_block(
    block: nn.Module, seed: int, init: str, std: float, batchnorm_stats: str
) -> None:
    """Re-initialise ``block`` in place, deterministically from ``seed``."""
    saved = _norm_buffers(block) if batchnorm_stats == "keep" else {}
    if init == "normal":
        gen = torch.Generator().manual_seed(seed)
        for param in block.parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float64)
            param.copy_((std * noise).to(param.dtype))
    else:
        devices = sorted({p.device.index or 0 for p in block.parameters() if p.is_cuda})
        # reset_parameters() draws from the global generator: run it on a
        # forked, seeded copy of the global state so the caller's is untouched.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for sub in block.modules():
                if not _has_parameters(sub, recurse=False):
                    continue
                reset = getattr(sub, "reset_parameters", None)
                if callable(reset):
                    reset()
                else:  # e.g. a ViT's class token and position embeddings
                    for param in sub.parameters(recurse=False):
                        param.normal_(0.0, RESET_FALLBACK_STD)
    if batchnorm_stats == "keep":
        _restore_norm_buffers(block, saved)
    else:
        for sub in block.modules():
            if isinstance(sub, _NORM_TYPES) and sub.track_running_stats:
                sub.reset_running_stats()


def _check_options(mode, init, std, batchnorm_stats, seed) -> None:
    check_choice(mode, MODES, "mode")
    check_choice(init, INITS, "init")
    check_finite_float(std, "std", minimum=0, strict=True)
    check_choice(batchnorm_stats, BATCHNORM_STATS, "batchnorm_stats")
    check_int(seed, "seed")


def _check_model(model) -> None:
    check_module(model, "model")


def randomize_model_parameters(
    model: nn.Module,
    blocks: Sequence[str],
    *,
    init: str = "reset",
    std: float = 0.01,
    seed: int = 0,
    batchnorm_stats: str = "keep",
) -> nn.Module:
    """A copy of ``model`` with the named blocks re-initialised (MATLAB's
    ``randomizeModelParameters``, with a seed and without touching the
    caller's model).

    Args:
        model: any ``nn.Module``; not modified.
        blocks: submodule names (``model.named_modules()`` paths) to
            re-initialise, all their parameters included.
        init: ``"reset"`` (each module's ``reset_parameters``) or ``"normal"``
            (N(0, std^2)).
        std: standard deviation for ``init="normal"``; default 0.01.
        seed: block ``b`` is re-initialised from a generator seeded by
            ``(seed, b)``.
        batchnorm_stats: ``"keep"`` the trained running statistics (default)
            or ``"reset"`` them.

    Returns:
        A deep copy of ``model`` (same train/eval mode) with ``blocks``
        randomised.
    """
    _check_model(model)
    _check_options("independent", init, std, batchnorm_stats, seed)
    names = _resolve_blocks(model, blocks, "module")
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    for name in names:
        _randomize_block(
            modules[name], _block_seed(seed, name), init, std, batchnorm_stats
        )
    return randomized


def randomized_models(
    model: nn.Module,
    mode: str = "cascading",
    blocks: Sequence[str] | None = None,
    *,
    granularity: str = "module",
    init: str = "reset",
    std: float = 0.01,
    seed: int = 0,
    batchnorm_stats: str = "keep",
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(step_name, randomised_model)`` for each step of a schedule.

    Args:
        model: the trained ``nn.Module``; never modified.
        mode: ``"cascading"`` (step ``i`` = blocks ``0..i`` randomised) or
            ``"independent"`` (step ``i`` = block ``i`` only).
        blocks: block names **top (output side) first**; default
            :func:`default_blocks` ``(model, granularity)``.
        granularity: ``"module"`` (every module owning parameters) or
            ``"block"`` (children, Sequential containers opened); used only
            when ``blocks`` is None.
        init, std, seed, batchnorm_stats: as :func:`randomize_model_parameters`.

    Yields:
        ``step_name`` is the block randomised at that step; the model is one
        working deep copy, updated in place between steps, so only one extra
        copy of the model exists at any time. Copy it (``copy.deepcopy``) if
        you keep it past the next step.

    All arguments are checked when this function is called, before anything
    is copied.
    """
    _check_model(model)
    _check_options(mode, init, std, batchnorm_stats, seed)
    check_choice(granularity, GRANULARITIES, "granularity")
    names = _resolve_blocks(model, blocks, granularity)
    return _schedule(model, mode, names, init, std, seed, batchnorm_stats)


def _schedule(model, mode, names, init, std, seed, batchnorm_stats):
    working = copy.deepcopy(model)
    modules = dict(working.named_modules())
    for name in names:
        block = modules[name]
        trained = (
            {k: v.detach().clone() for k, v in block.state_dict().items()}
            if mode == "independent"
            else None
        )
        _randomize_block(block, _block_seed(seed, name), init, std, batchnorm_stats)
        yield name, working
        if trained is not None:
            with torch.no_grad():
                block.load_state_dict(trained)
