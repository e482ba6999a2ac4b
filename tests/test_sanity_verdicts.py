"""The pass rules of docs/sanity.md on hand-made results: each rule fails
exactly when its number crosses its threshold."""

import numpy as np
import pytest

from captum_crigrad.sanity import (
    ClassSensitivityResult,
    SanityResult,
    class_sensitivity_verdict,
    randomization_verdict,
)
from captum_crigrad.sanity.verdicts import (
    CLASS_MARGIN,
    RANDOM_CURVE_MARGIN,
    RANDOM_END_MAX,
)


def _cascade(curves: dict[str, dict[str, list[float]]]) -> SanityResult:
    methods = list(curves)
    steps = [f"b{i}" for i in range(len(next(iter(curves.values()))["ssim"]))]
    scores = {
        (m, meas): np.array(v, dtype=float)[:, None].repeat(3, axis=1)
        for m, by in curves.items()
        for meas, v in by.items()
    }
    return SanityResult("cascading", steps, methods, ["spearman_abs", "ssim"], scores)


GRAD = {"spearman_abs": [0.6, 0.4, 0.2], "ssim": [0.5, 0.3, 0.2]}


def test_randomization_end_point_and_curve():
    ok = {"spearman_abs": [0.7, 0.5, 0.1], "ssim": [0.6, 0.4, 0.2]}
    r = _cascade({"GradientExplanation": GRAD, "m": ok})
    v = randomization_verdict(r, "m")
    assert v["passes"] and v["end"] and v["curve"]
    assert v["curve_gap"] == pytest.approx(np.mean(ok["spearman_abs"]) - 0.4)
    high_ssim = {"spearman_abs": [0.7, 0.5, 0.1], "ssim": [0.6, 0.4, RANDOM_END_MAX]}
    v = randomization_verdict(
        _cascade({"GradientExplanation": GRAD, "m": high_ssim}), "m"
    )
    assert not v["passes"] and not v["end"] and v["curve"]
    slow = {"spearman_abs": [0.9, 0.9, 0.1], "ssim": [0.6, 0.4, 0.1]}
    gap = np.mean(slow["spearman_abs"]) - np.mean(GRAD["spearman_abs"])
    assert gap > RANDOM_CURVE_MARGIN
    v = randomization_verdict(_cascade({"GradientExplanation": GRAD, "m": slow}), "m")
    assert not v["passes"] and v["end"] and not v["curve"]


def test_class_sensitivity_margin():
    def result(gap: float) -> ClassSensitivityResult:
        scores = {
            ("GradientExplanation", "spearman_abs"): np.full(4, 0.3),
            ("GradientExplanation", "ssim"): np.full(4, 0.4),
            ("m", "spearman_abs"): np.full(4, 0.3 + gap),
            ("m", "ssim"): np.full(4, 0.4),
        }
        methods, measures = ["GradientExplanation", "m"], ["spearman_abs", "ssim"]
        return ClassSensitivityResult(
            methods, measures, np.zeros(4), np.ones(4), scores
        )

    assert class_sensitivity_verdict(result(CLASS_MARGIN - 0.01), "m")["passes"]
    assert not class_sensitivity_verdict(result(CLASS_MARGIN + 0.01), "m")["passes"]


def test_bad_requests_are_refused():
    r = _cascade({"GradientExplanation": GRAD, "m": GRAD})
    with pytest.raises(ValueError, match="method: 'x' is not in"):
        randomization_verdict(r, "x")
    with pytest.raises(ValueError, match="reference: 'saliency' is not in"):
        randomization_verdict(r, "m", reference="saliency")
    independent = SanityResult("independent", r.steps, r.methods, r.measures, r.scores)
    with pytest.raises(ValueError, match="cascading"):
        randomization_verdict(independent, "m")
    partial = SanityResult("cascading", r.steps, r.methods, ["ssim"], r.scores)
    with pytest.raises(ValueError, match="spearman_abs"):
        randomization_verdict(partial, "m")
