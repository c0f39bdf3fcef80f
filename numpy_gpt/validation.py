"""Checks at the public boundaries, shared by both packages so their errors read the same.

Framework-neutral: each package gathers the facts about its own array type
(shape, dtype, smallest and largest id) and hands them here; ``torch_gpt``
re-exports this module.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["check_token_ids", "check_int_at_least"]


def check_token_ids(
    shape: Sequence[int],
    dtype: str,
    is_integer: bool,
    min_id: int | None,
    max_id: int | None,
    vocab_size: int,
    context_length: int,
) -> None:
    """Token ids must be an integer (B, T) array, 1 <= T <= context_length, ids in [0, V).

    Negative ids get their own check because NumPy indexing would silently
    wrap them around to the end of the vocabulary.
    """
    if not is_integer:
        raise ValueError(f"token ids must be integers, got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(f"token ids must have shape (B, T), got shape {tuple(shape)}")
    batch, seq_len = shape
    if batch < 1 or seq_len < 1:
        raise ValueError(f"token ids must be non-empty, got shape {tuple(shape)}")
    if seq_len > context_length:
        raise ValueError(f"sequence length {seq_len} exceeds context_length {context_length}")
    if min_id < 0 or max_id >= vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size}), got min {min_id} and max {max_id}")


def check_int_at_least(name: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")

