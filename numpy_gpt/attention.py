"""Attention, built up step by step as in the book (Vaswani et al., "Attention Is All You Need", 2017).

1. ``SimplifiedSelfAttention``: no weights, scores are plain dot products.
2. ``SelfAttention``: trainable query/key/value projections, scaled scores.
3. ``CausalAttention``: a token may only attend to itself and earlier tokens; dropout on the weights.
4. ``MultiHeadAttentionWrapper``: several ``CausalAttention`` heads side by side, concatenated.
5. ``MultiHeadAttention``: the same computed with one projection split into heads, plus an output projection.
   Given a ``LayerCache`` it also appends its keys and values there and attends over all cached ones, so
   generation can feed one new token per step (see ``kv_cache.py``).

What each forward keeps for its backward is a named record (``FullAttentionSaved``, ``TiledAttentionSaved``, ...),
kept only inside ``keeping_activations()``.

Shapes: B batch, T tokens, C = d_in (or emb_dim), H heads, D = d_out / H.
"""

import math
from typing import NamedTuple

import numpy as np

from .activations import softmax, softmax_backward
from .kv_cache import LayerCache
from .layers import Dropout, Linear, Module, ModuleList, as_rng, map_rows
from .validation import check_attention_path, check_sequence_length

__all__ = [
    "scaled_attention_weights",
    "scaled_attention_weights_backward",
    "causal_mask",
    "SimplifiedSelfAttention",
    "SelfAttention",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
    "ATTENTION_PATHS",
    "DEFAULT_TILE_SIZE",
    "causal_tiles",
    "tiled_causal_attention",
    "tiled_causal_attention_backward",
    "SimplifiedAttentionSaved",
    "FullAttentionSaved",
    "SoftmaxSaved",
    "TiledAttentionSaved",
    "MultiHeadAttentionSaved",
]


