"""The order a ``gpt_cli train`` run reads its windows in: framework-neutral, so both implementations (and a
resumed run) see the same batches.

Epoch e's order is a permutation drawn from ``np.random.default_rng([seed, e])``:
a pure function of (seed, epoch), so a resumed run needs only its position
(epoch, next batch), never a generator's state. The book's own loaders (torch's
``DataLoader(shuffle=True)``) are separate and draw from torch's global generator.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["DataPosition", "epoch_order", "batches_per_epoch", "batches", "shard"]


@dataclasses.dataclass(frozen=True)
class DataPosition:
    """Where a run stands in its data: the epoch, and the next batch of it to read."""

    epoch: int = 0
    batch: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value) -> DataPosition:
        if not isinstance(value, dict) or set(value) != {"epoch", "batch"}:
            raise ValueError(f"a data position is {{'epoch': int, 'batch': int}}, got {value!r}")
        return cls(int(value["epoch"]), int(value["batch"]))


def epoch_order(num_windows: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """The windows' order in ``epoch``: a permutation from default_rng([seed, epoch]), or 0..n-1 unshuffled."""
    if not shuffle:
        return np.arange(num_windows, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(num_windows).astype(np.int64)


def batches_per_epoch(num_windows: int, batch_size: int, drop_last: bool = True, *,
                      context_length: int | None = None) -> int:
    """Full batches per epoch (plus a short last one unless ``drop_last``); ValueError if not even one fits."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be an integer >= 1, got {batch_size!r}")
    if num_windows < batch_size:
        windows = f"{num_windows} windows" + ("" if context_length is None else f" of {context_length} tokens")
        raise ValueError(f"batch size {batch_size} is larger than the data: {windows} "
                         "(use a smaller --batch-size or --accumulate, or more text)")
    full, rest = divmod(num_windows, batch_size)
    return full if drop_last or not rest else full + 1


def batches(num_windows: int, batch_size: int, epoch: int, seed: int, shuffle: bool = True, drop_last: bool = True,
            *, context_length: int | None = None) -> list[np.ndarray]:
    """Epoch ``epoch``'s batches of window indices, in reading order."""
    count = batches_per_epoch(num_windows, batch_size, drop_last, context_length=context_length)
    order = epoch_order(num_windows, epoch, seed, shuffle)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def shard(indices, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s share, indices[rank::world_size] after wrapping the list to a multiple of world_size
    (torch's DistributedSampler with drop_last=False: every rank gets the same count)."""
    if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, world size), got rank {rank!r} of {world_size!r}")
    indices = np.asarray(indices)
    padded = np.resize(indices, -(-len(indices) // world_size) * world_size) if len(indices) else indices
    return padded[rank::world_size]
