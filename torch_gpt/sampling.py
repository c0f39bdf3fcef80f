"""Choosing the next token from the logits: greedy, temperature, top-k, top-p (nucleus).

Both packages draw from one framework-neutral source: one uniform number per
row per step from a NumPy ``Generator`` (``gpt_common.sampling.draw_uniforms``), turned into a
token by inverse-CDF sampling over the processed probabilities in vocabulary
order. This twin converts those same numbers to a tensor, so with the same
seed the two packages choose the same tokens (up to float rounding at a CDF
boundary, which float64 makes vanishingly rare). Sampling is done in float64.

``SamplingParams`` and the draws are framework-neutral, defined in ``gpt_common.sampling``.
Shapes: B batch, V vocab_size.
"""

from __future__ import annotations

import numpy as np
import torch

from gpt_common.sampling import SamplingParams, draw_uniforms

from .activations import softmax

__all__ = ["SamplingParams", "top_k_filter", "top_p_filter", "sampling_probs", "inverse_cdf", "sample_next"]


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Logits below the k-th largest of their row become -inf (ties with the k-th are kept)."""
    kth = torch.topk(logits, top_k, dim=-1).values[:, -1, None]  # (B, V) -> (B, 1)
    return torch.where(logits < kth, -torch.inf, logits)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most probable tokens until their mass reaches top_p (Holtzman et al., 2020); zero the rest.

    A token survives when the tokens ranked above it hold less than top_p, so the top one always does.
    """
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)  # (B, V), ties by id
    mass_above = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # (B, V)
    drop = torch.empty_like(order, dtype=torch.bool)
    drop.scatter_(-1, order, mass_above >= top_p)  # back to vocabulary order
    return torch.where(drop, 0.0, probs)


def sampling_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """softmax(logits / temperature) after top-k, then top-p: (B, V) float64, each row summing to at most 1."""
    logits = logits.to(torch.float64)
    # Shift by the row max before dividing, so no temperature, however small, overflows to inf - inf = NaN.
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / params.temperature
    if params.top_k is not None and params.top_k < logits.shape[-1]:
        logits = top_k_filter(logits, params.top_k)
    probs = softmax(logits, dim=-1)
    if params.top_p is not None and params.top_p < 1.0:
        probs = top_p_filter(probs, params.top_p)
    return probs


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The token i with cdf[i-1] <= u * total < cdf[i] per row: a draw from probs (unnormalised is fine)."""
    cdf = torch.cumsum(probs, dim=-1)  # (B, V)
    total = cdf[:, -1:]  # (B, 1)
    # Strictly below the total, so a token of probability 0 can never be chosen (u * total may round up).
    targets = torch.minimum(uniforms[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))  # (B, 1)
    return (cdf <= targets).sum(dim=-1)  # (B,)


def sample_next(logits: torch.Tensor, params: SamplingParams, rng: np.random.Generator) -> torch.Tensor:
    """(B, V) logits -> (B,) int64 token ids; sampling consumes draw_uniforms(rng, B), greedy consumes nothing."""
    if params.greedy:
        return logits.argmax(dim=-1)  # first index on ties in both packages
    draws = torch.from_numpy(draw_uniforms(rng, logits.shape[0])).to(logits.device)  # the NumPy draws, shared
    return inverse_cdf(sampling_probs(logits, params), draws)
