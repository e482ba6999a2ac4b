"""Random draws made per image (the seeded metrics, the random control map,
SmoothGrad and Expected Grad-CAM).

Every random draw for an image (a random pixel order, ROAD's imputation
noise, sensitivity-n's subsets, infidelity's perturbations, the random
control map of :mod:`captum_crigrad.methods`, the SmoothGrad noise of
:mod:`captum_crigrad.methods` and Expected Grad-CAM's references,
interpolation points and noise) comes from the
image's own generator, seeded by the image's *stream* and the draw's role
(the step, the subset size, the sample number): :meth:`ImageDraws.generator`.
An image's stream is

* ``seeds[i]`` when the caller gives one seed per image (``seeds=``, a (N,)
  integer tensor or sequence: e.g. derived from a run seed and the image's
  index in a data set, as a sharded evaluation does);
* otherwise one seed drawn per call from ``generator`` (torch's global
  generator when None) together with a digest of the image's content (its
  bytes, dtype and shape): different images get independent draws, equal
  images equal ones.

Either way an image's value depends on its stream, the image and its map
only: not on its position in the batch, on the other images in it, or on
``max_examples_per_batch`` and other chunk sizes. Draws are made on the CPU
(then moved), so they are the same on every device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError

_MASK63 = (1 << 63) - 1

SeedsType = Tensor | Sequence[int] | None


def call_seed(generator: torch.Generator | None) -> int:
    """One seed for a metric call, drawn from ``generator`` (torch's global
    generator when None): calls with one generator differ from each other,
    and re-seeding it repeats them."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidTypeError(
            "generator: expected a torch.Generator or None, got "
            f"{type(generator).__name__}"
        )
    device = generator.device if generator is not None else torch.device("cpu")
    return int(
        torch.randint(0, _MASK63, (1,), generator=generator, device=device).item()
    )


def image_keys(images: Tensor | tuple[Tensor, ...]) -> list[bytes]:
    """A digest of each image of an (N, ...) tensor, or of each example of a
    tuple of (N, ...) tensors (a model with several inputs): its bytes, dtype
    and shape."""
    parts = images if isinstance(images, tuple) else (images,)
    flat = [part.detach().cpu().contiguous() for part in parts]
    keys = []
    for example in zip(*flat, strict=True):
        h = hashlib.blake2b(digest_size=16)
        for image in example:
            h.update(f"{image.dtype}{tuple(image.shape)}".encode())
            h.update(image.reshape(-1).view(torch.uint8).numpy().tobytes())
        keys.append(h.digest())
    return keys


def check_seeds(seeds: SeedsType, n: int) -> list[int] | None:
    """``seeds``: None, or one integer per image ((N,) tensor or sequence)."""
    if seeds is None:
        return None
    if isinstance(seeds, Tensor):
        if seeds.is_floating_point() or seeds.is_complex() or seeds.dtype == torch.bool:
            raise InvalidTypeError(
                f"seeds: expected an integer tensor of shape ({n},), got {seeds.dtype}"
            )
        values = seeds.detach().cpu().flatten().tolist()
        shape = tuple(seeds.shape)
    elif isinstance(seeds, Sequence) and not isinstance(seeds, (str, bytes)):
        values, shape = list(seeds), (len(seeds),)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InvalidTypeError(f"seeds: expected {n} integers, got {seeds!r}")
    else:
        raise InvalidTypeError(
            f"seeds: expected None or one integer per image ({n}), got "
            f"{type(seeds).__name__}"
        )
    if shape != (n,):
        raise InvalidValueError(
            f"seeds: expected one seed per image, shape ({n},), got {shape}"
        )
    return [int(v) for v in values]


def draw_generator(seed: int, key: bytes, *role: object) -> torch.Generator:
    """A CPU generator for one draw of one image, seeded from ``seed``, the
    image's ``key`` and the draw's ``role`` (e.g. ``("road", 120)``)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(int(seed)).encode())
    h.update(key)
    h.update(repr(role).encode())
    return torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") & _MASK63)


class ImageDraws:
    """Where the random draws of each image of ``images`` (a tensor, or a
    tuple of tensors with one example per row) come from (see the module
    docstring): ``seeds`` when given, else ``generator`` and the
    images' content. ``generator`` and ``seeds`` together are refused."""

    def __init__(
        self,
        images: Tensor | tuple[Tensor, ...],
        generator: torch.Generator | None = None,
        seeds: SeedsType = None,
    ) -> None:
        first = images[0] if isinstance(images, tuple) else images
        per_image = check_seeds(seeds, first.shape[0])
        if per_image is not None:
            if generator is not None:
                raise InvalidValueError(
                    "seeds, generator: give one of them (seeds: one per image; "
                    "generator: one seed per call, mixed with each image's content)"
                )
            self.seed = 0
            self.keys = [b"seed" + repr(s).encode() for s in per_image]
        else:
            self.seed = call_seed(generator)
            self.keys = image_keys(images)

    def generator(self, index: int, *role: object) -> torch.Generator:
        """A fresh CPU generator for draw ``role`` of image ``index``."""
        return draw_generator(self.seed, self.keys[index], *role)


class CaptumRowSeeds:
    """Per-image generators for the rows Captum's ``infidelity`` and
    ``sensitivity_max`` pass to a perturbation function: each call holds the
    N images repeated ``k`` times each (``repeat_interleave``), for the next
    ``k`` perturbation samples, and the calls come in order. Row ``i * k + j``
    of a call is sample ``done + j`` of image ``i``."""

    def __init__(self, draws: ImageDraws, role: str) -> None:
        self.draws, self.role = draws, role
        self.done = 0

    def generators(self, rows: int) -> list[torch.Generator]:
        n = len(self.draws.keys)
        if rows % n:
            raise RuntimeError(
                f"perturbation: Captum passed {rows} rows for {n} images; expected "
                "whole repetitions of the batch"
            )
        k = rows // n
        gens = [
            self.draws.generator(i, self.role, self.done + j)
            for i in range(n)
            for j in range(k)
        ]
        self.done += k
        return gens
