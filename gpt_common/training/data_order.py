"""The order in which the project's own trainer (``python -m gpt_cli train``) reads its windows, framework-neutral.

Epoch ``e`` of a run seeded ``s`` reads the windows in the permutation drawn by
``np.random.default_rng([s, e])``: NumPy's ``SeedSequence`` mixes the two words, so each epoch's order
depends only on (seed, epoch), never on how many random numbers were drawn before. A resumed run
therefore needs only a ``DataPosition`` (epoch, next batch) to read exactly the batches the
uninterrupted run would have read, in NumPy and torch alike. The book's ``DataLoader`` path, shuffled
by torch's global generator, is separate.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence

import numpy as np

from ..validation import check_int_at_least, check_seed

__all__ = ["epoch_order", "DataPosition", "EpochBatches", "batches", "batches_per_epoch"]


def epoch_order(num_windows: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """Window indices of epoch ``epoch``, int64: ``default_rng([seed, epoch]).permutation(num_windows)``,
    or ``arange(num_windows)`` when not shuffled."""
    check_int_at_least("num_windows", num_windows, 0)
    check_int_at_least("epoch", epoch, 0)
    check_seed("seed", seed)
    if seed is None:  # None would mean fresh OS entropy: an order no resume could reproduce
        raise ValueError("seed must be an integer in [0, 2**64), got None")
    if not shuffle:
        return np.arange(int(num_windows), dtype=np.int64)
    rng = np.random.default_rng([int(seed), int(epoch)])
    return rng.permutation(int(num_windows)).astype(np.int64, copy=False)


@dataclasses.dataclass(frozen=True)
class DataPosition:
    """Where a run is in its data: the next batch to read is batch ``batch`` of epoch ``epoch`` (both 0-based)."""

    epoch: int = 0
    batch: int = 0

    def __post_init__(self) -> None:
        for name in ("epoch", "batch"):
            check_int_at_least(name, getattr(self, name), 0)
            object.__setattr__(self, name, int(getattr(self, name)))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> DataPosition:
        """A validated position from ``to_dict``'s dict; unknown keys are errors naming them."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a data position must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - {"epoch", "batch"})
        if unknown:
            raise ValueError(f"unknown data position key(s) {unknown}; expected 'epoch' and 'batch'")
        return cls(**values)


def _check_batch_size(num_windows: int, batch_size: int, context_length: int | None) -> None:
    """A batch size >= 1 that the data can fill at least once."""
    check_int_at_least("num_windows", num_windows, 0)
    check_int_at_least("batch_size", batch_size, 1)
    if num_windows < batch_size:
        tokens = f" of {context_length} tokens" if context_length is not None else ""
        raise ValueError(f"batch size {batch_size} is larger than the data: {num_windows} windows{tokens}")


def batches_per_epoch(num_windows: int, batch_size: int, drop_last: bool = True,
                      context_length: int | None = None) -> int:
    """floor(num_windows / batch_size) with ``drop_last`` (a short last batch is dropped), else the ceiling."""
    _check_batch_size(num_windows, batch_size, context_length)
    return num_windows // batch_size if drop_last else -(-num_windows // batch_size)


class EpochBatches(Sequence):
    """One epoch's batches, cut from its order only when asked for: ``batches[i]`` is
    ``order[i * batch_size : (i + 1) * batch_size]``, a view. The epoch costs its order (8 bytes a window, 1/256
    of a uint16 corpus at T = 1024) and no Python object per batch, however large the corpus."""

    def __init__(self, order: np.ndarray, batch_size: int, count: int):
        self.order, self.batch_size, self.count = order, batch_size, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        i = operator.index(index)
        i = i + self.count if i < 0 else i
        if not 0 <= i < self.count:
            raise IndexError(f"batch {index} of an epoch of {self.count} batches")
        return self.order[i * self.batch_size : (i + 1) * self.batch_size]


def batches(num_windows: int, batch_size: int, epoch: int, seed: int, shuffle: bool = True,
            drop_last: bool = True, context_length: int | None = None) -> EpochBatches:
    """Epoch ``epoch``'s batches: ``epoch_order`` cut into consecutive runs of ``batch_size`` window indices.

    ``context_length`` only makes the error for a batch larger than the data name the window size.
    """
    count = batches_per_epoch(num_windows, batch_size, drop_last, context_length)
    return EpochBatches(epoch_order(num_windows, epoch, seed, shuffle), int(batch_size), count)
