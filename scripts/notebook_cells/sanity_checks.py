"""The cells of notebooks/sanity_checks.ipynb."""

# The strings are notebook cells: their lines are what the notebook reader
# sees, written for the notebook, not for this file.
# ruff: noqa: E501

from notebook_cells._cells import SETUP, code, md

SANITY_CHECKS = [
    md("""
# Sanity checks: do the maps depend on what the model learned?

Adebayo et al. (2018): randomise the model's parameters layer by layer, from
the output down (cascading), and compare each method's map with the trained
model's map (Spearman rank correlation of |map| and of the signed map, SSIM,
Pearson correlation of HOG features). A method whose maps stay similar on a
randomised model explains the image, not the model: it fails. Guided
Backprop famously fails. After MATLAB's compare-gradient-attribution-maps
(`gradientMap`, `randomizeModelParameters`, `tileInputAndMaps`); offline, on
the embedded MNIST CNN.
"""),
    code(SETUP),
    code("""
from captum_crigrad import sanity
from captum_crigrad.default import load_default_images, load_default_model, denormalize_mnist

model = load_default_model()
images, labels = load_default_images()
print(sanity.available_methods())
"""),
    md("## Gradient maps side by side (MATLAB's `gradientMap` + `tileInputAndMaps`)"),
    code("""
import warnings
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")  # Captum's notice

methods = ["GradientExplanation", "GuidedBackprop", "ZeilerFergus", "GradCAM", "CriGrad", "FORGrad"]
maps = sanity.gradient_map(model, images[4:5], methods, layer="features.5")   # single-channel, [0, 1]
fig = sanity.tile_input_and_maps(denormalize_mnist(images[4]), [m[0] for m in maps], titles=methods,
                                 title="digit 2, embedded MNIST CNN")
fig
"""),
    md("""
## Cascading randomisation

From the classifier down to the first convolution; the trained model is never
modified (each step works on a copy), and the randomisation is seeded.
"""),
    code("""
import warnings
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")  # Captum's notice

result = sanity.sanity_check(model, images[:10], ["GradientExplanation", "GuidedBackprop",
                             "GradCAM", "ExpectedGradCAM", "CriGrad", "FORGrad"], mode="cascading",
                             layer="features.5", seed=0, measures=["spearman_abs", "ssim"])
print(result.to_markdown())
"""),
    code("""
fig = sanity.plot_sanity_curves(result, measures=["spearman_abs", "ssim"])
fig
"""),
    md("""
Read the curves from left (trained) to right (every layer randomised): a
method passes when its similarity drops towards zero as soon as the top
layers are randomised. Here Grad-CAM and Expected Grad-CAM drop at once
and the plain gradient falls steadily (they pass); Guided Backprop fails, as
in the paper. CriGrad with its defaults (two passes, one global threshold,
`keep=0.2`) passes: its maps lose their resemblance to the trained model's
as the layers are randomised. The old default (`mode="online"`, `keep=0.1`)
failed here: ranking the already filtered gradient by positive activation x
gradient is a sharper version of Guided Backprop's rule
(docs/defaults_study.md). FORGrad with its default per-map cutoff (the
disc holding 75 % of each map's spectral energy) passes as well; its old
fixed blur (15/224 of the size) kept the maps similar and failed this check
on this CNN. The `sanity` command runs the same check on your own
model and images (`captum-crigrad sanity --help`).
"""),
]
