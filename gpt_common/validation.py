"""Checks at the public boundaries, shared by both packages so their errors read the same.

Framework-neutral: each package gathers the facts about its own array type
(shape, dtype, smallest and largest id) and hands them here; ``numpy_gpt.validation``
and ``torch_gpt.validation`` re-export this module. The rules (the README's "Bad input"):

- ids: any integer dtype (bool is not one), ids in [0, V); results always come back int64.
- masks: (B, T) of 0 and 1, as bool, integer or float alike; anything else is refused.
- numbers: one rule for every check, ``is_int`` and ``is_real``: a NumPy scalar is accepted wherever a Python
  number is (``np.int64(5)``, ``np.float32(0.8)``), and a bool is never a number (True as a count is a bug).
- seeds: None or an int in [0, 2**64), the range NumPy and torch both seed from unchanged.
- sizes: what a call would allocate is checked against the machine's memory first.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence

__all__ = [
    "check_token_ids", "check_int_at_least", "check_cache", "check_attention_mask", "check_generation",
    "check_left_padding", "check_sequence_length", "check_mask_dtype", "check_cache_layout", "check_float_dtype",
    "check_seed", "check_memory", "check_id_dtype", "check_attention_path", "check_kernel", "as_int", "is_int",
    "is_real", "MAX_SEED", "NonFiniteError",
]

MAX_SEED = 2**64  # exclusive: torch.Generator.manual_seed takes [0, 2**64), NumPy any int >= 0


class NonFiniteError(ValueError):
    """A NaN or an infinity where the numbers must be finite (logits, a loss, weights): a diverged run."""


def is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool (True as a count is a bug, not a 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A Python or NumPy real number (integer or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_int(name: str, value: object, minimum: int) -> int:
    """``value`` as a Python int, after checking it is an integer >= ``minimum``."""
    check_int_at_least(name, value, minimum)
    return int(value)


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
    check_id_dtype(dtype, is_integer)
    if len(shape) != 2:
        raise ValueError(f"token ids must have shape (B, T), got shape {tuple(shape)}")
    batch, seq_len = shape
    if batch < 1 or seq_len < 1:
        raise ValueError(f"token ids must be non-empty, got shape {tuple(shape)}")
    check_sequence_length(seq_len, context_length)
    if min_id < 0 or max_id >= vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size}), got min {min_id} and max {max_id}")


def check_id_dtype(dtype: str, is_integer: bool) -> None:
    """Token ids have an integer dtype, any width or sign (bool is not one)."""
    if not is_integer:
        raise ValueError(f"token ids must be integers, got dtype {dtype}")


def check_sequence_length(seq_len: int, context_length: int) -> None:
    """At most context_length tokens: the position table and the causal mask end there."""
    if seq_len > context_length:
        raise ValueError(f"sequence length {seq_len} exceeds context_length {context_length}")


def check_attention_path(attention: object, paths: Sequence[str]) -> None:
    """``attention`` names one of the package's causal attention paths (``MultiHeadAttention``'s ``attention``)."""
    if attention not in paths:
        raise ValueError(f"attention must be one of {', '.join(map(repr, paths))}, got {attention!r}")


def check_kernel(kernel: object, kernels: Sequence[str]) -> None:
    """``kernel`` names one of a module's paths (the torch twin's ``LayerNorm`` and ``GELU``: fused or written out)."""
    if kernel not in kernels:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, kernels))}, got {kernel!r}")


def check_int_at_least(name: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) and at least ``minimum``."""
    if not is_int(value) or value < minimum:
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


def check_attention_mask(shape: Sequence[int], expected: Sequence[int], is_binary: Callable[[], bool]) -> None:
    """An attention mask is (B, T_cached + T) of 1 (a real token) and 0 (padding).

    ``is_binary`` is asked only once the shape is right, so no fact is computed on a wrong array.
    """
    if tuple(shape) != tuple(expected):
        expected, shape = tuple(expected), tuple(shape)
        raise ValueError(f"attention_mask must have shape (B, cached + new tokens) = {expected}, got {shape}")
    if not is_binary():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")


def check_generation(
    prompt_shape: Sequence[int], context_length: int, vocab_size: int, max_new_tokens: object, eos_id: object,
    overflow: object,
) -> None:
    """Generation's own arguments; the prompt's ids are checked like any model input after this."""
    check_int_at_least("max_new_tokens", max_new_tokens, 0)
    if len(prompt_shape) == 2 and prompt_shape[1] > context_length:
        raise ValueError(f"the prompt has {prompt_shape[1]} tokens, more than context_length {context_length}")
    bad_eos = not is_int(eos_id) or not 0 <= eos_id < vocab_size
    if eos_id is not None and bad_eos:
        raise ValueError(f"eos_id must be None or an int in [0, {vocab_size}), got {eos_id!r}")
    if overflow not in ("slide", "stop"):
        raise ValueError(f"overflow must be 'slide' or 'stop', got {overflow!r}")


def check_left_padding(
    shape: Sequence[int], prompt_shape: Sequence[int], facts: Callable[[], tuple[bool, bool]]
) -> None:
    """A prompt's attention mask: its shape, 0/1 only, and every row some padding (0s) then its tokens (1s).

    ``facts`` gives (is_binary, is_left_padded), asked only once the shape is right.
    """
    if tuple(shape) != tuple(prompt_shape):
        raise ValueError(f"attention_mask must have the prompt's shape {tuple(prompt_shape)}, got {tuple(shape)}")
    is_binary, is_left_padded = facts()
    if not is_binary:
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    if not is_left_padded:
        raise ValueError("attention_mask must be left padding: each row 0s then 1s, ending in at least one 1")


def check_mask_dtype(dtype: str, is_number: bool) -> None:
    """A mask holds numbers: bool, integer or float 0/1 are all accepted, and mean the same."""
    if not is_number:
        raise ValueError(f"attention_mask must hold 0 and 1 as bool, integer or float, got dtype {dtype}")


def check_cache_layout(got: tuple, expected: tuple) -> None:
    """A KV cache is used only by a model of its shape: (layers, heads, head width, dtype, device) all equal."""
    if tuple(got) != tuple(expected):
        raise ValueError(f"the KV cache does not fit the model: it holds {_layout(got)}, "
                         f"the model needs {_layout(expected)}")


def _layout(layout: tuple) -> str:
    layers, heads, head_dim, dtype, device = layout
    return f"{layers} layers of {heads} heads x {head_dim} ({dtype} on {device})"


def check_float_dtype(name: str, dtype: str, is_float: bool) -> None:
    """Weights and caches are floating point: an integer model silently computes garbage."""
    if not is_float:
        raise ValueError(f"{name} must be a floating-point dtype (e.g. float32), got {dtype}")


def check_seed(name: str, seed: object) -> None:
    """A seed is None or an int in [0, 2**64): both NumPy and torch take exactly those, unchanged."""
    if seed is not None and (not is_int(seed) or not 0 <= seed < MAX_SEED):
        raise ValueError(f"{name} must be None or an int in [0, 2**64), got {seed!r}")


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating, what could never fit: more bytes than the machine's whole memory."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than this machine's "
                         f"{total / 2**30:,.1f} GiB of memory")
