"""``captum-crigrad demo`` on photographs: EfficientNet-Lite0 (ImageNet,
:mod:`captum_crigrad.io.imagenet`) explains four photos that scikit-image
ships (:data:`~captum_crigrad.io.imagenet.SAMPLE_PHOTOS`, with their
licences), offline, with a progress bar, and writes into ``--out`` (default
``./crigrad-demo-out``), all at once:

* ``overlays/NN_PHOTO_METHOD.png``: each map over its photo (224 x 224);
* ``summary.png``: photos (rows, titled with the predicted class and its
  probability) x methods (columns);
* ``maps/METHOD.pt``: raw attributions and single-channel maps;
* ``inputs.pt``: the photos in [0, 1], the predicted classes, their names
  and probabilities;
* ``metrics.csv`` / ``metrics.json``: per method and for a random-map
  control, the mean over the photos of ``deletion_auc`` (into 0, lower is
  better) and ``insertion_auc`` (from a Gaussian blur, sigma 2 px; higher is
  better), ``--steps`` steps, each map read as its method's meaning says;
* ``run.json``: the options and versions used.
"""

from __future__ import annotations

import argparse
import time

#: crigrad-gradcam is left out: on EfficientNet-Lite0 the CAM layer (bn2, its
#: activation inside) has no activation above it to filter, so it equals
#: Grad-CAM.
PHOTO_METHODS = "saliency,crigrad,forgrad,crigrad-forgrad,gradcam"
PHOTO_STEPS = 8


def run_photos(args: argparse.Namespace) -> int:
    from captum_crigrad import io
    from captum_crigrad.cli.demo import DemoInputs, checked, explain_and_write
    from captum_crigrad.core.forward import predict
    from captum_crigrad.io.imagenet import sample_photos
    from captum_crigrad.io.models import normalize
    from captum_crigrad.methods.explain import ExplainOptions

    requests, device = checked(args)
    start = time.perf_counter()
    loaded = io.load_model("efficientnet_lite0", names={"model": "--model"})
    raw, photos = sample_photos(loaded.size, loaded.crop)
    model = loaded.model.to(device)
    images = normalize(raw, loaded.mean, loaded.std).to(device)
    predicted, confidence = predict(model, images)
    classes = list(loaded.classes or [])
    names = [classes[int(p)] for p in predicted.cpu()]
    titles = [
        f"{c} {float(p):.2f}" for c, p in zip(names, confidence.cpu(), strict=True)
    ]
    inputs = DemoInputs(
        model,
        images,
        raw,
        predicted,
        confidence,
        stems=photos,
        titles=titles,
        options=ExplainOptions(
            seed=args.seed, forgrad_sigma=args.sigma, forgrad_energy=args.energy
        ),
        description=f"{loaded.description}: "
        + "; ".join(f"{p} -> {t}" for p, t in zip(photos, titles, strict=True)),
        saved={"photos": photos, "predicted_names": names},
        run_info={
            "model": loaded.description,
            "photos": [f"skimage.data.{p}()" for p in photos],
        },
        table_info={"predicted": titles},
        tile=loaded.size,
    )
    return explain_and_write(args, requests, inputs, start, "photos")


__all__ = ["PHOTO_METHODS", "PHOTO_STEPS", "run_photos"]
