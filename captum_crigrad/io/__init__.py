"""Loading models, checkpoints and images, safely and offline.

Models (:func:`load_model`):

* ``"default"``: the embedded MNIST SmallCNN (:mod:`captum_crigrad.io.default`);
* an architecture name, ``smallcnn`` / ``resnet20`` (:mod:`captum_crigrad.io.models`)
  or any torchvision classification model (``resnet18``, ...), with
  ``weights`` = a checkpoint file (a state dict, or a dict holding one under
  ``state_dict``/``model``/``model_state_dict``; ``module.`` prefixes
  stripped) or a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``,
  ``ResNet18_Weights.IMAGENET1K_V1``) that must already be in the torch hub
  cache: nothing is ever downloaded;
* a TorchScript file (``torch.jit.save``);
* ``hf:PATH``: a Hugging Face transformers image classifier folder written
  by ``save_pretrained``, read offline with its image processor's
  preprocessing (:func:`captum_crigrad.io.hf.load_hf_model`).

Checkpoints are read with ``torch.load(..., weights_only=True)``
(:func:`read_checkpoint`): a file that needs pickled code to load is
refused, never executed.

Images (:func:`load_inputs`, :func:`find_images`, :func:`read_images`):
image files and folders of images, and MNIST folders (their held-out test
images, :data:`MNIST_HELDOUT_START` on); :func:`load_mnist`,
:func:`load_cifar_images`, :func:`load_cifar10_tar` (with
:func:`cifar10_split`) and :func:`load_resnet20` read the shared assets.

Every problem with what the caller asked for (a missing or corrupt file, a
checkpoint of another architecture, an unknown model, ...) raises
:class:`~captum_crigrad.core.validation.InvalidValueError` with one line naming
the argument. ``names`` (optional, on the functions that read several
arguments) maps the Python argument names to the names the caller wants in
messages; the command line passes its option names (``{"weights":
"--weights", ...}``).
"""

from __future__ import annotations

from captum_crigrad.io.checkpoints import (
    PathLike,
    cached_torchvision_weights,
    load_state,
    read_checkpoint,
    torchvision_model_names,
)
from captum_crigrad.io.datasets import (
    MNIST_HELDOUT_START,
    MNIST_IMAGES,
    cifar10_split,
    load_cifar10_tar,
    load_mnist,
    read_idx,
)
from captum_crigrad.io.images import (
    IMAGE_EXTENSIONS,
    MAX_INPUT_SIZE,
    centre_crop_box,
    find_images,
    load_cifar_images,
    read_images,
)
from captum_crigrad.io.inputs import (
    NORMALIZATIONS,
    Inputs,
    Source,
    image_sources,
    load_inputs,
    preprocessing,
    read_sources,
)
from captum_crigrad.io.models import IMAGENET_MEAN, IMAGENET_STD
from captum_crigrad.io.zoo import (
    LoadedModel,
    load_model,
    load_resnet20,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "Inputs",
    "LoadedModel",
    "MAX_INPUT_SIZE",
    "MNIST_HELDOUT_START",
    "MNIST_IMAGES",
    "NORMALIZATIONS",
    "PathLike",
    "Source",
    "cached_torchvision_weights",
    "centre_crop_box",
    "cifar10_split",
    "find_images",
    "image_sources",
    "load_cifar10_tar",
    "load_cifar_images",
    "load_inputs",
    "load_mnist",
    "load_model",
    "load_resnet20",
    "load_state",
    "preprocessing",
    "read_checkpoint",
    "read_idx",
    "read_images",
    "read_sources",
    "torchvision_model_names",
]
