"""Pass or fail: the rules of docs/sanity.md ("Pass rules") applied to a
:class:`~captum_crigrad.sanity.check.SanityResult` and a
:class:`~captum_crigrad.sanity.class_sensitivity.ClassSensitivityResult`.

The rules compare a method with a reference, the plain gradient
(``GradientExplanation`` / ``saliency``) on the same images, so both results
must hold the reference too:

1. **Model randomisation** (a cascading check from the output down): with
   every layer randomised, the mean Spearman(|map|) and the mean SSIM to the
   trained model's maps are both below :data:`RANDOM_END_MAX`; and the
   Spearman(|map|) curve averaged over all steps is at most
   :data:`RANDOM_CURVE_MARGIN` above the reference's.
2. **Class sensitivity**: the mean Spearman(|map|) and the mean SSIM between
   the maps of two classes are each at most :data:`CLASS_MARGIN` above the
   reference's.

The defaults study (scripts/study/) reads its rules from here.
"""

from __future__ import annotations

import numpy as np

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.sanity.check import SanityResult
from captum_crigrad.sanity.class_sensitivity import ClassSensitivityResult

#: The two similarity measures the rules read.
VERDICT_MEASURES = ("spearman_abs", "ssim")
#: Every layer random: Spearman(|map|) and SSIM below this.
RANDOM_END_MAX = 0.3
#: Mean Spearman(|map|) curve at most this above the reference's.
RANDOM_CURVE_MARGIN = 0.15
#: Class sensitivity at most this above the reference's (both measures).
CLASS_MARGIN = 0.15


def _check(
    result: SanityResult | ClassSensitivityResult, method: str, reference: str
) -> None:
    for name, argument in ((method, "method"), (reference, "reference")):
        if name not in result.methods:
            raise InvalidValueError(
                f"{argument}: {name!r} is not in the result's methods "
                f"{result.methods}; run the check with it"
            )
    missing = [m for m in VERDICT_MEASURES if m not in result.measures]
    if missing:
        raise InvalidValueError(
            f"result: the rules read the measures {list(VERDICT_MEASURES)}; the "
            f"result lacks {missing} (run the check with measures including them)"
        )


def randomization_verdict(
    result: SanityResult, method: str, reference: str = "GradientExplanation"
) -> dict[str, bool | float]:
    """Rule 1 for ``method`` against ``reference`` on a cascading check:
    ``{"passes", "end", "curve", "end_spearman", "end_ssim", "curve_gap"}``."""
    if result.mode != "cascading":
        raise InvalidValueError(
            f"result: rule 1 reads a cascading check, got mode {result.mode!r}"
        )
    _check(result, method, reference)
    spearman = result.mean(method, "spearman_abs")
    end_spearman = float(spearman[-1])
    end_ssim = float(result.mean(method, "ssim")[-1])
    gap = float(np.mean(spearman) - np.mean(result.mean(reference, "spearman_abs")))
    end = end_spearman < RANDOM_END_MAX and end_ssim < RANDOM_END_MAX
    curve = gap <= RANDOM_CURVE_MARGIN
    return {
        "passes": end and curve,
        "end": end,
        "curve": curve,
        "end_spearman": end_spearman,
        "end_ssim": end_ssim,
        "curve_gap": gap,
    }


def class_sensitivity_verdict(
    result: ClassSensitivityResult, method: str, reference: str = "GradientExplanation"
) -> dict[str, bool | float]:
    """Rule 2 for ``method`` against ``reference``: ``{"passes",
    "spearman_abs_gap", "ssim_gap"}`` (gaps: method's mean minus the
    reference's)."""
    _check(result, method, reference)
    gaps = {
        f"{m}_gap": result.mean(method, m) - result.mean(reference, m)
        for m in VERDICT_MEASURES
    }
    verdict: dict[str, bool | float] = {
        "passes": all(g <= CLASS_MARGIN for g in gaps.values())
    }
    return verdict | gaps


__all__ = [
    "CLASS_MARGIN",
    "RANDOM_CURVE_MARGIN",
    "RANDOM_END_MAX",
    "VERDICT_MEASURES",
    "class_sensitivity_verdict",
    "randomization_verdict",
]
