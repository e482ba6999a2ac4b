"""Write the notebooks in notebooks/ from the cells below and execute them
(offline, on the embedded default), saving their outputs and figures.

    python scripts/build_notebooks.py [NAME ...]     # default: all

The notebooks are plain .ipynb files; this script only keeps their source in
one reviewable place. tests/test_notebooks.py executes the saved notebooks
again with nbclient.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# First cell of every notebook: quiet, deterministic, small figures.
SETUP = """\
%matplotlib inline
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, no widgets
import torch
import matplotlib.pyplot as plt
torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 80"""


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip("\n"))


QUICKSTART = [
    md("""
# Quick start: CriGrad in your Captum code

This notebook runs offline on the **embedded default**: a small MNIST CNN
shipped with the package (97.65 % held-out accuracy) and 20 held-out digits.
It shows how to

1. swap Captum's `Saliency` for `CriGradSaliency` (one import),
2. look at the maps with Captum's own visualisation,
3. put CriGrad on any other Captum method (`IntegratedGradients`,
   `NoiseTunnel`, `GradientShap`),
4. low-pass filter maps with FORGrad, alone or on top of CriGrad,
5. compare them with a quick deletion/insertion check,
6. do the same on a torchvision model of your own.
"""),
    code(SETUP),
    code("""
from captum_crigrad.default import load_default_model, load_default_images, denormalize_mnist

model = load_default_model()                  # SmallCNN, eval mode, nn.ReLU modules
images, labels = load_default_images()        # (20, 1, 28, 28), normalised as the model expects
with torch.no_grad():
    predicted = model(images).argmax(1)
print("labels   ", labels.tolist())
print("predicted", predicted.tolist())
"""),
    md("""
## 1. One import

`CriGradSaliency` takes `Saliency`'s arguments plus CriGrad's options
(`keep`, default 0.2, `importance`, `signed`, `mode`, `threshold`,
`layers`). By default it first computes the plain gradients (`mode="two_pass"`),
ranks every activation unit of every layer by activation x gradient against
one threshold, and lets gradient through only the top 20 % (PathwayGrad's
rule; docs/defaults_study.md chose it because it passes both sanity checks).
"""),
    code("""
from captum.attr import Saliency
from captum_crigrad import CriGradSaliency

x = images[:4].clone().requires_grad_(True)
target = predicted[:4]
plain = Saliency(model).attribute(x, target=target, abs=False)
critical = CriGradSaliency(model).attribute(x, target=target, abs=False)
print(plain.shape, critical.shape)    # same call, same shapes

# keep=1.0 is exactly Captum's result
same = CriGradSaliency(model, keep=1.0).attribute(x, target=target, abs=False)
print("keep=1.0 equals Saliency:", torch.equal(same, plain))
"""),
    md("## 2. Captum's visualisation, unchanged"),
    code("""
from captum.attr import visualization as viz

def hwc(t):
    return t.detach().permute(1, 2, 0).numpy()

fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for i in range(4):
    raw = hwc(denormalize_mnist(images[i]))
    for row, (name, attr) in enumerate([("Saliency", plain), ("CriGrad", critical)]):
        viz.visualize_image_attr(hwc(attr[i]), raw, method="heat_map",
                                 sign="absolute_value", plt_fig_axis=(fig, axes[row, i]),
                                 use_pyplot=False, title=f"{name}, digit {int(labels[i])}")
fig.tight_layout()
"""),
    md("""
## 3. Any Captum method

The drop-in classes cover `Saliency`, `InputXGradient`,
`IntegratedGradients` and `LayerGradCam`; `crigrad_attribution` puts
CriGrad on any other Captum attribution (the original object is not
modified), and `NoiseTunnel` wraps the drop-in classes as it wraps Captum's.
"""),
    code("""
from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel
from captum_crigrad import CriGradIntegratedGradients, crigrad_attribution

ig = IntegratedGradients(model).attribute(x, target=target, n_steps=32)
cig = CriGradIntegratedGradients(model).attribute(x, target=target, n_steps=32)

smooth = NoiseTunnel(CriGradSaliency(model))
torch.manual_seed(0)   # NoiseTunnel draws its noise from torch's global generator
csg = smooth.attribute(x, target=target, nt_type="smoothgrad", nt_samples=16, stdevs=0.15)

