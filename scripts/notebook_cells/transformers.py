"""The cells of notebooks/transformers.ipynb."""

# The strings are notebook cells: their lines are what the notebook reader
# sees, written for the notebook, not for this file.
# ruff: noqa: E501

from notebook_cells._cells import SETUP, code, md

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
