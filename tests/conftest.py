import os
from pathlib import Path

import pytest
import torch

ASSETS = Path(
    os.environ.get(
        "CAPTUM_CRIGRAD_ASSETS",
        Path(__file__).resolve().parents[1].parent / "shared" / "assets",
    )
)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Small models: one intra-op thread makes results bit-reproducible across
    # runs and avoids oversubscribing the 2-core CI machine.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def assets() -> Path:
    """Path to ../shared/assets; skips the test when it is absent."""
    if not (ASSETS / "cifar10_resnet20").is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    return ASSETS
