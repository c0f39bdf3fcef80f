"""Text generation: greedy decoding without a cache, as the book first writes it, then with a KV cache and sampling.

``generate_text_simple`` re-runs the whole (cropped) sequence for every token.
``generate`` runs the prompt once to fill a ``KVCache`` and then feeds one token
per step; it samples (see ``sampling.py``), stops at an end-of-text id, and
takes left-padded batches with an attention mask, each row generated exactly
as it would be alone. Shapes: B batch, T tokens, V vocab_size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .kv_cache import KVCache
from .layers import as_rng
from .model import GPTModel, as_ids, as_mask, check_ids, is_binary_mask
from .sampling import SamplingParams, sample_next
from .validation import as_int, check_generation, check_left_padding, check_memory

__all__ = ["generate_text_simple", "generate", "generate_stream", "next_token_logits"]


def generate_text_simple(model: GPTModel, idx: np.ndarray, max_new_tokens: int, context_size: int) -> np.ndarray:
    """Append argmax_v p(v | last context_size tokens) to each row, max_new_tokens times.

    Recomputes the whole (cropped) sequence every step; call ``model.eval()``
    first, or dropout makes the choice random. Returns (B, T + max_new_tokens).
    """
    max_new_tokens = as_int("max_new_tokens", max_new_tokens, 0)
    context_size = as_int("context_size", context_size, 1)
    idx = np.asarray(idx)
    check_ids(idx[:, -context_size:] if idx.ndim == 2 else idx, model.cfg.vocab_size, model.cfg.context_length)
    check_tokens_memory(idx.shape, max_new_tokens)
    idx = idx.astype(np.int64)  # a new int64 array, never the caller's (even for 0 new tokens)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # (B, T) -> (B, min(T, context_size))
        logits = model(idx_cond)[:, -1, :]  # (B, V): only the last position predicts the next token
        idx_next = logits.argmax(axis=-1, keepdims=True)  # (B, 1), first index on ties in both packages
        idx = np.concatenate([idx, idx_next], axis=1)  # (B, T) -> (B, T + 1)
    return idx


def check_tokens_memory(prompt_shape, total_new: int) -> None:
    """The (B, T + n) int64 ids a generation returns must fit in memory (slide has no other bound on n)."""
    batch, prompt_len = prompt_shape
    check_memory(8 * batch * (prompt_len + total_new), f"max_new_tokens={total_new} (the (B, T + n) int64 token ids)")


def generate(
    model: GPTModel, idx: np.ndarray, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
    top_p: float | None = None, eos_id: int | None = None, rng=None, attention_mask: np.ndarray | None = None,
    use_cache: bool = True, overflow: str = "slide", context_size: int | None = None,
) -> np.ndarray:
    """The prompt (B, T) followed by up to max_new_tokens new tokens: (B, T + n).

    temperature 0 is greedy; otherwise top_k, then top_p filter softmax(logits / temperature)
    and ``rng`` (a NumPy Generator or a seed) supplies one uniform number per row per step.
    A row that produces ``eos_id`` repeats it; generation ends when every row has. At
    context_length tokens, ``overflow="stop"`` ends generation and ``"slide"`` keeps the
    last context_length tokens, recomputed in full each step (the tokens of
    ``generate_text_simple``, without the cache's speed). ``context_size`` (the book's argument)
    narrows that window below context_length. ``attention_mask`` marks left padding (0) before
    each row's tokens (1). Call ``model.eval()`` first.
    """
    idx = np.asarray(idx)
    steps = list(generate_stream(model, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                 eos_id=eos_id, rng=rng, attention_mask=attention_mask, use_cache=use_cache,
                                 overflow=overflow, context_size=context_size))
    new_tokens = np.stack(steps, axis=1) if steps else np.zeros((idx.shape[0], 0), dtype=np.int64)  # (B, n)
    return np.concatenate([idx.astype(np.int64), new_tokens], axis=1)  # (B, T + n), int64 whatever idx was


def generate_stream(
    model: GPTModel, idx: np.ndarray, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
    top_p: float | None = None, eos_id: int | None = None, rng=None, attention_mask: np.ndarray | None = None,
    use_cache: bool = True, overflow: str = "slide", context_size: int | None = None,
) -> Iterator[np.ndarray]:
    """``generate``, one step at a time: yields each step's (B,) new token ids. Arguments are checked now."""
    params = SamplingParams(temperature, top_k, top_p)
    idx = np.asarray(idx)
    check_generation(idx.shape, model.cfg.context_length, model.cfg.vocab_size, max_new_tokens, eos_id, overflow)
    idx = as_ids(idx, model.cfg.vocab_size, model.cfg.context_length)
    if attention_mask is not None:
        attention_mask = as_mask(attention_mask)
        check_left_padding(attention_mask.shape, idx.shape, lambda: _left_padding_facts(attention_mask))
    window = min(as_int("context_size", model.cfg.context_length if context_size is None else context_size, 1),
                 model.cfg.context_length)
    max_new_tokens = as_int("max_new_tokens", max_new_tokens, 0)
    check_tokens_memory(idx.shape, _total(idx.shape[1], max_new_tokens, overflow, window) - idx.shape[1])
    eos_id = None if eos_id is None else int(eos_id)
    return _steps(model, idx, max_new_tokens, params, eos_id, as_rng(rng, "rng"), attention_mask, use_cache, overflow,
                  window)