gshap = crigrad_attribution(GradientShap(model))
baselines = torch.zeros(8, 1, 28, 28)
torch.manual_seed(0)
cgs = gshap.attribute(x, baselines=baselines, target=target, n_samples=16)

maps = {"IG": ig, "CriGrad IG": cig, "CriGrad SmoothGrad": csg, "CriGrad GradientShap": cgs}
fig, axes = plt.subplots(1, len(maps), figsize=(2.2 * len(maps), 2.4))
for ax, (name, attr) in zip(axes, maps.items()):
    viz.visualize_image_attr(hwc(attr[0]), hwc(denormalize_mnist(images[0])),
                             method="heat_map", sign="absolute_value",
                             plt_fig_axis=(fig, ax), use_pyplot=False, title=name)
fig.tight_layout()
"""),
    md("""
## 4. FORGrad: low-pass filtered gradients

FORGrad (Muzellec et al. 2023) keeps only the low spatial frequencies of a
map. `FORGradSaliency` is the drop-in class; `with_forgrad` puts the filter
on any Captum attribution, post hoc (default) or per gradient evaluation,
and `transform=CriGrad(...)` combines both. The cutoff is chosen per map by
default: the smallest low-pass disc holding 75 % of the map's spectral
energy outside its mean (90 % after CriGrad), the rule that passed both
sanity tests in docs/defaults_study.md (`energy=` changes the fraction,
`sigma=` gives a fixed cutoff in cycles per image). On these 28 x 28 digits
it keeps most frequencies, so the maps stay close to Saliency's.
"""),
    code("""
from captum_crigrad import CriGrad, FORGradSaliency, with_forgrad

fsal = FORGradSaliency(model).attribute(x, target=target, abs=False)
both = FORGradSaliency(model, transform=CriGrad())  # energy 0.9 after CriGrad
fboth = both.attribute(x, target=target, abs=False)
fig_ig = with_forgrad(IntegratedGradients(model)).attribute(x, target=target, n_steps=32)
print(fsal.shape)    # (4, 1, 28, 28): channels averaged, as Xplique

maps = {"Saliency": plain, "FORGrad": fsal, "CriGrad + FORGrad": fboth, "FORGrad IG": fig_ig}
fig, axes = plt.subplots(1, len(maps), figsize=(2.2 * len(maps), 2.4))
for ax, (name, attr) in zip(axes, maps.items()):
    viz.visualize_image_attr(hwc(attr[2]), hwc(denormalize_mnist(images[2])),
                             method="heat_map", sign="absolute_value",
                             plt_fig_axis=(fig, ax), use_pyplot=False, title=name)
fig.tight_layout()
"""),
    md("""
## 5. Is the filtered map more faithful? A quick check

`captum_crigrad.explain.explain` runs several methods by name (the engine of
the `captum-crigrad demo` and `saliency` commands; prefixes `crigrad-` and
`forgrad-` combine). Deletion: remove the most salient pixels first and watch
the predicted class's probability fall (lower AUC is better); insertion:
put them back into a blurred copy (higher is better). A random map is the
control. 20 digits only: a first look, not an evaluation.
"""),
    code("""
from captum_crigrad.explain import ExplainOptions, explain, to_map
from captum_crigrad.forgrad.select import deletion_auc, insertion_auc

names = "saliency,crigrad,forgrad,crigrad-forgrad,integratedgradients,crigrad-integratedgradients"
attrs = explain(model, images, names, target=predicted, options=ExplainOptions())
rows = {name: to_map(a) for name, a in attrs.items()}
rows["random (control)"] = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
print(f"{'method':30s} deletion AUC (lower is better)   insertion AUC (higher is better)")
for name, m in rows.items():
    deletion = deletion_auc(model, images, m, predicted).mean()
    insertion = insertion_auc(model, images, m, predicted).mean()
    print(f"{name:30s} {deletion:.4f}                          {insertion:.4f}")
"""),
    md("""
## 6. Your own torchvision model

