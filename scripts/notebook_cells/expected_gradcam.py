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

Offline, on EfficientNet-Lite0 with its ImageNet weights (the `imagenet`
extra) and the four 224 x 224 photos that scikit-image ships. The CAM layer
is the package's default for this family: `bn2`, the last feature map
(7 x 7, its ReLU6 inside), right before global average pooling.
"""),
    code(SETUP),
    code("""
from captum.attr import LayerAttribution, LayerGradCam
from captum.attr import visualization as viz
from captum_crigrad import ExpectedGradCAM, io
from captum_crigrad.cam import default_cam_layer
from captum_crigrad.io.imagenet import sample_photos
from captum_crigrad.io.models import normalize

loaded = io.load_model("efficientnet_lite0")
model = loaded.model
raw, photos = sample_photos()
images = normalize(raw, loaded.mean, loaded.std)
with torch.no_grad():
    predicted = model(images).argmax(1)
layer_name = default_cam_layer(model, images)
layer = dict(model.named_modules())[layer_name]
print("CAM layer:", layer_name)

gradcam = LayerGradCam(model, layer).attribute(images, target=predicted, relu_attributions=True)
egc = ExpectedGradCAM(model, layer).attribute(images, target=predicted, generator=0)
print(gradcam.shape, egc.shape)   # (4, 1, 7, 7): layer resolution, as LayerGradCam
"""),
    md("""
Expected Grad-CAM is *complete* (Buono et al., TMLR 2026): before the final
ReLU its map sums to y(x) - E[y(x')], the change of the target's logit from
the reference to the image. That holds exactly when the CAM layer is
followed by global average pooling and a linear layer, where the layer
gradient is the same at every position: this is such a model, so below the
sums match y(x) - y(x0) for the default reference x0 = 0 (a mid-grey image in
normalised space) up to float error. (On the embedded MNIST CNN, whose CAM
layer is followed by max-pooling and a hidden layer, they do not:
docs/expected_gradcam.md.) Without completeness, with the reference
distribution D = {x} and no noise, every sample is the image itself and the
method *is* Grad-CAM:
"""),
    code("""
raw_egc = ExpectedGradCAM(model, layer).attribute(
    images, target=predicted, relu_attributions=False, generator=0)
with torch.no_grad():
    gain = (model(images) - model(torch.zeros_like(images))).gather(1, predicted[:, None])[:, 0]
print("map sums:        ", raw_egc.sum(dim=(1, 2, 3)).detach().numpy().round(3))
print("y(x) - y(0):     ", gain.numpy().round(3))
same = ExpectedGradCAM(model, layer).attribute(
    images, target=predicted, baselines=images.unsqueeze(1), stdevs=0.0, n_samples=2,
    completeness=False, generator=0)
print("D = {x}, stdev 0, completeness=False equals Grad-CAM:",
      torch.allclose(same, gradcam, rtol=1e-4, atol=1e-6))
"""),
    code("""
def hwc(t):
    return t.detach().permute(1, 2, 0).numpy()

up = {"Grad-CAM": LayerAttribution.interpolate(gradcam, (224, 224), "bilinear"),
      "Expected Grad-CAM": LayerAttribution.interpolate(egc, (224, 224), "bilinear")}
fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
for i in range(4):
    for row, (name, cam) in enumerate(up.items()):
        viz.visualize_image_attr(hwc(cam[i]), hwc(raw[i]),
                                 method="blended_heat_map", sign="positive", alpha_overlay=0.5,
                                 plt_fig_axis=(fig, axes[row, i]), use_pyplot=False,
                                 title=f"{name}\\n{loaded.classes[int(predicted[i])]}")
fig.tight_layout()
"""),
    md("""
## Faithfulness, on these four photos

Deletion (lower is better) and insertion into a blurred copy (higher is
better) AUC, with a random map as the control. Four photos are a first look:
on 96 held-out ImageNet photos the default is level with Grad-CAM on both
curves at about 14x its time (docs/expected_gradcam_224.md). CriGrad can also
feed Expected Grad-CAM (`gradient_transform=CriGrad(...)`), but here it
changes nothing: above `bn2` there is no activation left to filter.
"""),
    code("""
from captum_crigrad.forgrad.select import deletion_auc, insertion_auc

maps = {"Grad-CAM": up["Grad-CAM"], "Expected Grad-CAM": up["Expected Grad-CAM"]}
maps["random (control)"] = torch.rand(4, 1, 224, 224, generator=torch.Generator().manual_seed(0))
print(f"{'method':20s} deletion AUC (lower is better)   insertion AUC (higher is better)")
for name, m in maps.items():
    d = deletion_auc(model, images, m, predicted, batch_size=8).mean()
    i = insertion_auc(model, images, m, predicted, blur_sigma=5.0, batch_size=8).mean()
    print(f"{name:20s} {d:.4f}                          {i:.4f}")
"""),
]
