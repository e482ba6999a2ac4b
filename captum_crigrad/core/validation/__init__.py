"""Every argument check of the package, and the error types users see.

This is the one place where an argument is checked: inputs and images,
targets, layers, devices, baselines, and plain numbers (positive ints,
fractions, finite floats, choices). Every check raises
:class:`InvalidValueError` or :class:`InvalidTypeError`, which are still a
``ValueError`` / ``TypeError`` for callers, and whose common base
:class:`UserInputError` tells the command line "the user asked for something
that cannot be done" (one line, exit code 2) apart from a bug (traceback).

Messages read ``"<argument>: <what was wrong>; <what would be right>"`` and
name the argument as the caller spells it (``argument=`` of every check:
``"target"`` in Python, ``"--target"`` on the command line).

**Targets** follow one rule everywhere (:func:`check_target`,
:func:`resolve_target`, :func:`target_indices`): every form Captum accepts
(None, an int, a tuple indexing a multi-dimensional output, a list of ints or
of tuples with one entry per example, a 0-d / one-element integer tensor, a
1-d integer tensor with one entry per example); a negative class index
counts from the end (``-1`` is the last class) in every form, resolved
against the model's output size; an index out of range is an
:class:`InvalidValueError`.

Bottom floor: imports torch only.
"""

from __future__ import annotations

from captum_crigrad.core.validation.errors import (
    InvalidTargetError,
    InvalidTypeError,
    InvalidValueError,
    UserInputError,
)
from captum_crigrad.core.validation.layers import (
    check_hookable,
    check_module,
    layer_names,
    module_names,
    resolve_layer,
    resolve_layers,
)
from captum_crigrad.core.validation.options import (
    SCORES,
    as_generator,
    check_bool,
    check_choice,
    check_device,
    check_finite_float,
    check_fraction,
    check_int,
    check_positive_int,
    check_score,
)
from captum_crigrad.core.validation.targets import (
    TargetType,
    check_target,
    has_negative_target,
    resolve_target,
    target_indices,
)
from captum_crigrad.core.validation.tensors import (
    check_images,
    check_inputs,
    format_baseline_distribution,
    format_baselines,
    is_per_example,
    select_examples,
    select_targets,
)

__all__ = [
    "InvalidTargetError",
    "InvalidTypeError",
    "InvalidValueError",
    "SCORES",
    "TargetType",
    "UserInputError",
    "as_generator",
    "check_bool",
    "check_choice",
    "check_device",
    "check_finite_float",
    "check_fraction",
    "check_hookable",
    "check_images",
    "check_inputs",
    "check_int",
    "check_module",
    "check_positive_int",
    "check_score",
    "check_target",
    "format_baseline_distribution",
    "format_baselines",
    "has_negative_target",
    "is_per_example",
    "layer_names",
    "module_names",
    "resolve_layer",
    "resolve_layers",
    "resolve_target",
    "select_examples",
    "select_targets",
    "target_indices",
]
