"""Next-token data, the framework-neutral part: token ids as a read-only int64 array, and the window arithmetic.

Window k starts at token ``k * stride`` and holds ``max_length`` inputs; its targets
are the same tokens moved one to the left. Both twins' datasets count and check their
windows here, so they always agree on how many there are.
"""

import numpy as np

from .validation import check_int_at_least

__all__ = ["as_token_ids", "check_window_args", "count_windows"]


def as_token_ids(token_ids) -> np.ndarray:
    """A read-only int64 copy of a 1-D sequence of token ids, so that windows can be views of it."""
    ids = np.asarray(token_ids)
    if ids.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)  # astype copies: the caller's array is never aliased
    ids.flags.writeable = False
    return ids


def check_window_args(n_tokens: int, max_length: int, stride: int) -> None:
    """Raise ValueError unless at least one window of ``max_length`` inputs (+1 target) fits."""
    check_int_at_least("max_length", max_length, 1)
    check_int_at_least("stride", stride, 1)
    if n_tokens < max_length + 1:
        raise ValueError(f"text is shorter than one window: {n_tokens} tokens, need at least "
                         f"max_length + 1 = {max_length + 1}")


def count_windows(n_tokens: int, max_length: int, stride: int) -> int:
    """Number of starts 0, stride, 2*stride, ... that leave room for max_length + 1 tokens."""
    return (n_tokens - max_length - 1) // stride + 1
