"""The one registry of named attribution methods, and their one grammar.

Every entry point resolves method names here: Python's
:func:`~captum_crigrad.methods.explain.explain`,
:func:`~captum_crigrad.sanity.gradient_map` and
:func:`~captum_crigrad.sanity.sanity_check`, the evaluation suite
(:mod:`captum_crigrad.evaluation.suite`), the four commands (``demo``,
``saliency``, ``eval``, ``sanity``) and the notebooks. A name accepted by
one of them is accepted by all, and means the same map.

Grammar (case-insensitive; see :func:`parse_method`)::

    name     := [modifier "-"]* base ["@" option]*
    modifier := "crigrad" | "forgrad"       (each at most once, any order)
    option   := "keep=" FRACTION | "sigma=" NUMBER | "energy=" FRACTION
              | FRACTION                                  (bare = keep)

* ``crigrad-``: the method with critical gradients
  (:class:`~captum_crigrad.crigrad.transform.CriGrad`; for CAM methods only
  the layers above the CAM layer are filtered); option ``keep``.
* ``forgrad-``: the method's map low-pass filtered post hoc
  (:func:`~captum_crigrad.forgrad.filter.forgrad`), (N, 1, H, W); option
  ``sigma`` (fixed cutoff) or ``energy`` (per-map rule); default: the
  energy rule, 0.75, or 0.9 with ``crigrad-`` too (docs/defaults_study.md).
* A modifier alone means it on ``saliency``: ``crigrad`` =
  ``crigrad-saliency``, ``crigrad-forgrad`` = ``crigrad-forgrad-saliency``.
  ``+`` separates like ``-`` (MATLAB's ``CriGrad+FORGrad``).
* Examples: ``saliency``, ``crigrad-ig@0.3``, ``forgrad-gradcam@sigma=7``,
  ``crigrad-forgrad@energy=0.8``,
  ``GradientExplanation`` (MATLAB's name of ``saliency``).

Each registered :class:`Method` states its meaning: ``kind`` (``"gradient"``:
an input attribution (N, C, H, W); ``"cam"``: a layer attribution upsampled
to the input, (N, 1, H, W), needs a layer; ``"control"``: a map that does not
look at the model), ``signed`` (positive and negative evidence, read as
the signed channel sum; otherwise the map is read by magnitude, ``sum_c
|a_c|``), the baseline it integrates from, and its aliases.

Adding a method is one registration in this file (or a call of
:func:`register_method` from your code)::

    @register_method("occlusion", "Captum Occlusion, 4x4 patches", signed=True)
    def _occlusion(ctx):
        from captum.attr import Occlusion

        explainer = Occlusion(ctx.model)
        return lambda x, t: explainer.attribute(
            x, target=t, sliding_window_shapes=(x.shape[1], 4, 4)
        )

after which ``occlusion``, ``crigrad-occlusion`` and ``forgrad-occlusion``
work in every entry point.
"""

from __future__ import annotations

# the built-in methods register themselves when their module is imported
from captum_crigrad.methods import builtin as builtin
from captum_crigrad.methods.build import (
    build_methods,
)
from captum_crigrad.methods.grammar import (
    MethodRequest,
    parse_method,
    parse_methods,
)
from captum_crigrad.methods.options import (
    FUNCTIONAL_RELU,
    KINDS,
    MODIFIERS,
    AttributeFn,
    BuildContext,
    Builder,
    ExplainOptions,
)
from captum_crigrad.methods.registry import (
    Method,
    available_methods,
    describe_methods,
    get_method,
    method_names,
    register_method,
    unregister_method,
)

__all__ = [
    "AttributeFn",
    "BuildContext",
    "Builder",
    "ExplainOptions",
    "FUNCTIONAL_RELU",
    "KINDS",
    "MODIFIERS",
    "Method",
    "MethodRequest",
    "available_methods",
    "build_methods",
    "describe_methods",
    "get_method",
    "method_names",
    "parse_method",
    "parse_methods",
    "register_method",
    "unregister_method",
]
