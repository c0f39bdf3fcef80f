"""The learning-rate schedule of the book's appendix D: linear warmup from ``initial_lr`` to ``peak_lr``,
then cosine decay from ``peak_lr`` to ``min_lr``; and when gradient clipping applies.

Framework-neutral and pure Python floats, so both twins' trainers set exactly the same learning rate
at every step (the NumPy ``AdamW`` and ``torch.optim.AdamW`` read it from here): the schedule is the
run's one source of the learning rate. A checkpoint saves the settings it is built from (``RunSettings``).
"""

from __future__ import annotations

import dataclasses
import math

from ..validation import is_int, is_real

__all__ = ["Schedule"]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Appendix D's schedule over ``total_steps`` optimizer steps (step 0 is the first).

    warmup (step < warmup_steps):  lr = initial_lr + step * ((peak_lr - initial_lr) / warmup_steps)
    cosine (otherwise):            progress = (step - warmup_steps) / (total_steps - warmup_steps)
                                   lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress))
    With ``warmup_steps == 0`` the first step gets ``peak_lr``; with ``min_lr == peak_lr`` too, the rate is
    constant (``lr + 0.0 * ...`` is ``lr`` exactly).
    """

    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    initial_lr: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        for name in ("peak_lr", "initial_lr", "min_lr"):
            value = getattr(self, name)
            if not is_real(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))  # a NumPy scalar or JSON int becomes a Python float
        for name in ("total_steps", "warmup_steps"):
            if not is_int(getattr(self, name)):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
            object.__setattr__(self, name, int(getattr(self, name)))
        self._check_ranges()

    def _check_ranges(self) -> None:
        """peak_lr > 0; total_steps >= 1; 0 <= warmup_steps < total_steps; initial_lr and min_lr in [0, peak_lr]."""
        if self.peak_lr <= 0:
            raise ValueError(f"peak_lr must be > 0, got {self.peak_lr!r}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps > 0 and self.warmup_steps >= self.total_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be shorter than the run "
                             f"(total_steps {self.total_steps})")
        for name in ("initial_lr", "min_lr"):
            value = getattr(self, name)
            if not 0.0 <= value <= self.peak_lr:
                raise ValueError(f"{name} must be in [0, peak_lr {self.peak_lr!r}], got {value!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based), in the book's arithmetic order.

        Steps at or past ``total_steps`` get ``min_lr``: progress stops at 1 instead of letting the cosine
        climb back up. A resume with a longer ``--max-steps`` keeps ``total_steps`` (the length the schedule
        was planned over), so its extra steps train at ``min_lr`` (``tests/test_train_safety.py``).
        """
        if not is_int(step) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        if step < self.warmup_steps:
            lr_increment = (self.peak_lr - self.initial_lr) / self.warmup_steps  # the book computes this once
            return self.initial_lr + int(step) * lr_increment
        progress = min((int(step) - self.warmup_steps) / (self.total_steps - self.warmup_steps), 1.0)
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def clips_at(self, step: int) -> bool:
        """Whether gradient clipping applies at ``step``: from the first step after warmup on, ``step >= warmup_steps``.

        The book writes ``global_step > warmup_steps``, which also skips clipping at step ``warmup_steps``, the first
        step at the peak rate; we clip there too (and at every step when there is no warmup).
        """
        if not is_int(step) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        return step >= self.warmup_steps
