"""Attention, built up step by step as in the seed (Vaswani et al., "Attention Is All You Need", 2017).

1. ``SimplifiedSelfAttention``: no weights, scores are plain dot products.
2. ``SelfAttention``: trainable query/key/value projections, scaled scores.
3. ``CausalAttention``: a token may only attend to itself and earlier tokens; dropout on the weights.
4. ``MultiHeadAttentionWrapper``: several ``CausalAttention`` heads side by side, concatenated.
5. ``MultiHeadAttention``: the same computed with one projection split into heads, plus an output projection.
   Given a ``LayerCache`` it also appends its keys and values there and attends over all cached ones, so
   generation can feed one new token per step (see ``kv_cache.py``).

Shapes: B batch, T tokens, C = d_in (or emb_dim), H heads, D = d_out / H.
"""

import math

import torch

from .activations import softmax
from .kv_cache import LayerCache
from .layers import Dropout, Linear, Module, ModuleList

__all__ = [
    "scaled_attention_weights",
    "causal_mask",
    "SimplifiedSelfAttention",
    "SelfAttention",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
]


def scaled_attention_weights(queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(D)), with the positions where ``mask`` is True set to -inf first.

    Scaling by sqrt(D) keeps the scores' variance near 1 so softmax does not saturate.
    """
    queries = queries / math.sqrt(keys.shape[-1])  # scale the (T, D) queries: T / D times less work than the scores
    attn_scores = queries @ keys.transpose(-1, -2)  # (..., T, D) @ (..., D, T) -> (..., T, T)
    if mask is not None:
        attn_scores.masked_fill_(mask, -torch.inf)  # masked: weight exactly 0 after softmax
    return softmax(attn_scores, dim=-1)  # rows sum to 1; a new tensor, since autograd forbids out= while recording


def causal_mask(context_length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """True above the diagonal: the future positions that token i must not attend to."""
    ones = torch.ones(context_length, context_length, dtype=torch.bool, device=device)
    return torch.triu(ones, diagonal=1)  # (T_max, T_max)


class SimplifiedSelfAttention(Module):
    """context_i = sum_j softmax_j(x_i . x_j) x_j: attention with no trainable weights and no scaling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn_scores = x @ x.transpose(-1, -2)  # (B, T, C) @ (B, C, T) -> (B, T, T)
        attn_weights = softmax(attn_scores, dim=-1)  # (B, T, T)
        context_vec = attn_weights @ x  # (B, T, T) @ (B, T, C) -> (B, T, C)
        return context_vec


class SelfAttention(Module):
    """Q, K, V = x W_q^T, x W_k^T, x W_v^T; context = softmax(Q K^T / sqrt(d_out)) V."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.W_query = Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = Linear(d_in, d_out, bias=qkv_bias)

    def attention_weights(
        self, queries: torch.Tensor, keys: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each row of the result is a probability distribution over the keys (none where ``mask`` is True)."""
        return scaled_attention_weights(queries, keys, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = self.W_query(x)  # (B, T, C) -> (B, T, d_out)
        keys = self.W_key(x)  # (B, T, C) -> (B, T, d_out)
        values = self.W_value(x)  # (B, T, C) -> (B, T, d_out)
        attn_weights = self.attention_weights(queries, keys)  # (B, T, T)
        context_vec = attn_weights @ values  # (B, T, T) @ (B, T, d_out) -> (B, T, d_out)
        return context_vec


class CausalAttention(SelfAttention):
    """Self-attention where token i sees only tokens j <= i (future scores are -inf), with dropout on the weights."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False,
    ):
        super().__init__(d_in, d_out, qkv_bias)
        self.dropout = Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def attention_weights(
        self, queries: torch.Tensor, keys: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``mask`` (True = hidden) replaces the causal one, e.g. to hide padding as well."""
        if mask is None:
            num_queries, num_keys = queries.shape[-2], keys.shape[-2]
            # The queries are the last positions of the keys' (all of them, unless earlier keys come from a cache).
            mask = self.mask[num_keys - num_queries : num_keys, :num_keys]
        attn_weights = scaled_attention_weights(queries, keys, mask)
        return self.dropout(attn_weights)  # (..., T, T_keys)


class MultiHeadAttentionWrapper(Module):
    """num_heads independent ``CausalAttention`` heads run side by side; outputs concatenated to num_heads * d_out."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False,
    ):
        super().__init__()
        self.heads = ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)  # H x (B, T, d_out) -> (B, T, H * d_out)


class MultiHeadAttention(CausalAttention):
    """The wrapper's computation with one d_out-wide projection split into H heads of D = d_out / H, then out_proj."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False,
    ):
        if num_heads < 1 or d_out % num_heads != 0:
            raise ValueError(f"d_out must be divisible by num_heads, got d_out={d_out}, num_heads={num_heads}")
        super().__init__(d_in, d_out, context_length, dropout, qkv_bias)
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.out_proj = Linear(d_out, d_out)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, _ = x.shape
        x = x.view(batch, num_tokens, self.num_heads, self.head_dim)  # (B, T, C) -> (B, T, H, D)
        return x.transpose(1, 2)  # (B, T, H, D) -> (B, H, T, D)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, num_tokens, _ = x.shape
        return x.transpose(1, 2).reshape(batch, num_tokens, self.d_out)  # (B, H, T, D) -> (B, T, C)

    def forward(
        self, x: torch.Tensor, *, cache: LayerCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``cache`` holds the keys and values of earlier tokens (and receives these); ``mask`` (True = hidden)
        replaces the causal mask, e.g. ``(B, 1, T, T_keys)`` to hide padding too."""
        queries = self.split_heads(self.W_query(x))  # (B, T, C) -> (B, H, T, D)
        keys = self.split_heads(self.W_key(x))  # (B, T, C) -> (B, H, T, D)
        values = self.split_heads(self.W_value(x))  # (B, T, C) -> (B, H, T, D)
        if cache is not None:
            keys, values = cache.append(keys, values)  # (B, H, T, D) -> (B, H, T_cached + T, D)
        attn_weights = self.attention_weights(queries, keys, mask=mask)  # (B, H, T, T_keys)
        context_vec = attn_weights @ values  # (B, H, T, T_keys) @ (B, H, T_keys, D) -> (B, H, T, D)
        context_vec = self.merge_heads(context_vec)  # (B, H, T, D) -> (B, T, C)
        return self.out_proj(context_vec)  # (B, T, C) -> (B, T, C)
