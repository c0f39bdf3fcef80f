"""Shared pytest set-up: hypothesis profiles and the CUDA and browser markers.

Profiles (select with HYPOTHESIS_PROFILE=name):
- ``dev``: the default on a workstation, random examples, no deadline (the
  first call into torch or BLAS can take longer than any sensible deadline).
- ``ci``: derandomised, so a CI failure reproduces byte for byte; chosen
  automatically when the ``CI`` environment variable is set.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        return False
    return torch.cuda.is_available()


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped without one")
    config.addinivalue_line("markers", "slow: GPT-2 124M-sized checks (seconds each)")
    config.addinivalue_line("markers", "browser: renders pages in headless Chromium; skipped without one")


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
