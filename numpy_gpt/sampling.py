"""Choosing the next token from the logits: greedy, temperature, top-k, top-p (nucleus).

Both packages draw from one framework-neutral source: one uniform number per
row per step from a NumPy ``Generator`` (``gpt_common.sampling.draw_uniforms``), turned into a
token by inverse-CDF sampling over the processed probabilities in vocabulary
order. The torch twin consumes exactly the same numbers, so with the same
seed the two packages choose the same tokens (up to float rounding at a CDF
boundary, which float64 makes vanishingly rare). Sampling is done in float64.

``SamplingParams`` (validated settings) and the draws are framework-neutral (``gpt_common.sampling``),
imported by both twins. Shapes: B batch, V vocab_size.
"""

from __future__ import annotations

import numpy as np

from gpt_common.sampling import SamplingParams, draw_uniforms

from .activations import softmax

__all__ = ["SamplingParams", "top_k_filter", "top_p_filter", "sampling_probs", "inverse_cdf", "sample_next"]


def top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """Logits below the k-th largest of their row become -inf (ties with the k-th are kept)."""
    kth = np.partition(logits, -top_k, axis=-1)[:, -top_k, None]  # (B, V) -> (B, 1)
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the most probable tokens until their mass reaches top_p (Holtzman et al., 2020); zero the rest.

    A token survives when the tokens ranked above it hold less than top_p, so the top one always does.
    """
    order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V), most probable first, ties by id
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    mass_above = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V)
    drop = np.empty_like(order, dtype=bool)
    np.put_along_axis(drop, order, mass_above >= top_p, axis=-1)  # back to vocabulary order
    return np.where(drop, 0.0, probs)


def sampling_probs(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """softmax(logits / temperature) after top-k, then top-p: (B, V) float64, each row summing to at most 1."""
    logits = logits.astype(np.float64)
    # Shift by the row max before dividing, so no temperature, however small, overflows to inf - inf = NaN.
    logits = (logits - logits.max(axis=-1, keepdims=True)) / params.temperature
    if params.top_k is not None and params.top_k < logits.shape[-1]:
        logits = top_k_filter(logits, params.top_k)
    probs = softmax(logits, axis=-1)
    if params.top_p is not None and params.top_p < 1.0:
        probs = top_p_filter(probs, params.top_p)
    return probs


def inverse_cdf(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """The token i with cdf[i-1] <= u * total < cdf[i] per row: a draw from probs (unnormalised is fine)."""
    cdf = np.cumsum(probs, axis=-1)  # (B, V)
    total = cdf[:, -1:]  # (B, 1)
    # Strictly below the total, so a token of probability 0 can never be chosen (u * total may round up).
    targets = np.minimum(uniforms[:, None] * total, np.nextafter(total, 0.0))  # (B, 1)
    return (cdf <= targets).sum(axis=-1)  # (B,)


def sample_next(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> np.ndarray:
    """(B, V) logits -> (B,) int64 token ids; sampling consumes draw_uniforms(rng, B), greedy consumes nothing."""
    if params.greedy:
        return logits.argmax(axis=-1)  # first index on ties in both packages
    return inverse_cdf(sampling_probs(logits, params), draw_uniforms(rng, logits.shape[0]))