Nothing is downloaded at run time: torchvision weights must already be in the
torch hub cache (run `torchvision.models.resnet18(weights="IMAGENET1K_V1")`
once on a machine with internet, or copy the `.pth` file into
`~/.cache/torch/hub/checkpoints/`). The same calls then work unchanged; the
default CriGrad layers are every call of an `nn.ReLU` (torchvision ResNets
reuse one in-place ReLU several times per block: each call is filtered on its
own). Below, if the weights are not cached, a randomly initialised ResNet-18
only shows the mechanics (its maps mean nothing).
"""),
    code("""
import os
import torchvision
from skimage import data as skdata

weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
net = torchvision.models.resnet18()
if os.path.isfile(cached):
    net.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    print("using the cached ImageNet weights")
else:
    print("ImageNet weights not cached: random weights, mechanics only")
net.eval()

cat = torch.from_numpy(skdata.chelsea().copy()).permute(2, 0, 1).float() / 255   # a cat, offline
cat = torch.nn.functional.interpolate(cat[None], size=(224, 224), mode="bilinear", antialias=True)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
xc = ((cat - mean) / std).requires_grad_(True)
with torch.no_grad():
    cls = net(xc).argmax(1)
a_plain = Saliency(net).attribute(xc, target=cls, abs=False)
a_crit = CriGradSaliency(net).attribute(xc, target=cls, abs=False)
a_both = FORGradSaliency(net, transform=CriGrad()).attribute(xc, target=cls, abs=False)

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(hwc(cat[0])); axes[0].set_title("image"); axes[0].axis("off")
for ax, (name, attr) in zip(axes[1:], [("Saliency", a_plain), ("CriGrad", a_crit),
                                      ("CriGrad + FORGrad", a_both)]):
    viz.visualize_image_attr(hwc(attr[0]), hwc(cat[0]), method="heat_map", sign="absolute_value",
                             plt_fig_axis=(fig, ax), use_pyplot=False, title=name)
fig.tight_layout()
"""),
    md("""
From the command line, the same on image files:

```bash
captum-crigrad demo                                    # embedded default, overlays + metric table
captum-crigrad saliency my_images/ --model resnet18 --weights IMAGENET1K_V1 \\
    --methods saliency,integratedgradients --crigrad --forgrad --keep 0.2
```
"""),
]


EXPECTED_GRADCAM = [
    md("""
# Expected Grad-CAM against Grad-CAM

Grad-CAM weights each channel of a layer by its mean gradient at the image,
which saturates. Expected Grad-CAM (Buono et al. 2024) takes the weights from
the expected gradient over reference images, random interpolation points and
Gaussian noise:

`alpha_k = E[ mean_ij dy_c/dA_kij (x') ]`, `x' = x0 + beta (x - x0) + eps`,
`map = ReLU(sum_k alpha_k A_k(x))`.

Offline, on the embedded MNIST CNN; layer `features.5` (the last convolution,
14 x 14).
"""),
    code(SETUP),
    code("""
from captum.attr import LayerAttribution, LayerGradCam
from captum.attr import visualization as viz
from captum_crigrad.default import (GRADCAM_LAYER, denormalize_mnist, load_default_images,
                                    load_default_model)
from captum_crigrad import ExpectedGradCAM

model = load_default_model()
images, labels = load_default_images()
layer = dict(model.named_modules())[GRADCAM_LAYER]
with torch.no_grad():
    predicted = model(images).argmax(1)

gradcam = LayerGradCam(model, layer).attribute(images, target=predicted, relu_attributions=True)
egc = ExpectedGradCAM(model, layer).attribute(images, target=predicted, generator=0)
print(gradcam.shape, egc.shape)   # (20, 1, 14, 14): layer resolution, as LayerGradCam
"""),
    md("""
