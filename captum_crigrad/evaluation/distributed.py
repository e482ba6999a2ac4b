"""``torch.distributed`` for runs launched by ``torchrun``.

A run launched by ``torchrun`` (or any launcher that sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) joins
the process group with the ``gloo`` backend on CPU and ``nccl`` on CUDA;
each process takes the device of its ``LOCAL_RANK``. A plain run is a group
of one and never initialises ``torch.distributed``.

The dataset is cut into fixed chunks of ``batch_size`` consecutive images
(the last one may be shorter), dealt to the ranks
(:func:`chunks_for_rank`, which deals the chunks not yet done round-robin,
from the list rank 0 read). The chunks do not depend on the number of
processes, so every image sits in the same batch with the same neighbours
whatever the world size: results are identical, and no image is evaluated
twice (no padding as in ``DistributedSampler``).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from captum_crigrad.core.validation import InvalidValueError


@dataclass(frozen=True)
class Context:
    """This process: ``rank`` of ``world`` (``local_rank`` on its machine),
    its ``device`` and whether it joined a process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise InvalidValueError(
            f"{name}: expected an integer in the environment, got {value!r}"
        ) from None


def setup(device: str | torch.device = "cpu", timeout_minutes: float = 60.0) -> Context:
    """Join the process group when launched by torchrun; pick the device.

    ``device`` is the user's choice: ``"cpu"``, or ``"cuda"`` (each process
    then uses ``cuda:LOCAL_RANK``). Under torchrun an explicit ``cuda:N``
    is refused when there is more than one process per machine (they would
    share one GPU). ``timeout_minutes`` bounds how long a rank waits for the
    others at the final barrier."""
    device = torch.device(device)
    if not launched_by_torchrun():
        return Context(device=device)
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
    local_world = (
        _env_int("LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in os.environ else 1
    )
    if device.type == "cuda":
        if device.index is not None and local_world > 1:
            raise InvalidValueError(
                f"--device: {device} under torchrun with {local_world} processes per "
                "machine would put them all on one GPU; give --device cuda (each "
                "process uses cuda:LOCAL_RANK)"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    return Context(rank, world, local_rank, device, world > 1)


def barrier(ctx: Context) -> None:
    if ctx.initialised:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def any_rank(ctx: Context, flag: bool) -> bool:
    """True when ``flag`` is True on at least one rank (all ranks must call)."""
    if not ctx.initialised:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def teardown(ctx: Context) -> None:
    if ctx.initialised and dist.is_initialized():
        dist.destroy_process_group()


def n_chunks(n_images: int, batch_size: int) -> int:
    return (n_images + batch_size - 1) // batch_size


def chunk_range(chunk: int, n_images: int, batch_size: int) -> range:
    return range(chunk * batch_size, min(n_images, (chunk + 1) * batch_size))


def chunks_for_rank(
    n: int, rank: int, world: int, skip: set[int] | frozenset = frozenset()
) -> list[int]:
    """The chunks of ``range(n)`` that rank ``rank`` of ``world`` evaluates:
    the chunks not in ``skip`` (already done), dealt round-robin."""
    if not 0 <= rank < world:
        raise InvalidValueError(
            f"rank: expected 0 <= rank < world ({world}), got {rank}"
        )
    return [c for c in range(n) if c not in skip][rank::world]


def broadcast(ctx: Context, value):
    """Rank 0's ``value`` on every rank (a picklable object)."""
    if not ctx.initialised:
        return value
    box = [value]
    dist.broadcast_object_list(
        box, src=0, device=ctx.device if ctx.device.type == "cuda" else None
    )
    return box[0]
