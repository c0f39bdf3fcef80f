"""The learning-rate schedule of the book's appendix D: linear warmup, then cosine decay (Loshchilov & Hutter,
"SGDR", 2017), written once for both implementations.

    lr(s) = initial_lr + s (peak_lr - initial_lr) / warmup_steps                         s <  warmup_steps
    lr(s) = min_lr + (peak_lr - min_lr) (1 + cos(pi (s - warmup) / (total - warmup))) / 2  s >= warmup_steps

with the book's arithmetic order, so its printed rates come out digit for digit.
With ``min_lr == peak_lr`` and no warmup the rate is constant (chapter 5's run).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Schedule"]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Warmup over ``warmup_steps`` from ``initial_lr`` to ``peak_lr``, then cosine to ``min_lr`` at ``total_steps``."""

    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    initial_lr: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.peak_lr, int | float) and math.isfinite(self.peak_lr) and self.peak_lr > 0):
            raise ValueError(f"the learning rate must be a finite number > 0, got {self.peak_lr!r}")
        if not (isinstance(self.total_steps, int) and self.total_steps >= 1):
            raise ValueError(f"a run needs at least 1 step, got total_steps {self.total_steps!r}")
        if not (isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps < self.total_steps):
            raise ValueError(f"warmup_steps ({self.warmup_steps!r}) must be >= 0 and shorter than the run "
                             f"(total_steps {self.total_steps})")
        for name in ("initial_lr", "min_lr"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value <= self.peak_lr):
                raise ValueError(f"{name} must be in [0, peak lr {self.peak_lr}], got {value!r}")

    def lr_at(self, step: int) -> float:
        """The rate of optimizer step ``step`` (0-based), as appendix D's ``train_model`` computes it."""
        if step < self.warmup_steps:
            lr_increment = (self.peak_lr - self.initial_lr) / self.warmup_steps
            return self.initial_lr + step * lr_increment
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def clips_at(self, step: int) -> bool:
        """Clipping applies from the end of warmup on: ``step >= warmup_steps``. (The book writes ``>``, which
        leaves the first step at the peak rate unclipped; with no warmup it never clips step 0.)"""
        return step >= self.warmup_steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value) -> Schedule:
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown schedule keys {unknown}")
        return cls(**value)
