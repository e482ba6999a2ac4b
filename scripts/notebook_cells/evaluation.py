"""The cells of notebooks/evaluation.ipynb."""

# The strings are notebook cells: their lines are what the notebook reader
# sees, written for the notebook, not for this file.
# ruff: noqa: E501

from notebook_cells._cells import SETUP, code, md

EVALUATION = [
    md("""
# Evaluation: are the maps faithful to the model?

No single metric is enough (docs/evaluation.md): on small images deletion into a
zero substrate rewards scattered maps, so read it next to insertion, pixel
perturbation, ROAD and sensitivity-n, and always next to a random map.
Offline, on EfficientNet-Lite0 with its ImageNet weights (the `imagenet`
extra) and the four 224 x 224 photos scikit-image ships; every random
choice is seeded. Four photos make a demonstration, not a benchmark: the
`eval` command runs the same metrics on more images, with bootstrap
intervals and paired tests (`captum-crigrad eval --model efficientnet_lite0
--help`; 48 ImageNet photos: docs/results_imagenet_first48.md).
"""),
    code(SETUP),
    code("""
from captum_crigrad import metrics
from captum_crigrad import io
from captum_crigrad.explain import ExplainOptions, explain, predict, to_map
from captum_crigrad.io.imagenet import sample_photos
from captum_crigrad.io.models import normalize

loaded = io.load_model("efficientnet_lite0")
model = loaded.model
raw, photos = sample_photos()
images = normalize(raw, loaded.mean, loaded.std)
predicted, _ = predict(model, images)
names = "saliency,crigrad,forgrad,crigrad-forgrad,gradcam"
attrs = explain(model, images, names, target=predicted, options=ExplainOptions())
maps = {name: to_map(a, (224, 224)) for name, a in attrs.items()}
maps["random (control)"] = torch.rand(4, 1, 224, 224, generator=torch.Generator().manual_seed(0))
print({k: tuple(v.shape) for k, v in maps.items()})
"""),
    md("""
## The table

* deletion AUC (lower is better): most salient pixels set to 0 first;
* insertion AUC (higher is better): most salient pixels put back into a
  blurred copy (RISE's substrate: sigma 5 px, 11 x 11 kernel);
* pixel perturbation (lower is better): fractional change of the predicted
  class's probability when the 10 % *least* salient pixels are removed
  (Srinivas & Fleuret 2019);
* ROAD combined (higher is better): (LeRF - MoRF) / 2 with noisy linear
  imputation of the removed pixels (Rong et al. 2022);
* sensitivity-n (higher is better): correlation between the attribution of
  random pixel subsets and the score drop when they are removed, mean over n
  (Ancona et al. 2018); here n = 256, 2048 and 8192 of the 50176 pixels,
  10 subsets each.

Each metric runs its forward passes in batches sized for the image (6 rows
per pass at 224 px, where larger CPU batches cost more per image).
"""),
    code("""
rows = []
for name, m in maps.items():
    g = torch.Generator().manual_seed(0)
    rows.append({
        "method": name,
        "deletion": float(metrics.deletion(model, images, m, n_steps=16).auc().mean()),
        "insertion": float(metrics.insertion(model, images, m, n_steps=16).auc().mean()),
        "pixel pert.": float(metrics.pixel_perturbation(model, images, m, k=0.1).mean()),
        "ROAD": float(metrics.road(model, images, m, generator=g).combined.mean()),
        "sens.-n": float(metrics.sensitivity_n(model, images, m, n=(256, 2048, 8192),
                                               n_subsets=10, generator=g).mean.mean()),
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
for name in ["saliency", "crigrad", "crigrad-forgrad", "gradcam", "random (control)"]:
    curve = metrics.deletion(model, images, maps[name], n_steps=16)
    ax.plot(curve.fractions.numpy(), curve.scores.mean(0).numpy(), label=name)
ax.set_xlabel("fraction of pixels deleted (most salient first)")
ax.set_ylabel("probability of the predicted class")
ax.legend(fontsize=8)
fig.tight_layout()
"""),
]
