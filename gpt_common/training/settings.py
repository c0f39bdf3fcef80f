"""A run's settings, in two kinds: what decides its numbers, and its cadence.

``RunSettings`` decides every number of a run (losses, weights): it is saved in each checkpoint, and a
resume keeps it; a flag that would change it is refused. ``Cadence`` decides only what is looked at
and kept (when to stop, evaluate, sample, checkpoint), so a resume may change it freely: evaluation
and greedy sampling draw no random numbers, so they change no number of the run.

Both are the one source of their defaults: ``gpt_cli train`` shows them in its help and fills every
flag the user did not give from here (a fresh run) or from the checkpoint (a resume).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ..validation import check_seed, is_int, is_real
from .param_groups import DECAY_GROUPS
from .schedule import Schedule

__all__ = ["RunSettings", "Cadence", "DTYPES", "flag", "resolve"]

DTYPES = ("float32", "float64", "bf16")


def flag(name: str) -> str:
    """The command-line flag of a settings field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's numbers. ``total_steps`` is the length the schedule is planned over:
    a resume that stops elsewhere (another ``--max-steps``) keeps it, so the rate follows the same curve
    and stays at ``min_lr`` past its end. ``min_lr`` None means ``lr`` (a constant rate, as in chapter 5)."""

    batch_size: int = 8
    accumulate: int = 1
    total_steps: int = 100
    lr: float = 4e-4
    min_lr: float | None = None
    initial_lr: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.1
    decay: str = "all"
    grad_clip: float | None = None
    seed: int = 123
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("batch_size", "accumulate", "total_steps"):
            _check_int(name, getattr(self, name), 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        check_seed(flag("seed"), self.seed)
        if not (is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr!r}")
        if self.min_lr is None:
            object.__setattr__(self, "min_lr", self.lr)
        for name in ("min_lr", "initial_lr"):
            value = getattr(self, name)
            if not (is_real(value) and 0 <= value <= self.lr):
                raise ValueError(f"{flag(name)} must be a number in [0, --lr {self.lr!r}], got {value!r}")
        if self.warmup_steps and self.warmup_steps >= self.total_steps:
            raise ValueError(f"--warmup-steps {self.warmup_steps} must be shorter than the run "
                             f"({self.total_steps} steps)")
        if not (is_real(self.weight_decay) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"--weight-decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (is_real(self.grad_clip) and 0 < self.grad_clip < math.inf):
            raise ValueError(f"--grad-clip must be a finite number > 0, got {self.grad_clip!r}")
        _check_choice("decay", self.decay, DECAY_GROUPS)
        _check_choice("dtype", self.dtype, DTYPES)

    def schedule(self) -> Schedule:
        return Schedule(peak_lr=self.lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                        initial_lr=self.initial_lr, min_lr=self.min_lr)


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When a run stops, evaluates, samples and checkpoints: changes no number, so a resume may change it.
    ``max_steps`` None means the schedule's ``total_steps``; ``stop_after`` ends this process early."""

    max_steps: int | None = None
    eval_every: int = 10
    eval_batches: int = 5
    start_context: str = "Every effort moves you"
    sample_tokens: int = 30
    keep: int = 3
    stop_after: int | None = None

    def __post_init__(self):
        for name in ("eval_every", "eval_batches", "sample_tokens", "keep"):
            _check_int(name, getattr(self, name), 1)
        for name in ("max_steps", "stop_after"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if not isinstance(self.start_context, str) or not self.start_context.strip():
            raise ValueError(f"--start-context must be some text to sample from, got {self.start_context!r}")


def resolve(cls, given: Mapping, saved: Mapping | None, source: str = ""):
    """``cls`` from the flags the user ``given`` (None: not given) over ``saved`` (a resume) or the defaults.

    Resuming, a given flag that differs from the saved run's value is refused, naming both: the run's
    numbers would silently stop being the run's.
    """
    names = [field.name for field in dataclasses.fields(cls)]
    if saved is None:
        return cls(**{name: given[name] for name in names if given.get(name) is not None})
    missing = [name for name in names if name not in saved]
    if missing:
        raise ValueError(f"{source}: the manifest's settings have no {missing}")
    changed = [name for name in names if given.get(name) is not None and given[name] != saved[name]]
    if changed:
        raise ValueError(f"{source} was trained with " + ", ".join(f"{flag(n)} {saved[n]!r}" for n in changed)
                         + "; this command says " + ", ".join(f"{flag(n)} {given[n]!r}" for n in changed)
                         + " (a resume keeps what decides the numbers: leave these out, or start a new --out)")
    return cls(**{name: saved[name] for name in names})


def _check_int(name: str, value, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{flag(name)} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{flag(name)} must be one of {list(choices)}, got {value!r}")