Expected Grad-CAM is *complete* (Buono et al., TMLR 2026): before the final
ReLU its map sums to y(x) - E[y(x')], the change of the target's logit from
the reference (here the all-zero image, the dataset mean) to the image. That
holds exactly when the CAM layer is followed by global average pooling and a
linear layer, where the layer gradient is the same at every position. This
CNN's `features.5` is followed by a ReLU, max-pooling and a hidden layer:
there the gradient is zero at most positions, its spatial average (Grad-CAM's
channel weight) no longer describes it, and the sums below are far from
y(x) - y(0) (docs/expected_gradcam.md measures this on three models).
Without completeness, with the reference distribution D = {x} and no noise,
every sample is the image itself and the method *is* Grad-CAM:
"""),
    code("""
raw = ExpectedGradCAM(model, layer).attribute(
    images, target=predicted, relu_attributions=False, generator=0)
with torch.no_grad():
    gain = (model(images) - model(torch.zeros_like(images))).gather(1, predicted[:, None])[:, 0]
print("map sums:        ", raw.sum(dim=(1, 2, 3))[:5].detach().numpy().round(2))
print("y(x) - y(0):     ", gain[:5].numpy().round(2))
same = ExpectedGradCAM(model, layer).attribute(
    images, target=predicted, baselines=images.unsqueeze(1), stdevs=0.0, n_samples=4,
    completeness=False, generator=0)
print("D = {x}, stdev 0, completeness=False equals Grad-CAM:",
      torch.allclose(same, gradcam, atol=1e-6))
"""),
    code("""
def hwc(t):
    return t.detach().permute(1, 2, 0).numpy()

up = {"Grad-CAM": LayerAttribution.interpolate(gradcam, (28, 28), "bilinear"),
      "Expected Grad-CAM": LayerAttribution.interpolate(egc, (28, 28), "bilinear")}
fig, axes = plt.subplots(2, 6, figsize=(10, 3.8))
for j, i in enumerate(range(0, 12, 2)):
    for row, (name, cam) in enumerate(up.items()):
        viz.visualize_image_attr(hwc(cam[i]), hwc(denormalize_mnist(images[i])),
                                 method="blended_heat_map", sign="positive", alpha_overlay=0.6,
                                 plt_fig_axis=(fig, axes[row, j]), use_pyplot=False,
                                 title=f"{name}\\ndigit {int(labels[i])}" if j == 0 else f"digit {int(labels[i])}")
fig.tight_layout()
"""),
    md("""
## Faithfulness, on these 20 digits

Deletion (lower is better) and insertion (higher is better) AUC, with a
random map as the control. CriGrad can also feed Expected Grad-CAM: the
critical gradient of the layers above the target layer gives the channel
weights (`gradient_transform=CriGrad(...)`).
"""),
    code("""
from captum_crigrad import CriGrad
from captum_crigrad.forgrad.select import deletion_auc, insertion_auc

cegc = ExpectedGradCAM(model, layer, gradient_transform=CriGrad()).attribute(
    images, target=predicted, generator=0)
maps = {"Grad-CAM": gradcam, "Expected Grad-CAM": egc, "CriGrad Expected Grad-CAM": cegc}
maps = {k: LayerAttribution.interpolate(v, (28, 28), "bilinear") for k, v in maps.items()}
maps["random (control)"] = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
print(f"{'method':28s} deletion AUC (lower is better)   insertion AUC (higher is better)")
for name, m in maps.items():
    d = deletion_auc(model, images, m, predicted).mean()
    i = insertion_auc(model, images, m, predicted).mean()
    print(f"{name:28s} {d:.4f}                          {i:.4f}")
"""),
]

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

EVALUATION = [
    md("""
# Evaluation: are the maps faithful to the model?

No single metric is enough (docs/evaluation.md): on small images deletion into a
zero substrate rewards scattered maps, so read it next to insertion, pixel
perturbation, ROAD and sensitivity-n, and always next to a random map.
Offline, on the embedded MNIST CNN and its 20 shipped digits; every random
choice is seeded. 20 images make a demonstration, not a benchmark: the
`eval` command runs the same metrics on more images (`captum-crigrad eval
--help`).
"""),
    code(SETUP),
    code("""
from captum_crigrad import metrics
from captum_crigrad.default import load_default_images, load_default_model
from captum_crigrad.explain import ExplainOptions, explain, predict, to_map

model = load_default_model()
images, labels = load_default_images()
predicted, _ = predict(model, images)
names = "saliency,crigrad,forgrad,crigrad-forgrad,integratedgradients,crigrad-integratedgradients"
attrs = explain(model, images, names, target=predicted, options=ExplainOptions())
maps = {name: to_map(a) for name, a in attrs.items()}
maps["random (control)"] = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
print({k: tuple(v.shape) for k, v in maps.items()})
"""),
    md("""
## The table

* deletion AUC (lower is better): most salient pixels set to 0 first;
* insertion AUC (higher is better): most salient pixels put back into a
  blurred copy (sigma 2 px on these 28 x 28 digits);
* pixel perturbation (lower is better): fractional change of the predicted
  class's probability when the 10 % *least* salient pixels are removed
  (Srinivas & Fleuret 2019);
* ROAD combined (higher is better): (LeRF - MoRF) / 2 with noisy linear
  imputation of the removed pixels (Rong et al. 2022);
* sensitivity-n (higher is better): correlation between the attribution of
  random pixel subsets and the score drop when they are removed, mean over n
  (Ancona et al. 2018).
"""),
    code("""
rows = []
for name, m in maps.items():
    g = torch.Generator().manual_seed(0)
    rows.append({
        "method": name,
        "deletion": float(metrics.deletion(model, images, m, n_steps=16).auc().mean()),
        "insertion": float(metrics.insertion(model, images, m, n_steps=16, blur_sigma=2.0,
                                             blur_kernel_size=9).auc().mean()),
        "pixel pert.": float(metrics.pixel_perturbation(model, images, m, k=0.1).mean()),
        "ROAD": float(metrics.road(model, images, m, generator=g).combined.mean()),
        "sens.-n": float(metrics.sensitivity_n(model, images, m, n=(4, 16, 64), n_subsets=50,
                                               generator=g).mean.mean()),
    })
cols = ["deletion", "insertion", "pixel pert.", "ROAD", "sens.-n"]
print(f"{'method':28s}" + "".join(f"{c:>13s}" for c in cols))
print(f"{'(better)':28s}" + "".join(f"{b:>13s}" for b in ["lower", "higher", "lower", "higher", "higher"]))
for r in rows:
    print(f"{r['method']:28s}" + "".join(f"{r[c]:13.4f}" for c in cols))
"""),
    md("## Deletion curves"),
    code("""
fig, ax = plt.subplots(figsize=(5, 3.2))
for name in ["saliency", "crigrad", "crigrad-forgrad", "random (control)"]:
    curve = metrics.deletion(model, images, maps[name], n_steps=16)
    ax.plot(curve.fractions.numpy(), curve.scores.mean(0).numpy(), label=name)
ax.set_xlabel("fraction of pixels deleted (most salient first)")
ax.set_ylabel("probability of the predicted class")
ax.legend(fontsize=8)
fig.tight_layout()
"""),
]

TRANSFORMERS = [
    md("""
# Grad-CAM, Expected Grad-CAM and CriGrad on a ViT and a ConvNeXt

The CAM family works on any layer layout: a vision transformer's tokens
`(B, 1+N, D)` and a Swin stage's channels-last `(B, h, w, C)` are turned into
`(B, C, h, w)` maps on the patch grid, the grid inferred from the input size
and the patch embedding (`captum_crigrad.cam.layout`), and
`default_cam_layer` picks the commonly used layer of every torchvision
architecture: the first norm of a ViT's last encoder block, a ConvNeXt's
last stage. CriGrad finds the activations of any architecture (GELU here).

**Weights.** No pretrained ImageNet weights can be downloaded here, and maps
of a randomly initialised network mean nothing. So this notebook trains a
small torchvision `VisionTransformer` and `ConvNeXt` (the same classes as
`vit_b_16` and `convnext_tiny`, scaled down) for a few seconds on a toy task
whose evidence is known: the class is the colour of one square, drawn among
grey squares of the same size on a noisy background. A faithful map should
point at the coloured square, and the square's mask lets us measure it. With
your own weights the calls are the same (see the end).
"""),
    code(SETUP),
    code("""
import torchvision.models as tvm
from torchvision.models.convnext import CNBlockConfig
from captum_crigrad.training import accuracy, train_classifier

COLOURS = torch.tensor([[1.0, 0.2, 0.2], [0.2, 0.9, 0.2], [0.3, 0.4, 1.0]])  # the classes
NAMES = ["red", "green", "blue"]

def squares(n, seed, size=32, side=6, distractors=3):
    \"\"\"Noisy backgrounds, `distractors` grey squares and one coloured square (the
    class); returns images in [0, 1], the coloured square's masks and labels.\"\"\"
    g = torch.Generator().manual_seed(seed)
    images = (0.5 + 0.15 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    labels = torch.randint(0, len(COLOURS), (n,), generator=g)
    corners = torch.randint(0, size - side + 1, (n, distractors + 1, 2), generator=g)
    greys = torch.rand(n, distractors, generator=g)
    grid = torch.arange(size)
    def square(k):  # (n, 1, size, size) masks of square k of every image
        r, c = corners[:, k, 0, None], corners[:, k, 1, None]
        rows = (grid >= r) & (grid < r + side)
        cols = (grid >= c) & (grid < c + side)
        return (rows[:, :, None] & cols[:, None, :])[:, None]
    for k in range(distractors):
        images = torch.where(square(k), greys[:, k, None, None, None], images)
    masks = square(distractors)
    images = torch.where(masks, COLOURS[labels][:, :, None, None], images)
    return images, masks, labels

train_x, _, train_y = squares(1200, seed=0)
test_x, test_masks, test_y = squares(64, seed=1)
normalize = lambda x: (x - 0.5) / 0.25

torch.manual_seed(0)
vit = tvm.VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=2,
                            hidden_dim=32, mlp_dim=64, num_classes=3)  # 8 x 8 patches
convnext = tvm.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=3)
models = {"ViT": vit, "ConvNeXt": convnext}
for name, model in models.items():
    train_classifier(model, normalize(train_x), train_y, epochs=3, lr=3e-3, seed=0)
    print(f"{name}: test accuracy {accuracy(model, normalize(test_x), test_y):.2f}")
