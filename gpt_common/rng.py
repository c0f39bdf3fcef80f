"""Explicit random generators: every random choice in both packages draws from a ``np.random.Generator``
that the caller passes in (or seeds), never from global state."""

from __future__ import annotations

import numpy as np

from .validation import check_seed

__all__ = ["as_rng"]


def as_rng(rng: np.random.Generator | int | None, name: str = "seed") -> np.random.Generator:
    """An explicit generator: pass one through, seed one from an int in [0, 2**64), or make a fresh one."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (np.random.BitGenerator, np.random.SeedSequence)):  # NumPy's own seeding objects
        return np.random.default_rng(rng)
    check_seed(name, rng)
    return np.random.default_rng(int(rng) if rng is not None else None)