def _left_padding_facts(attention_mask: np.ndarray) -> tuple[bool, bool]:
    """Whether the mask holds only 0 and 1, and whether each row is 0s then 1s ending in a 1."""
    is_binary = is_binary_mask(attention_mask)
    rises = np.diff(attention_mask.astype(np.int64), axis=1)  # (B, T - 1): +1 where a row's tokens start
    return is_binary, is_binary and bool((rises >= 0).all() and attention_mask[:, -1].all())


def _total(prompt_len: int, max_new_tokens: int, overflow: str, window: int) -> int:
    """The sequence's final length: with ``overflow="stop"`` it never outgrows the window."""
    total = prompt_len + max_new_tokens
    return max(prompt_len, min(total, window)) if overflow == "stop" else total


def _steps(model, idx, max_new_tokens, params, eos_id, rng, attention_mask, use_cache, overflow, window) -> Iterator:
    batch, prompt_len = idx.shape
    total = _total(prompt_len, max_new_tokens, overflow, window)
    tokens = np.zeros((batch, total), dtype=np.int64)  # (B, T_total), filled left to right
    tokens[:, :prompt_len] = idx
    mask = None if attention_mask is None else np.ones((batch, total), dtype=np.int64)  # new tokens are real
    if mask is not None:
        mask[:, :prompt_len] = attention_mask
    max_len = min(total, window)
    cache = KVCache(model.cfg, batch, max_len, dtype=model.tok_emb.weight.dtype) if use_cache else None
    finished = np.zeros(batch, dtype=bool)
    for length in range(prompt_len, total):
        logits = next_token_logits(model, tokens, mask, length, cache, window)  # (B, V)
        next_ids = sample_next(logits, params, rng)  # (B,)
        if eos_id is not None:
            next_ids = np.where(finished, eos_id, next_ids)  # a finished row repeats eos_id
            finished |= next_ids == eos_id
        tokens[:, length] = next_ids
        yield next_ids
        if finished.all():
            return


def next_token_logits(
    model: GPTModel, tokens: np.ndarray, mask: np.ndarray | None, length: int, cache: KVCache | None,
    window: int | None = None,
) -> np.ndarray:
    """(B, V) logits for the token after tokens[:, :length]: feed the cache what it lacks, or recompute the window.

    ``window`` (default: context_length) is how many of the last tokens the model sees. ``tokens`` holds
    int64 ids in [0, V), a checked prompt and the samples after it, so the model need not check them again.
    """
    window = model.cfg.context_length if window is None else window
    if cache is None or length > window:
        start = max(0, length - window)  # past the window, it slides
        window_mask = None if mask is None else mask[:, start:length]
        return model.forward_checked_ids(tokens[:, start:length], attention_mask=window_mask)[:, -1]
    new_mask = None if mask is None else mask[:, :length]  # covers the cached tokens and the new ones
    new_ids = tokens[:, cache.length : length]  # the prompt, then one token per step
    return model.forward_checked_ids(new_ids, cache=cache, attention_mask=new_mask)[:, -1]
