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
(`gradientMap`, `randomizeModelParameters`, `tileInputAndMaps`), which runs
an ImageNet network on photos; offline here on EfficientNet-Lite0 with its
ImageNet weights (the `imagenet` extra) and the photos scikit-image ships.
"""),
    code(SETUP),
    code("""
import warnings
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")  # Captum's notice
from captum_crigrad import io, sanity
from captum_crigrad.io.imagenet import sample_photos
from captum_crigrad.io.models import normalize

loaded = io.load_model("efficientnet_lite0")
model = loaded.model
raw, photos = sample_photos()
images = normalize(raw, loaded.mean, loaded.std)
print(sanity.available_methods())
"""),
    md("""
## Gradient maps side by side (MATLAB's `gradientMap` + `tileInputAndMaps`)

EfficientNet-Lite0's activations are ReLU6, so Guided Backprop and
Zeiler-Fergus (which change the backward pass of `nn.ReLU`) are not
defined on it and the package refuses them rather than return the plain
gradient; they are shown on a ReLU network at the end.
"""),
    code("""
methods = ["GradientExplanation", "SmoothGrad", "GradCAM", "CriGrad", "FORGrad"]
maps = sanity.gradient_map(model, images[:1], methods)   # single-channel, [0, 1]
fig = sanity.tile_input_and_maps(raw[0], [m[0] for m in maps], titles=methods,
                                 title="Chelsea, EfficientNet-Lite0 (ImageNet)")
fig
"""),
    md("""
## Cascading randomisation

From the classifier down to the stem, one block at a time (the seven stages
of inverted-residual blocks are one step each); the trained model is never
modified (each step works on a copy), and the randomisation is seeded. Two
photos, to keep the notebook short: `docs/sanity_224.md` has the same check
with the verdicts of both sanity rules on more photos.
"""),
    code("""
blocks = ["classifier", "conv_head"] + [f"blocks.{i}" for i in range(6, -1, -1)] + ["conv_stem"]
result = sanity.sanity_check(model, images[:2], ["GradientExplanation", "GradCAM",
                             "ExpectedGradCAM", "CriGrad", "FORGrad"], mode="cascading",
                             blocks=blocks, seed=0, measures=["spearman_abs", "ssim"])
print(result.to_markdown())
"""),
    code("""
for method in ["GradCAM", "ExpectedGradCAM", "CriGrad", "FORGrad"]:
    v = sanity.randomization_verdict(result, method)   # rule 1 of docs/sanity.md
    print(f"{method:16s} rule 1 passes: {v['passes']!s:5s}  end Spearman |map| "
          f"{v['end_spearman']:.2f}, end SSIM {v['end_ssim']:.2f}")
fig = sanity.plot_sanity_curves(result, measures=["spearman_abs", "ssim"])
fig
"""),
    md("""
Read the curves from left (trained) to right (every block randomised): a
method passes when its similarity drops towards zero as soon as the top
layers are randomised. `sanity.randomization_verdict` applies the package's
rule (docs/sanity.md) to such a result. At 224 px, on Lite0, FORGrad's
default passes both rules, while CriGrad's default keeps an SSIM above the
rule's threshold after full randomisation (docs/sanity_224.md): its maps
lose their ranking (Spearman falls as the plain gradient's) but keep a
structure. On these two photos Grad-CAM's coarse 7 x 7 map, too, keeps an
SSIM above the threshold once every block is random; two photos are a
demonstration, the verdicts of record are docs/sanity_224.md's.

## Guided Backprop on a ReLU network

The classic failure needs `nn.ReLU` modules: on the embedded MNIST CNN
(shipped with the package) Guided Backprop's map barely changes when the
whole network is randomised, while the plain gradient's does.
"""),
    code("""
from captum_crigrad.default import denormalize_mnist, load_default_images, load_default_model

digits_model = load_default_model()
digits, _ = load_default_images()
mnist = sanity.sanity_check(digits_model, digits[:10], ["GradientExplanation", "GuidedBackprop"],
                            mode="cascading", seed=0, measures=["spearman_abs", "ssim"])
print(mnist.to_markdown())
"""),
]