def scaled_attention_weights(
    queries: np.ndarray, keys: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """softmax(Q K^T / sqrt(D)), with the positions where ``mask`` is True set to -inf first.

    Scaling by sqrt(D) keeps the scores' variance near 1 so softmax does not saturate.
    """
    queries = queries / math.sqrt(keys.shape[-1])  # scale the (T, D) queries: T / D times less work than the scores
    attn_scores = queries @ keys.swapaxes(-1, -2)  # (..., T, D) @ (..., D, T) -> (..., T, T)
    if mask is not None:
        np.copyto(attn_scores, -np.inf, where=mask)  # masked: weight exactly 0 after softmax
    return softmax(attn_scores, axis=-1, out=attn_scores)  # rows sum to 1; in place on our own fresh scores


def scaled_attention_weights_backward(
    d_weights: np.ndarray, queries: np.ndarray, keys: np.ndarray, attn_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dQ, dK) for W = softmax(S), S = Q K^T / sqrt(D): dS = W * (dW - rowsum(dW * W)), dQ = dS K / sqrt(D),
    dK = dS^T Q / sqrt(D).

    Derivation: each row of W is a softmax of the same row of S, so dS is the
    softmax backward row by row (``softmax_backward``); masked scores had weight 0,
    so they get dS = 0 and no gradient leaks from the future. S_ij = q_i . k_j / sqrt(D)
    is bilinear: dq_i = sum_j dS_ij k_j / sqrt(D) and dk_j = sum_i dS_ij q_i / sqrt(D).
    """
    d_scores = softmax_backward(d_weights, attn_weights)  # (..., T, T_keys)
    scale = 1.0 / math.sqrt(keys.shape[-1])  # scale the (T, D) results, not the (T, T) scores, as the forward does
    d_queries = d_scores @ keys  # (..., T, T_keys) @ (..., T_keys, D) -> (..., T, D)
    d_queries *= scale
    d_keys = d_scores.swapaxes(-1, -2) @ queries  # (..., T_keys, T) @ (..., T, D) -> (..., T_keys, D)
    d_keys *= scale
    return d_queries, d_keys


def causal_mask(context_length: int) -> np.ndarray:
    """True above the diagonal: the future positions that token i must not attend to."""
    return np.triu(np.ones((context_length, context_length), dtype=bool), k=1)  # (T_max, T_max)


class SimplifiedAttentionSaved(NamedTuple):
    """What ``SimplifiedSelfAttention``'s backward needs: its input and the attention weights."""

    x: np.ndarray
    attn_weights: np.ndarray


class FullAttentionSaved(NamedTuple):
    """The full path's record: Q, K, V and the (..., T, T_keys) weights that multiplied V (after any dropout)."""

    queries: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    attn_weights: np.ndarray


class SoftmaxSaved(NamedTuple):
    """``CausalAttention.attention_weights``'s record: the weights before dropout, which softmax's backward needs."""

    attn_weights: np.ndarray


class SimplifiedSelfAttention(Module):
    """context_i = sum_j softmax_j(x_i . x_j) x_j: attention with no trainable weights and no scaling."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        attn_scores = x @ x.swapaxes(-1, -2)  # (B, T, C) @ (B, C, T) -> (B, T, T)
        attn_weights = softmax(attn_scores, axis=-1)  # (B, T, T)
        context_vec = attn_weights @ x  # (B, T, T) @ (B, T, C) -> (B, T, C)
        self.save_for_backward(SimplifiedAttentionSaved(x, attn_weights))
        return context_vec

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """x is used three times (queries, keys, values): dx = W^T dy + dS x + dS^T x, dS the softmax backward
        of dW = dy x^T."""
        x, attn_weights = self.saved_for_backward(SimplifiedAttentionSaved)
        d_weights = dout @ x.swapaxes(-1, -2)  # (B, T, C) @ (B, C, T) -> (B, T, T)
        d_scores = softmax_backward(d_weights, attn_weights)  # (B, T, T)
        dx = attn_weights.swapaxes(-1, -2) @ dout  # as the values: (B, T, T) @ (B, T, C) -> (B, T, C)
        dx += d_scores @ x  # as the queries
        dx += d_scores.swapaxes(-1, -2) @ x  # as the keys
        return dx


class SelfAttention(Module):
    """Q, K, V = x W_q^T, x W_k^T, x W_v^T; context = softmax(Q K^T / sqrt(d_out)) V."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False, *, rng=None, dtype=np.float32, init=True):
        super().__init__()
        rng = as_rng(rng)
        self.d_out = d_out
        self.W_query = Linear(d_in, d_out, bias=qkv_bias, rng=rng, dtype=dtype, init=init)
        self.W_key = Linear(d_in, d_out, bias=qkv_bias, rng=rng, dtype=dtype, init=init)
        self.W_value = Linear(d_in, d_out, bias=qkv_bias, rng=rng, dtype=dtype, init=init)

    def attention_weights(
        self, queries: np.ndarray, keys: np.ndarray, *, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Each row of the result is a probability distribution over the keys (none where ``mask`` is True)."""
        return scaled_attention_weights(queries, keys, mask)

    def forward(self, x: np.ndarray) -> np.ndarray:
        queries = self.W_query(x)  # (B, T, C) -> (B, T, d_out)
        keys = self.W_key(x)  # (B, T, C) -> (B, T, d_out)
        values = self.W_value(x)  # (B, T, C) -> (B, T, d_out)
        attn_weights = self.attention_weights(queries, keys)  # (B, T, T)
        context_vec = attn_weights @ values  # (B, T, T) @ (B, T, d_out) -> (B, T, d_out)
        self.save_for_backward(FullAttentionSaved(queries, keys, values, attn_weights))
        return context_vec

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """x feeds all three projections, so dx = dQ W_q + dK W_k + dV W_v (each from its Linear's backward)."""
        d_queries, d_keys, d_values = self.attention_backward(dout, *self.saved_for_backward(FullAttentionSaved))
        return self.W_query.backward(d_queries) + self.W_key.backward(d_keys) + self.W_value.backward(d_values)

    def attention_backward(
        self, d_context: np.ndarray, queries: np.ndarray, keys: np.ndarray, values: np.ndarray, attn_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dQ, dK, dV) for context = W V: dW = d_context V^T and dV = W^T d_context, then back through W."""
        d_weights = d_context @ values.swapaxes(-1, -2)  # (..., T, D) @ (..., D, T_keys) -> (..., T, T_keys)
        d_values = attn_weights.swapaxes(-1, -2) @ d_context  # (..., T_keys, T) @ (..., T, D) -> (..., T_keys, D)
        d_queries, d_keys = self.attention_weights_backward(d_weights, queries, keys, attn_weights)
        return d_queries, d_keys, d_values

    def attention_weights_backward(
        self, d_weights: np.ndarray, queries: np.ndarray, keys: np.ndarray, attn_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(dQ, dK) from the gradient of the weights ``attention_weights`` returned."""
        return scaled_attention_weights_backward(d_weights, queries, keys, attn_weights)


class CausalAttention(SelfAttention):
    """Self-attention where token i sees only tokens j <= i (future scores are -inf), with dropout on the weights."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False,
        *, rng=None, dtype=np.float32, init=True,
    ):
        rng = as_rng(rng)
        super().__init__(d_in, d_out, qkv_bias, rng=rng, dtype=dtype, init=init)
        self.dropout = Dropout(dropout, rng=rng)
        self.register_buffer("mask", causal_mask(context_length))

    def attention_weights(
        self, queries: np.ndarray, keys: np.ndarray, *, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """``mask`` (True = hidden) replaces the causal one, e.g. to hide padding as well."""
        if mask is None:
            num_queries, num_keys = queries.shape[-2], keys.shape[-2]
            check_sequence_length(num_keys, self.mask.shape[-1])  # a slice past the mask would silently shrink it
            # The queries are the last positions of the keys' (all of them, unless earlier keys come from a cache).
            mask = self.mask[num_keys - num_queries : num_keys, :num_keys]
        attn_weights = scaled_attention_weights(queries, keys, mask)
        self.save_for_backward(SoftmaxSaved(attn_weights))
        return self.dropout(attn_weights)  # (..., T, T_keys)

    def attention_weights_backward(
        self, d_weights: np.ndarray, queries: np.ndarray, keys: np.ndarray, attn_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Back through the dropout (its own mask), then the softmax with the weights kept before dropout."""
        undropped_weights = self.saved_for_backward(SoftmaxSaved).attn_weights
        d_weights = self.dropout.backward(d_weights)
        return scaled_attention_weights_backward(d_weights, queries, keys, undropped_weights)


class MultiHeadAttentionWrapper(Module):
    """num_heads independent ``CausalAttention`` heads run side by side; outputs concatenated to num_heads * d_out."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False,
        *, rng=None, dtype=np.float32, init=True,
    ):
        super().__init__()
        rng = as_rng(rng)
        self.heads = ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias, rng=rng, dtype=dtype, init=init)
             for _ in range(num_heads)]
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([head(x) for head in self.heads], axis=-1)  # H x (B, T, d_out) -> (B, T, H * d_out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Each head gets its slice of dy; x fed every head, so dx is the sum of the heads' dx."""
        d_heads = np.split(dout, len(self.heads), axis=-1)  # (B, T, H * d_out) -> H x (B, T, d_out)
        return sum(head.backward(d_head) for head, d_head in zip(self.heads, d_heads))


class TiledAttentionSaved(NamedTuple):
    """The tiled path's record: Q, K, V, the context O (B, H, T, D) and each row's log-sum-exp (B, H, T, 1),
    not the weights (``tiled_causal_attention_backward`` rebuilds them tile by tile)."""

    tile_size: int
    queries: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    context_vec: np.ndarray
    lse: np.ndarray


class MultiHeadAttentionSaved(NamedTuple):
    """``MultiHeadAttention``'s record: the path its forward took holds that path's record, the other None."""

    full: FullAttentionSaved | None = None
    tiled: TiledAttentionSaved | None = None


class MultiHeadAttention(CausalAttention):
    """The wrapper's computation with one d_out-wide projection split into H heads of D = d_out / H, then out_proj.

    Two paths compute the same context. The tiled one (``tiled_causal_attention``, below) runs whenever it
    can: ``attention="tiled"`` (the default; ``"full"`` always takes the book's path), no ``mask`` is given,
    dropout is off (eval mode or p = 0), T > 1 and ``tile_size`` is not None;
    it never builds the (T, T_keys) scores and keeps no weights for the backward. Otherwise the book's full
    path runs: a padding mask is not the causal pattern the tiles assume, a one-token (KV-cache decode)
    step is a single row with nothing to skip, and dropout must draw its masks on the whole (T, T_keys)
    weights, exactly as the book's code does, so that a seeded torch run reproduces the book.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False,
        *, rng=None, dtype=np.float32, attention: str = "tiled", init=True,
    ):
        if num_heads < 1 or d_out % num_heads != 0:
            raise ValueError(f"d_out must be divisible by num_heads, got d_out={d_out}, num_heads={num_heads}")
        check_attention_path(attention, ATTENTION_PATHS)
        rng = as_rng(rng)
        super().__init__(d_in, d_out, context_length, dropout, qkv_bias, rng=rng, dtype=dtype, init=init)
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.out_proj = Linear(d_out, d_out, rng=rng, dtype=dtype, init=init)
        self.attention = attention  # the causal path: "tiled" | "full" (the torch twin adds its kernel, "sdpa")
        self.tile_size = DEFAULT_TILE_SIZE  # query rows per tile; None: the full path instead of the tiles

    def split_heads(self, x: np.ndarray) -> np.ndarray:
        batch, num_tokens, _ = x.shape
        x = x.reshape(batch, num_tokens, self.num_heads, self.head_dim)  # (B, T, d_out) -> (B, T, H, D)
        return x.transpose(0, 2, 1, 3)  # (B, T, H, D) -> (B, H, T, D)

    def merge_heads(self, x: np.ndarray) -> np.ndarray:
        batch, _, num_tokens, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(batch, num_tokens, self.d_out)  # (B, H, T, D) -> (B, T, d_out)

    def uses_tiles(self, mask: np.ndarray | None, num_queries: int) -> bool:
        """Whether this call takes the tiled path (see the class docstring for why the others do not)."""
        dropout_active = self.training and self.dropout.p > 0.0
        tiles_apply = num_queries > 1 and self.tile_size is not None  # one row has nothing to skip
        return self.attention == "tiled" and mask is None and not dropout_active and tiles_apply

    def forward(
        self, x: np.ndarray, *, cache: LayerCache | None = None, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """``cache`` holds the keys and values of earlier tokens (and receives these); ``mask`` (True = hidden)
        replaces the causal mask, e.g. ``(B, 1, T, T_keys)`` to hide padding too."""
        if cache is not None and self.keeps_activations:
            raise ValueError("gradients through a KV cache are not supported: keep activations only without a cache")
        queries = self.split_heads(self.W_query(x))  # (B, T, C) -> (B, H, T, D)
        keys = self.split_heads(self.W_key(x))  # (B, T, C) -> (B, H, T, D)
        values = self.split_heads(self.W_value(x))  # (B, T, C) -> (B, H, T, D)
        if cache is not None:
            keys, values = cache.append(keys, values)  # (B, H, T, D) -> (B, H, T_cached + T, D)
        if self.uses_tiles(mask, queries.shape[-2]):
            context_vec = self.tiled_attention(queries, keys, values)  # (B, H, T, D)
        else:
            context_vec = self.full_attention(queries, keys, values, mask)  # (B, H, T, D)
        context_vec = self.merge_heads(context_vec)  # (B, H, T, D) -> (B, T, d_out)
        return self.out_proj(context_vec)  # (B, T, d_out) -> (B, T, d_out)

    def full_attention(
        self, queries: np.ndarray, keys: np.ndarray, values: np.ndarray, mask: np.ndarray | None
    ) -> np.ndarray:
        """The book's path: the whole (T, T_keys) weights, masked with -inf, dropout on them, times V."""
        attn_weights = self.attention_weights(queries, keys, mask=mask)  # (B, H, T, T_keys)
        context_vec = attn_weights @ values  # (B, H, T, T_keys) @ (B, H, T_keys, D) -> (B, H, T, D)
        self.save_for_backward(MultiHeadAttentionSaved(full=FullAttentionSaved(queries, keys, values, attn_weights)))
        return context_vec

    def tiled_attention(self, queries: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The causal path one tile of queries at a time; keeps Q, K, V, O and the rows' log-sum-exp."""
        check_sequence_length(keys.shape[-2], self.mask.shape[-1])  # as the full path checks its mask slice
        context_vec, lse = tiled_causal_attention(queries, keys, values, self.tile_size)  # (B, H, T, D), (B, H, T, 1)
        saved = TiledAttentionSaved(self.tile_size, queries, keys, values, context_vec, lse)
        self.save_for_backward(MultiHeadAttentionSaved(tiled=saved))
        return context_vec

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Back through out_proj, split into heads, attention per head (on the path the forward took), merged
        again into the three projections."""
        d_context = self.split_heads(self.out_proj.backward(dout))  # (B, T, C) -> (B, H, T, D)
        saved = self.saved_for_backward(MultiHeadAttentionSaved)
        if saved.tiled is not None:
            d_queries, d_keys, d_values = self.tiled_attention_backward(d_context, *saved.tiled)
        else:
            d_queries, d_keys, d_values = self.attention_backward(d_context, *saved.full)
        dx = self.W_query.backward(self.merge_heads(d_queries))  # (B, H, T, D) -> (B, T, C) -> (B, T, C)
        dx += self.W_key.backward(self.merge_heads(d_keys))
        dx += self.W_value.backward(self.merge_heads(d_values))
        return dx

    def tiled_attention_backward(
        self, d_context: np.ndarray, tile_size: int, queries: np.ndarray, keys: np.ndarray, values: np.ndarray,
        context_vec: np.ndarray, lse: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dQ, dK, dV) of the tiled path, tile by tile, its weights rebuilt from lse (see the function it calls)."""
        return tiled_causal_attention_backward(d_context, queries, keys, values, context_vec, lse, tile_size)


# ------------------------------------------------------------------------------------------------
# Blockwise causal attention: the path MultiHeadAttention takes by default (see its docstring).

ATTENTION_PATHS = ("tiled", "full")  # MultiHeadAttention's causal paths; the torch twin adds "sdpa", its kernel
DEFAULT_TILE_SIZE = 128  # query rows per tile: of 64, 128 and 256, the fastest 124M attention at T=1024 in both


def causal_tiles(num_queries: int, num_keys: int, tile_size: int) -> list[tuple[int, int, int]]:
    """(start, end, keys_end) per tile: query rows start .. end - 1 see keys 0 .. keys_end - 1.

    The queries are the last ``num_queries`` positions of the keys (earlier keys may come from a cache),
    so row i sits at position num_keys - num_queries + i and sees every key up to there.
    """
    offset = num_keys - num_queries
    ends = [min(start + tile_size, num_queries) for start in range(0, num_queries, tile_size)]
    return [(start, end, offset + end) for start, end in zip(range(0, num_queries, tile_size), ends)]


def tiled_scores(queries: np.ndarray, keys: np.ndarray, start: int, end: int, keys_end: int) -> np.ndarray:
    """S = Q_tile K_prefix^T / sqrt(D), -inf above the diagonal: only the last (tile, tile) block needs the mask."""
    tile = end - start
    queries = queries[..., start:end, :] / math.sqrt(keys.shape[-1])  # (B, H, tile, D), scaled as the full path does
    attn_scores = queries @ keys[..., :keys_end, :].swapaxes(-1, -2)  # (B, H, tile, D) @ (B, H, D, k)
    diagonal = attn_scores[..., keys_end - tile :]  # (B, H, tile, tile): keys at the tile's own positions
    np.copyto(diagonal, -np.inf, where=causal_mask(tile))
    return attn_scores


def tiled_causal_attention(
    queries: np.ndarray, keys: np.ndarray, values: np.ndarray, tile_size: int = DEFAULT_TILE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """context = softmax(Q K^T / sqrt(D), causal) V one tile of queries at a time; also each row's log-sum-exp.

    A tile of queries attends only to the keys at or before its last position: its scores are a
    (tile, prefix) block, not a row of the (T, T) square, so the masked half above the diagonal is
    never computed (about half the work and a tile / T share of the memory). A tile sees its whole
    prefix at once, so one ordinary softmax per tile is exact: no online rescaling (FlashAttention's,
    Dao et al. 2022) is needed. lse = max + log(sum exp(S - max)) lets the backward rebuild the
    weights as exp(S - lse) in one pass. Returns ((B, H, T, D) context, (B, H, T, 1) lse).
    """
    context = np.empty(queries.shape[:-1] + values.shape[-1:], dtype=queries.dtype)  # (B, H, T, D)
    lse = np.empty(queries.shape[:-1] + (1,), dtype=queries.dtype)  # (B, H, T, 1)
    for start, end, keys_end in causal_tiles(queries.shape[-2], keys.shape[-2], tile_size):
        attn_scores = tiled_scores(queries, keys, start, end, keys_end)  # (B, H, tile, k)
        tile_lse = np.empty(attn_scores.shape[:-1] + (1,), dtype=queries.dtype)  # (B, H, tile, 1)
        map_rows(tile_softmax, attn_scores, tile_lse)  # in place on the tile's own scores, on every core
        attn_weights = attn_scores
        context[..., start:end, :] = attn_weights @ values[..., :keys_end, :]  # (B, H, tile, k) @ (B, H, k, D)
        lse[..., start:end, :] = tile_lse
    return context, lse


def tile_softmax(attn_scores: np.ndarray, lse: np.ndarray) -> None:
    """Each row's softmax, in place, and its log-sum-exp lse = max + log(sum exp(S - max)), into ``lse``."""
    row_max = attn_scores.max(axis=-1, keepdims=True)  # (rows, 1); the diagonal is never masked
    attn_scores -= row_max
    attn_weights = np.exp(attn_scores, out=attn_scores)
    row_sum = attn_weights.sum(axis=-1, keepdims=True)
    attn_weights /= row_sum  # rows sum to 1
    np.log(row_sum, out=lse)
    lse += row_max


def tiled_causal_attention_backward(
    d_context: np.ndarray, queries: np.ndarray, keys: np.ndarray, values: np.ndarray, context: np.ndarray,
    lse: np.ndarray, tile_size: int = DEFAULT_TILE_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dQ, dK, dV) tile by tile, each tile's weights rebuilt as W = exp(S - lse) (FlashAttention-2's backward).

    Per tile, with O = W V: dV_prefix += W^T dO; dW = dO V_prefix^T; the softmax backward
    dS = W * (dW - rowsum(dW * W)), where rowsum(dW * W) = rowsum(dO * O) is computed once for all rows;
    then S = Q K^T / sqrt(D) gives dQ = dS K_prefix / sqrt(D) and dK_prefix += dS^T Q / sqrt(D).
    Memory: the forward keeps Q, K, V, O (B, H, T, D) and lse (B, H, T, 1), not the (B, H, T, T)
    weights; the price is a second Q K^T and exp per tile.
    """
    scale = 1.0 / math.sqrt(keys.shape[-1])
    d_queries = np.empty_like(queries)
    d_keys, d_values = np.zeros_like(keys), np.zeros_like(values)
    row_dot = (d_context * context).sum(axis=-1, keepdims=True)  # (B, H, T, 1): rowsum(dO * O)
    for start, end, keys_end in causal_tiles(queries.shape[-2], keys.shape[-2], tile_size):
        attn_scores = tiled_scores(queries, keys, start, end, keys_end)  # (B, H, tile, k)
        map_rows(weights_from_lse, attn_scores, lse[..., start:end, :])  # in place, on every core
        attn_weights = attn_scores  # the forward's weights; masked entries exactly 0
        d_out = d_context[..., start:end, :]  # (B, H, tile, D)
        d_values[..., :keys_end, :] += attn_weights.swapaxes(-1, -2) @ d_out  # (B, H, k, tile) @ (B, H, tile, D)
        d_scores = d_out @ values[..., :keys_end, :].swapaxes(-1, -2)  # dW: (B, H, tile, k)
        map_rows(scores_backward, d_scores, row_dot[..., start:end, :], attn_weights)  # dS, in place
        d_queries[..., start:end, :] = d_scores @ keys[..., :keys_end, :]  # (B, H, tile, k) @ (B, H, k, D)
        d_queries[..., start:end, :] *= scale
        d_keys[..., :keys_end, :] += d_scores.swapaxes(-1, -2) @ (queries[..., start:end, :] * scale)
    return d_queries, d_keys, d_values


def weights_from_lse(attn_scores: np.ndarray, lse: np.ndarray) -> None:
    """W = exp(S - lse), in place: each row's softmax again, from the log-sum-exp its forward kept."""
    attn_scores -= lse
    np.exp(attn_scores, out=attn_scores)


def scores_backward(d_weights: np.ndarray, row_dot: np.ndarray, attn_weights: np.ndarray) -> None:
    """dS = W * (dW - rowsum(dO * O)), in place on dW: softmax's backward with its row sum precomputed."""
    d_weights -= row_dot
    d_weights *= attn_weights
