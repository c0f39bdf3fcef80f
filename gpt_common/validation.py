"""Checks at the public boundaries, shared by both packages so their errors read the same.

Framework-neutral: each package gathers the facts about its own array type
(shape, dtype, smallest and largest id) and hands them here; ``numpy_gpt.validation``
and ``torch_gpt.validation`` re-export this module.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "check_token_ids", "check_int_at_least", "check_cache", "check_attention_mask", "check_generation",
    "check_left_padding", "check_sequence_length",
]


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
    check_sequence_length(seq_len, context_length)
    if min_id < 0 or max_id >= vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size}), got min {min_id} and max {max_id}")


def check_sequence_length(seq_len: int, context_length: int) -> None:
    """At most context_length tokens: the position table and the causal mask end there."""
    if seq_len > context_length:
        raise ValueError(f"sequence length {seq_len} exceeds context_length {context_length}")


def check_int_at_least(name: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_cache(batch: int, seq_len: int, cached: int, cache_batch: int, capacity: int, context_length: int) -> None:
    """A KV cache fits the batch: same number of rows, and room for ``seq_len`` more tokens."""
    if cache_batch != batch:
        raise ValueError(f"the KV cache holds {cache_batch} rows, got a batch of {batch}")
    if cached + seq_len > context_length:
        total = f"{cached + seq_len} ({cached} cached + {seq_len} new)"
        raise ValueError(f"sequence length {total} exceeds context_length {context_length}")
    if cached + seq_len > capacity:
        raise ValueError(f"the KV cache has room for {capacity} tokens, got {cached} cached + {seq_len} new")


def check_attention_mask(shape: Sequence[int], expected: Sequence[int], is_binary: bool) -> None:
    """An attention mask is (B, T_cached + T) of 1 (a real token) and 0 (padding)."""
    if tuple(shape) != tuple(expected):
        expected, shape = tuple(expected), tuple(shape)
        raise ValueError(f"attention_mask must have shape (B, cached + new tokens) = {expected}, got {shape}")
    if not is_binary:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")


def check_generation(
    prompt_shape: Sequence[int], context_length: int, vocab_size: int, max_new_tokens: object, eos_id: object,
    overflow: object,
) -> None:
    """Generation's own arguments; the prompt's ids are checked like any model input after this."""
    check_int_at_least("max_new_tokens", max_new_tokens, 0)
    if len(prompt_shape) == 2 and prompt_shape[1] > context_length:
        raise ValueError(f"the prompt has {prompt_shape[1]} tokens, more than context_length {context_length}")
    bad_eos = isinstance(eos_id, bool) or not isinstance(eos_id, int) or not 0 <= eos_id < vocab_size
    if eos_id is not None and bad_eos:
        raise ValueError(f"eos_id must be None or an int in [0, {vocab_size}), got {eos_id!r}")
    if overflow not in ("slide", "stop"):
        raise ValueError(f"overflow must be 'slide' or 'stop', got {overflow!r}")


def check_left_padding(
    shape: Sequence[int], prompt_shape: Sequence[int], is_binary: bool, is_left_padded: bool
) -> None:
    """A prompt's attention mask: its shape, 0/1 only, and every row some padding (0s) then its tokens (1s)."""
    if tuple(shape) != tuple(prompt_shape):
        raise ValueError(f"attention_mask must have the prompt's shape {tuple(prompt_shape)}, got {tuple(shape)}")
    if not is_binary:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    if not is_left_padded:
        raise ValueError("attention_mask must be left padding: each row 0s then 1s, ending in at least one 1")
