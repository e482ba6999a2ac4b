"""The cells of notebooks/expected_gradcam.ipynb."""

# The strings are notebook cells: their lines are what the notebook reader
# sees, written for the notebook, not for this file.
# ruff: noqa: E501

from notebook_cells._cells import SETUP, code, md

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
