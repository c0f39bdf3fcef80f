"""How good a model is on a text: mean loss, perplexity and bits per byte, over a sliding window.

With context T and stride S <= T, window k reads inputs ``ids[kS : kS + T]`` and predicts the
next token at each position, but counts only the targets that no earlier window counted: the first
window counts all T, each later one its last S (Hugging Face's perplexity guide,
https://huggingface.co/docs/transformers/perplexity). Every token after the first is predicted once,
with at least T - S tokens of context (S = T gives disjoint windows, as training evaluates).

- mean loss  L = (1/N) sum_i -ln p(x_i | context)                      (nats per token)
- perplexity = exp(L)
- bits per byte = (sum_i -ln p(x_i | context)) / (ln 2 * bytes of the N tokens' text), which does not
  depend on the tokenizer (nanochat reports it for that reason); special tokens add no bytes.

Framework-neutral: the caller hands in ``batch_loss(inputs, targets) -> mean loss over the targets not
equal to ``IGNORE``, each twin's own ``cross_entropy``, so NumPy and torch evaluate the same windows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable

import numpy as np

from .loss_validation import DEFAULT_IGNORE_INDEX as IGNORE
from .validation import check_int_at_least

__all__ = ["Window", "sliding_windows", "EvalResult", "evaluate_tokens", "loss_figures", "gpt2_byte_lengths",
           "token_byte_lengths", "bits_per_byte", "IGNORE"]


@dataclasses.dataclass(frozen=True)
class Window:
    """Inputs ``ids[begin:end]``, targets ``ids[begin + 1:end + 1]``, of which those at index >= ``counted_from``
    (an absolute token index) count."""

    begin: int
    end: int
    counted_from: int


def sliding_windows(num_tokens: int, context_length: int, stride: int) -> list[Window]:
    """The windows that predict tokens 1 .. num_tokens - 1 once each, with stride ``stride``."""
    check_int_at_least("context_length", context_length, 1)
    check_int_at_least("stride", stride, 1)
    if stride > context_length:
        raise ValueError(f"stride {stride} is larger than the context length {context_length}: "
                         "tokens between the windows would never be evaluated")
    if num_tokens < 2:
        raise ValueError(f"{num_tokens} token(s): too few to evaluate (one input and its next token at least)")
    windows, counted, begin = [], 1, 0
    while counted < num_tokens:
        end = min(begin + context_length, num_tokens - 1)
        windows.append(Window(begin, end, counted))
        counted, begin = end + 1, begin + stride
    return windows


def bits_per_byte(loss_sum: float, num_bytes: int) -> float:
    """Total loss in nats over ln 2 and the bytes: the text's cost in bits per byte."""
    return loss_sum / (math.log(2.0) * num_bytes) if num_bytes else float("nan")


def loss_figures(loss: float, tokens: int, num_bytes: int) -> dict:
    """A mean loss over ``tokens`` tokens of ``num_bytes`` bytes, as perplexity and bits per byte."""
    return {"perplexity": math.exp(loss), "bits_per_byte": bits_per_byte(loss * tokens, num_bytes)}


@functools.cache
def gpt2_byte_lengths() -> np.ndarray:
    """Bytes of each GPT-2 token (the bundled ranks, sha256 checked); <|endoftext|> has 0."""
    from .bpe import load_ranks
    from .tokenizer import GPT2_RANKS_FILE, GPT2_RANKS_SHA256

    ranks = load_ranks(GPT2_RANKS_FILE, GPT2_RANKS_SHA256)
    lengths = token_byte_lengths(ranks, len(ranks) + 1)
    lengths.flags.writeable = False
    return lengths


def token_byte_lengths(ranks: dict[bytes, int], n_vocab: int) -> np.ndarray:
    """(n_vocab,) bytes of each token's text; ids without ranks (the special tokens) have 0."""
    lengths = np.zeros(n_vocab, dtype=np.int64)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    return lengths


@dataclasses.dataclass(frozen=True)
class EvalResult:
    loss: float
    perplexity: float
    bits_per_byte: float
    tokens: int
    bytes: int
    seconds: float
    tokens_per_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def evaluate_tokens(ids, context_length: int, stride: int, batch_loss: Callable, byte_lengths: np.ndarray,
                    batch_size: int = 8) -> EvalResult:
    """Loss, perplexity and bits per byte of ``ids`` (an int64 array or a shard stream) under ``batch_loss``."""
    check_int_at_least("batch_size", batch_size, 1)
    windows = sliding_windows(len(ids), context_length, stride)
    started, loss_sum, tokens, num_bytes = time.perf_counter(), 0.0, 0, 0
    for group in _same_length_batches(windows, batch_size):
        inputs, targets = _batch(ids, group)
        counted = targets != IGNORE
        count = int(counted.sum())
        loss_sum += float(batch_loss(inputs, targets)) * count
        tokens += count
        num_bytes += int(byte_lengths[targets[counted]].sum())
    seconds = time.perf_counter() - started
    loss = loss_sum / tokens
    figures = loss_figures(loss, tokens, num_bytes)
    return EvalResult(loss, figures["perplexity"], figures["bits_per_byte"], tokens, num_bytes, seconds,
                      tokens / seconds if seconds > 0 else float("inf"))


def _same_length_batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive windows of one length, at most ``batch_size`` per batch (only the last window is shorter)."""
    batches: list[list[Window]] = []
    for window in windows:
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and last[0].end - last[0].begin == window.end - window.begin:
            last.append(window)
        else:
            batches.append([window])
    return batches


def _batch(ids, group: list[Window]) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) inputs and (B, T) targets, the targets already counted by an earlier window set to ``IGNORE``."""
    length = group[0].end - group[0].begin
    rows = np.stack([np.asarray(ids[w.begin : w.end + 1], dtype=np.int64) for w in group])  # (B, T + 1)
    positions = np.array([[w.begin + 1] for w in group]) + np.arange(length)  # (B, T) absolute target index
    counted_from = np.array([[w.counted_from] for w in group])  # (B, 1)
    targets = np.where(positions >= counted_from, rows[:, 1:], IGNORE)
    return rows[:, :-1], targets