"""),
    md("""
## The layer and its layout

`default_cam_layer` names the layer; `spatial_layout` says how its output
is read. The ViT's `ln_1` gives 1 + 64 tokens of 32 features: the class token
is dropped and the 64 patch tokens laid out on the 8 x 8 patch grid. Captum's
own `LayerGradCam` would read the 65 tokens as channels and return a
`(B, 1, 32)` "map"; `GradCAM` (Captum's computation on the converted layer)
returns `(B, 1, 8, 8)`.
"""),
    code("""
from captum.attr import LayerGradCam
from captum_crigrad import GradCAM, default_cam_layer
from captum_crigrad.cam.layout import input_size_of, spatial_layout
from captum_crigrad.validation import resolve_layer

x = normalize(test_x)
layers = {}
for name, model in models.items():
    layer_name = default_cam_layer(model, x)
    layers[name] = layer = resolve_layer(model, layer_name)
    seen = {}
    handle = layer.register_forward_hook(lambda m, i, o: seen.update(out=o))
    with torch.no_grad():
        model(x[:1])
    handle.remove()
    print(f"{name}: layer {layer_name!r}, output {tuple(seen['out'].shape)} ->",
          spatial_layout(seen["out"], layer, input_size_of((x,)), model))
print("Captum's LayerGradCam on the ViT:",
      tuple(LayerGradCam(vit, layers["ViT"]).attribute(x[:2], test_y[:2]).shape),
      "| GradCAM:", tuple(GradCAM(vit, layers["ViT"]).attribute(x[:2], test_y[:2]).shape))
"""),
    md("""
## The maps

Grad-CAM, Expected Grad-CAM (expected layer gradient over a zero reference,
random interpolation points and noise) and CriGrad (critical gradients:
only the top 10 % of units by activation x gradient pass gradient back, at
every GELU), next to the plain gradient (saliency). The CAMs are upsampled
bilinearly from the layer's grid (8 x 8 for the ViT, 4 x 4 for the ConvNeXt)
to the image. The red outline is the coloured square.
"""),
    code("""
from captum.attr import LayerAttribution, Saliency
from captum_crigrad import CriGradSaliency, ExpectedGradCAM

def up(cam):
    return LayerAttribution.interpolate(cam, (32, 32), "bilinear").detach()

def gradient_map(method, model):
    return method(model).attribute(x.clone().requires_grad_(True), target=test_y).abs().sum(1, keepdim=True)

maps = {}
for name, model in models.items():
    layer = layers[name]
    maps[name] = {
        "Grad-CAM": up(GradCAM(model, layer).attribute(x, test_y, relu_attributions=True)),
        "Expected Grad-CAM": up(ExpectedGradCAM(model, layer).attribute(x, test_y, generator=0)),
        "saliency": gradient_map(Saliency, model),
        "CriGrad": gradient_map(CriGradSaliency, model),
    }

shown = [0, 1, 2]
fig, axes = plt.subplots(2 * len(shown), 5, figsize=(8.5, 3.4 * len(shown)))
for row, (name, i) in enumerate([(n, i) for n in models for i in shown]):
    axes[row, 0].imshow(test_x[i].permute(1, 2, 0))
    axes[row, 0].set_ylabel(f"{name}\\n{NAMES[test_y[i]]}", fontsize=9)
    for col, (method, m) in enumerate(maps[name].items(), start=1):
        axes[row, col].imshow(m[i, 0] / m[i, 0].max().clamp_min(1e-12), cmap="inferno")
        axes[row, col].contour(test_masks[i, 0], levels=[0.5], colors="red", linewidths=0.8)
        if row == 0:
            axes[row, col].set_title(method, fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
"""),
    md("""
## Do the maps point at the square?

On the 64 test images: the pointing game (is the map's maximum inside the
square?) and relevance mass accuracy (the share of the map's positive mass
inside the square), both higher is better, with a random map as the
control. The square covers 3.5 % of the image.
"""),
    code("""
from captum_crigrad.metrics import pointing_game, relevance_mass_accuracy

control = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
print(f"{'model':9s} {'method':18s} pointing game   relevance mass")
for name in models:
    for method, m in {**maps[name], "random (control)": control}.items():
        hits = pointing_game(m, test_masks[:, 0]).float().mean()
        mass = relevance_mass_accuracy(m, test_masks[:, 0]).nanmean()
        print(f"{name:9s} {method:18s} {hits:13.2f}   {mass:14.2f}")
"""),
    md("""
On this toy task the ConvNeXt's CAMs point at the square far more often
than chance, while its plain gradient is the stride-4 checkerboard of its
patchify stem, dark on the flat square (CriGrad, which filters units but
keeps the stem, does not change that). On the tiny ViT every map is noisier:
after the first attention block each token carries information from the
whole image. Small numbers on 64 toy images, not a benchmark: they show the
machinery at work on a transformer and a ConvNeXt, not which method is best.
"""),
    md("""
## With your own weights

On a full-size torchvision model the calls are the same; only the weights
come from you (nothing is downloaded at run time; torchvision weights must
already be in the torch hub cache, or pass a saved state dict):

```python
net = tvm.vit_b_16()                                   # or tvm.convnext_tiny(), tvm.swin_t(), ...
net.load_state_dict(torch.load("vit_b_16.pth", weights_only=True))
net.eval()
layer = resolve_layer(net, default_cam_layer(net, images))   # encoder.layers.encoder_layer_11.ln_1
cam = ExpectedGradCAM(net, layer).attribute(images, target, upsample=True)   # (B, 1, 224, 224)
```

or on the command line:
`captum-crigrad saliency photos/ --model vit_b_16 --weights vit_b_16.pth
--methods gradcam,expectedgradcam --crigrad` (`--layer` overrides the
default layer). For a layout that cannot be inferred (a model of your own),
pass `reshape_transform=` to any CAM class, as in pytorch-grad-cam.
"""),
]


NOTEBOOK_CELLS = {
    "quickstart": QUICKSTART,
    "expected_gradcam": EXPECTED_GRADCAM,
    "evaluation": EVALUATION,
    "sanity_checks": SANITY_CHECKS,
    "transformers": TRANSFORMERS,
}


def build(name: str, timeout: int = 600) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = NOTEBOOK_CELLS[name]
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    path = NOTEBOOKS / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)
    return path


def main(argv) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = argv or list(NOTEBOOK_CELLS)
    unknown = [n for n in names if n not in NOTEBOOK_CELLS]
    if unknown:
        print(
            f"unknown notebook(s): {unknown}; known: {list(NOTEBOOK_CELLS)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print("wrote", build(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
