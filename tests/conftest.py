"""Shared test set-up: the hypothesis profile and the real MNIST folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]


def mnist_folder() -> Path | None:
    """``$PURENET_DATA``, else ``../shared/mnist`` next to the repository, if it exists."""
    env = os.environ.get("PURENET_DATA")
    folder = (Path(env) if env else REPO.parent / "shared" / "mnist").resolve()
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder. Missing data fails under CI (it must be there) and skips
    elsewhere."""
    folder = mnist_folder()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("PURENET_DATA must point at the MNIST folder in CI")
        pytest.skip("real MNIST not available: set PURENET_DATA")
    return folder


@pytest.fixture(scope="session")
def reference_data(mnist_dir):
    """The reference split of the real MNIST with seed 0 (loaded once per session)."""
    from purenet.data import load_dataset

    return load_dataset(mnist_dir, "reference", 0)
