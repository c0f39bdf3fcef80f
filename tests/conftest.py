"""Shared pytest set-up: hypothesis profiles and the markers.

Markers:
- ``slow``: a long replay (the whole chapter 5 run, DDP, GPT-2 124M end to end).
  ``make test`` leaves these out and stays within 4 minutes on 2 cores; ``make test-all`` (CI) runs them.
  Every equivalence proof, the bad-input matrix and the resume tests are not slow: they run in ``make test``.
- ``browser``: renders pages in headless Chromium; only ``make test-all`` runs it, and it skips without one.
- ``cuda``: needs a CUDA device; skipped without one.

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
    config.addinivalue_line("markers", "slow: a long replay; only make test-all runs it (make test: -m 'not slow')")
    config.addinivalue_line("markers", "browser: renders pages in headless Chromium; only make test-all runs it")


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
