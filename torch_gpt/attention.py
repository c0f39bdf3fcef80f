"""Attention, built up step by step as in the book (Vaswani et al., "Attention Is All You Need", 2017).

1. ``SimplifiedSelfAttention``: no weights, scores are plain dot products.
2. ``SelfAttention``: trainable query/key/value projections, scaled scores.
3. ``CausalAttention``: a token may only attend to itself and earlier tokens; dropout on the weights.
4. ``MultiHeadAttentionWrapper``: several ``CausalAttention`` heads side by side, concatenated.
5. ``MultiHeadAttention``: the same computed with one projection split into heads, plus an output projection.
   Given a ``LayerCache`` it also appends its keys and values there and attends over all cached ones, so
   generation can feed one new token per step (see ``kv_cache.py``). Its causal step runs, by default, in
   torch's fused kernel for exactly this formula (``F.scaled_dot_product_attention``, the production twin's
   fast path); the written-out tiled and full paths the NumPy twin runs stay below, one argument away
   (``attention="tiled"`` or ``"full"``), and the book's full path still runs whenever dropout is active.

Shapes: B batch, T tokens, C = d_in (or emb_dim), H heads, D = d_out / H.
"""

import math

import torch
import torch.nn.functional as F

from .activations import softmax
from .kv_cache import LayerCache
from .layers import Dropout, Linear, Module, ModuleList
from .validation import check_attention_path, check_sequence_length

__all__ = [
    "scaled_attention_weights",
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
]


