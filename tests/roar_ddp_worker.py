"""Run by tests/test_metrics_roar_ddp.py, alone or under ``torchrun``: a
tiny ROAR (SmallCNN, 96 noisy copies of the shipped digits, fractions 0 and
0.1, two seeds, default trainer) whose result rank 0 writes as JSON to
argv[1]."""

import json
import sys

import torch
import torch.distributed as dist

from captum_crigrad.io.default import load_default_images
from captum_crigrad.io.models import SmallCNN
from captum_crigrad.metrics.roar import roar


def main(path: str) -> None:
    torch.set_num_threads(1)
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    x, y = load_default_images()
    x = x.repeat(5, 1, 1, 1)[:96] + 0.01 * torch.randn(
        96, 1, 28, 28, generator=torch.Generator().manual_seed(0)
    )
    y = y.repeat(5)[:96]
    maps = x.abs()
    result = roar(
        x[:64],
        y[:64],
        x[64:],
        y[64:],
        maps[:64],
        maps[64:],
        fractions=(0.1,),
        seeds=(0, 1),
        model_fn=lambda: SmallCNN(in_channels=1),
        train_kwargs=dict(epochs=10, batch_size=8),
        random_control=False,
    )
    if not distributed or dist.get_rank() == 0:
        with open(path, "w") as fh:
            json.dump(
                {
                    "accuracy": result.accuracy.tolist(),
                    "summary": result.summary(n_resamples=200),
                    "world": dist.get_world_size() if distributed else 1,
                },
                fh,
            )
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
