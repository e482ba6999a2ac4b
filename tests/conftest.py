import os
import signal
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis profiles (tests/test_properties.py): "ci" (default) runs a few
# examples per property, derandomised so every run is the same; "nightly"
# runs many, randomly: HYPOTHESIS_PROFILE=nightly python -m pytest -q
# tests/test_properties.py. No example database is written (nothing is left
# in the working tree); a failure prints its example and a reproduce blob.
_COMMON = dict(
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=8, derandomize=True, **_COMMON)
settings.register_profile("nightly", max_examples=400, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ASSETS = Path(
    os.environ.get(
        "CAPTUM_CRIGRAD_ASSETS",
        Path(__file__).resolve().parents[1].parent / "shared" / "assets",
    )
)


@pytest.fixture(autouse=True, scope="session")
def _sigint_raises_keyboard_interrupt():
    """A run started under nohup or as a background job of a non-interactive
    shell inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt: the tests that send SIGINT (test_cli_fuzz,
    test_reliability_files) would see nothing happen. Python's own handler is
    restored for the run (subprocesses then start with SIGINT at its default),
    and the inherited disposition afterwards."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


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
