"""Sampling settings and the random stream both twins draw from, framework-neutral.

``SamplingParams`` validates temperature, top-k and top-p once for both packages. The
random stream is one uniform number per row per step from a NumPy ``Generator``
(``draw_uniforms``), which each twin turns into a token by inverse-CDF sampling, so the same
seed gives the same tokens in both.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["SamplingParams", "draw_uniforms"]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """temperature 0 is greedy (argmax); top_k None keeps every token; top_p None or 1 keeps them all."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 means greedy), got {t!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"top_k must be None or an int >= 1, got {k!r}")
        p = self.top_p
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0):
            raise ValueError(f"top_p must be None or a number in (0, 1], got {p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def draw_uniforms(rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """The step's draws: one U[0, 1) float64 per row, the only random numbers sampling consumes."""
    return rng.random(batch_size)