def scaled_attention_weights(
    queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
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
            check_sequence_length(num_keys, self.mask.shape[-1])  # a slice past the mask would silently shrink it
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
    """The wrapper's computation with one d_out-wide projection split into H heads of D = d_out / H, then out_proj.

    Three paths compute the same context, softmax(Q K^T / sqrt(D), causal) V; ``attention`` picks the one
    that runs whenever a fast path may: no ``mask`` is given and dropout is off (eval mode or p = 0).

    - ``"sdpa"`` (the default): torch's fused kernel, ``F.scaled_dot_product_attention``, for exactly this
      formula; it never builds the (T, T_keys) scores, prefill after cached tokens and one-token decode too.
    - ``"tiled"``: the written-out blockwise path the NumPy twin runs (``tiled_causal_attention``, below),
      with its hand-written backward; for T > 1 and ``tile_size`` not None.
    - ``"full"``: the book's path, the whole (T, T_keys) weights.

    Otherwise the book's full path runs whatever ``attention`` says: a padding mask is not the causal
    pattern the others assume, and dropout must draw its masks on the whole (T, T_keys) weights, exactly
    as the book's code does, so that a seeded torch run reproduces the book. tests/test_attention_tiled.py
    proves the three equal, forward and backward.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False,
        *, attention: str = "sdpa",
    ):
        if num_heads < 1 or d_out % num_heads != 0:
            raise ValueError(f"d_out must be divisible by num_heads, got d_out={d_out}, num_heads={num_heads}")
        check_attention_path(attention, ATTENTION_PATHS)
        super().__init__(d_in, d_out, context_length, dropout, qkv_bias)
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.out_proj = Linear(d_out, d_out)
        self.attention = attention  # the causal path: "sdpa" | "tiled" | "full" (see the class docstring)
        self.tile_size = DEFAULT_TILE_SIZE  # query rows per tile; None: the full path instead of the tiles

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, num_tokens, _ = x.shape
        x = x.view(batch, num_tokens, self.num_heads, self.head_dim)  # (B, T, d_out) -> (B, T, H, D)
        return x.transpose(1, 2)  # (B, T, H, D) -> (B, H, T, D)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, num_tokens, _ = x.shape
        return x.transpose(1, 2).reshape(batch, num_tokens, self.d_out)  # (B, H, T, D) -> (B, T, d_out)

    def fast_path_allowed(self, mask: torch.Tensor | None) -> bool:
        """No padding mask and no active dropout: a causal path other than the book's full one may run."""
        dropout_active = self.training and self.dropout.p > 0.0
        return mask is None and not dropout_active

    def uses_kernel(self, mask: torch.Tensor | None) -> bool:
        """Whether this call runs torch's fused SDPA kernel (see the class docstring for when)."""
        return self.attention == "sdpa" and self.fast_path_allowed(mask)

    def uses_tiles(self, mask: torch.Tensor | None, num_queries: int) -> bool:
        """Whether this call takes the tiled path (see the class docstring for why the others do not)."""
        tiles_apply = num_queries > 1 and self.tile_size is not None  # one row has nothing to skip
        return self.attention == "tiled" and self.fast_path_allowed(mask) and tiles_apply

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
        if self.uses_kernel(mask):
            context_vec = self.kernel_attention(queries, keys, values)  # (B, H, T, D)
        elif self.uses_tiles(mask, queries.shape[-2]):
            context_vec = self.tiled_attention(queries, keys, values)  # (B, H, T, D)
        else:
            context_vec = self.full_attention(queries, keys, values, mask)  # (B, H, T, D)
        context_vec = self.merge_heads(context_vec)  # (B, H, T, D) -> (B, T, d_out)
        return self.out_proj(context_vec)  # (B, T, d_out) -> (B, T, d_out)

    def full_attention(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The book's path: the whole (T, T_keys) weights, masked with -inf, dropout on them, times V."""
        attn_weights = self.attention_weights(queries, keys, mask=mask)  # (B, H, T, T_keys)
        context_vec = attn_weights @ values  # (B, H, T, T_keys) @ (B, H, T_keys, D) -> (B, H, T, D)
        return context_vec

    def tiled_attention(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """The causal path one tile of queries at a time; autograd keeps Q, K, V, O and the rows' log-sum-exp."""
        check_sequence_length(keys.shape[-2], self.mask.shape[-1])  # as the full path checks its mask slice
        context_vec = TiledCausalAttention.apply(queries, keys, values, self.tile_size)  # (B, H, T, D)
        return context_vec


    def kernel_attention(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """The causal path in torch's fused kernel: softmax(Q K^T / sqrt(D), causal) V, the scores never stored.

        SDPA's ``is_causal`` lines the queries up with the first keys, so it serves only T = T_keys; after
        cached keys the queries are the last positions, and the kernel gets the causal mask's rows for them.
        """
        num_queries, num_keys = queries.shape[-2], keys.shape[-2]
        check_sequence_length(num_keys, self.mask.shape[-1])  # as the full path checks its mask slice
        if num_queries == num_keys:
            return F.scaled_dot_product_attention(queries, keys, values, is_causal=True)  # (B, H, T, D)
        visible = None if num_queries == 1 else ~self.mask[num_keys - num_queries : num_keys, :num_keys]
        return F.scaled_dot_product_attention(queries, keys, values, attn_mask=visible)  # True = may attend


# ------------------------------------------------------------------------------------------------
# Blockwise causal attention: the written-out path MultiHeadAttention takes with attention="tiled".

ATTENTION_PATHS = ("sdpa", "tiled", "full")  # MultiHeadAttention's causal paths; the NumPy twin has no "sdpa"
DEFAULT_TILE_SIZE = 128  # query rows per tile: of 64, 128 and 256, the fastest 124M attention at T=1024 in both


def causal_tiles(num_queries: int, num_keys: int, tile_size: int) -> list[tuple[int, int, int]]:
    """(start, end, keys_end) per tile: query rows start .. end - 1 see keys 0 .. keys_end - 1.

    The queries are the last ``num_queries`` positions of the keys (earlier keys may come from a cache),
    so row i sits at position num_keys - num_queries + i and sees every key up to there.
    """
    offset = num_keys - num_queries
    ends = [min(start + tile_size, num_queries) for start in range(0, num_queries, tile_size)]
    return [(start, end, offset + end) for start, end in zip(range(0, num_queries, tile_size), ends)]


def tiled_scores(queries: torch.Tensor, keys: torch.Tensor, start: int, end: int, keys_end: int) -> torch.Tensor:
    """S = Q_tile K_prefix^T / sqrt(D), -inf above the diagonal: only the last (tile, tile) block needs the mask."""
    tile = end - start
    queries = queries[..., start:end, :] / math.sqrt(keys.shape[-1])  # (B, H, tile, D), scaled as the full path does
    attn_scores = queries @ keys[..., :keys_end, :].transpose(-1, -2)  # (B, H, tile, D) @ (B, H, D, k)
    diagonal = attn_scores[..., keys_end - tile :]  # (B, H, tile, tile): keys at the tile's own positions
    diagonal.masked_fill_(causal_mask(tile, device=queries.device), -torch.inf)
    return attn_scores


def tiled_causal_attention(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, tile_size: int = DEFAULT_TILE_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """context = softmax(Q K^T / sqrt(D), causal) V one tile of queries at a time; also each row's log-sum-exp.

    A tile of queries attends only to the keys at or before its last position: its scores are a
    (tile, prefix) block, not a row of the (T, T) square, so the masked half above the diagonal is
    never computed (about half the work and a tile / T share of the memory). A tile sees its whole
    prefix at once, so one ordinary softmax per tile is exact: no online rescaling (FlashAttention's,
    Dao et al. 2022) is needed. lse = max + log(sum exp(S - max)) lets the backward rebuild the
    weights as exp(S - lse) in one pass. Returns ((B, H, T, D) context, (B, H, T, 1) lse).
    """
    context = queries.new_empty(queries.shape[:-1] + values.shape[-1:])  # (B, H, T, D)
    lse = queries.new_empty(queries.shape[:-1] + (1,))  # (B, H, T, 1)
    for start, end, keys_end in causal_tiles(queries.shape[-2], keys.shape[-2], tile_size):
        attn_scores = tiled_scores(queries, keys, start, end, keys_end)  # (B, H, tile, k)
        tile_lse = attn_scores.new_empty(attn_scores.shape[:-1] + (1,))  # (B, H, tile, 1)
        tile_softmax(attn_scores, tile_lse)  # in place on the tile's own scores (torch threads each op itself)
        attn_weights = attn_scores
        context[..., start:end, :] = attn_weights @ values[..., :keys_end, :]  # (B, H, tile, k) @ (B, H, k, D)
        lse[..., start:end, :] = tile_lse
    return context, lse


def tile_softmax(attn_scores: torch.Tensor, lse: torch.Tensor) -> None:
    """Each row's softmax, in place, and its log-sum-exp lse = max + log(sum exp(S - max)), into ``lse``."""
    row_max = attn_scores.amax(dim=-1, keepdim=True)  # (rows, 1); the diagonal is never masked
    attn_scores -= row_max
    attn_weights = torch.exp(attn_scores, out=attn_scores)
    row_sum = attn_weights.sum(dim=-1, keepdim=True)
    attn_weights /= row_sum  # rows sum to 1
    torch.log(row_sum, out=lse)
    lse += row_max


def tiled_causal_attention_backward(
    d_context: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, context: torch.Tensor,
    lse: torch.Tensor, tile_size: int = DEFAULT_TILE_SIZE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dQ, dK, dV) tile by tile, each tile's weights rebuilt as W = exp(S - lse) (FlashAttention-2's backward).

    Per tile, with O = W V: dV_prefix += W^T dO; dW = dO V_prefix^T; the softmax backward
    dS = W * (dW - rowsum(dW * W)), where rowsum(dW * W) = rowsum(dO * O) is computed once for all rows;
    then S = Q K^T / sqrt(D) gives dQ = dS K_prefix / sqrt(D) and dK_prefix += dS^T Q / sqrt(D).
    Memory: the forward keeps Q, K, V, O (B, H, T, D) and lse (B, H, T, 1), not the (B, H, T, T)
    weights; the price is a second Q K^T and exp per tile.
    """
    scale = 1.0 / math.sqrt(keys.shape[-1])
    d_queries = torch.empty_like(queries)
    d_keys, d_values = torch.zeros_like(keys), torch.zeros_like(values)
    row_dot = (d_context * context).sum(dim=-1, keepdim=True)  # (B, H, T, 1): rowsum(dO * O)
    for start, end, keys_end in causal_tiles(queries.shape[-2], keys.shape[-2], tile_size):
        attn_scores = tiled_scores(queries, keys, start, end, keys_end)  # (B, H, tile, k)
        weights_from_lse(attn_scores, lse[..., start:end, :])  # in place
        attn_weights = attn_scores  # the forward's weights; masked entries exactly 0
        d_out = d_context[..., start:end, :]  # (B, H, tile, D)
        d_values[..., :keys_end, :] += attn_weights.transpose(-1, -2) @ d_out  # (B, H, k, tile) @ (B, H, tile, D)
        d_scores = d_out @ values[..., :keys_end, :].transpose(-1, -2)  # dW: (B, H, tile, k)
        scores_backward(d_scores, row_dot[..., start:end, :], attn_weights)  # dS, in place
        d_queries[..., start:end, :] = d_scores @ keys[..., :keys_end, :]  # (B, H, tile, k) @ (B, H, k, D)
        d_queries[..., start:end, :] *= scale
        d_keys[..., :keys_end, :] += d_scores.transpose(-1, -2) @ (queries[..., start:end, :] * scale)
    return d_queries, d_keys, d_values


def weights_from_lse(attn_scores: torch.Tensor, lse: torch.Tensor) -> None:
    """W = exp(S - lse), in place: each row's softmax again, from the log-sum-exp its forward kept."""
    attn_scores -= lse
    torch.exp(attn_scores, out=attn_scores)


def scores_backward(d_weights: torch.Tensor, row_dot: torch.Tensor, attn_weights: torch.Tensor) -> None:
    """dS = W * (dW - rowsum(dO * O)), in place on dW: softmax's backward with its row sum precomputed."""
    d_weights -= row_dot
    d_weights *= attn_weights


class TiledCausalAttention(torch.autograd.Function):
    """Autograd for the tiled path: the same hand-written backward as the NumPy twin's, so training keeps
    Q, K, V, O and lse instead of autograd's per-tile (tile, prefix) weights."""

    @staticmethod
    def forward(ctx, queries, keys, values, tile_size):
        context, lse = tiled_causal_attention(queries, keys, values, tile_size)
        ctx.save_for_backward(queries, keys, values, context, lse)
        ctx.tile_size = tile_size
        return context

    @staticmethod
    def backward(ctx, d_context):
        grads = tiled_causal_attention_backward(d_context.contiguous(), *ctx.saved_tensors, ctx.tile_size)
        return (*grads, None)
