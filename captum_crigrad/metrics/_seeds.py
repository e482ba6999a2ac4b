"""Random draws of the seeded metrics, made per image.

A metric call takes one seed from the caller's ``torch.Generator`` (or from
torch's global generator when there is none): :func:`call_seed`. Every
random draw for an image then comes from its own generator, seeded by that
seed, the image's content (its bytes, dtype and shape: :func:`image_keys`)
and the draw's role (the step, the subset size, the sample number):
:func:`draw_generator`. So an image's value depends on the seed, the image
and its map only: not on its position in the batch, on the other images in
it, or on ``max_examples_per_batch`` and other chunk sizes. Different
images get independent draws, equal images equal ones.

Draws are made on the CPU (then moved), so they are the same on every
device.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

_MASK63 = (1 << 63) - 1


def call_seed(generator: torch.Generator | None) -> int:
    """One seed for a metric call, drawn from ``generator`` (torch's global
    generator when None): calls with one generator differ from each other,
    and re-seeding it repeats them."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator: expected a torch.Generator or None, got "
            f"{type(generator).__name__}"
        )
    device = generator.device if generator is not None else torch.device("cpu")
    return int(
        torch.randint(0, _MASK63, (1,), generator=generator, device=device).item()
    )


def image_keys(images: Tensor) -> list[bytes]:
    """A digest of each image of an (N, ...) tensor: its bytes, dtype and shape."""
    flat = images.detach().cpu().contiguous()
    keys = []
    for image in flat:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{image.dtype}{tuple(image.shape)}".encode())
        h.update(image.reshape(-1).view(torch.uint8).numpy().tobytes())
        keys.append(h.digest())
    return keys


def draw_generator(seed: int, key: bytes, *role: object) -> torch.Generator:
    """A CPU generator for one draw of one image: seeded from the call's
    ``seed``, the image's ``key`` and the draw's ``role`` (e.g. ``("road",
    step)``)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(int(seed)).encode())
    h.update(key)
    h.update(repr(role).encode())
    return torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & _MASK63)


class CaptumRowSeeds:
    """Per-image generators for the rows Captum's ``infidelity`` and
    ``sensitivity_max`` pass to a perturbation function: each call holds the
    N images repeated ``k`` times each (``repeat_interleave``), for the next
    ``k`` perturbation samples, and the calls come in order. Row ``i * k + j``
    of a call is sample ``done + j`` of image ``i``."""

    def __init__(self, seed: int, keys: list[bytes], role: str) -> None:
        self.seed, self.keys, self.role = seed, keys, role
        self.done = 0

    def generators(self, rows: int) -> list[torch.Generator]:
        n = len(self.keys)
        if rows % n:
            raise RuntimeError(
                f"perturbation: Captum passed {rows} rows for {n} images; expected "
                "whole repetitions of the batch"
            )
        k = rows // n
        gens = [
            draw_generator(self.seed, key, self.role, self.done + j)
            for key in self.keys
            for j in range(k)
        ]
        self.done += k
        return gens
