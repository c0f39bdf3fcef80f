"""Explicit random generators: every random choice in both packages draws from a ``np.random.Generator``
that the caller passes in (or seeds), never from global state."""

from __future__ import annotations

import numpy as np

__all__ = ["as_rng"]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """An explicit generator: pass one through, seed one from an int, or make a fresh one."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
