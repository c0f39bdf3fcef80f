"""The GPT model: token + position embeddings, a stack of transformer blocks, final norm, output head.

Two optional inputs serve generation: a ``KVCache`` (the new tokens continue
after the cached ones) and an ``attention_mask`` for left-padded batches
(1 = token, 0 = padding; positions count from each row's first token).

Shapes: B batch, T tokens, C = emb_dim, V = vocab_size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .block import TransformerBlock
from .config import ConfigLike, as_config, weights_bytes
from .kv_cache import KVCache
from .layer_norm import LayerNorm
from .layers import Dropout, Embedding, Linear, Module, Sequential, as_rng
from .validation import check_attention_mask, check_float_dtype, check_mask_dtype, check_memory, check_token_ids

__all__ = [
    "GPTModel", "GPTModelSaved", "ParameterCount", "count_parameters", "check_ids", "as_ids", "as_mask",
    "is_binary_mask", "padding_positions", "padding_mask",
]


def check_ids(in_idx: np.ndarray, vocab_size: int, context_length: int) -> None:
    """Raise ValueError unless ``in_idx`` is an integer (B, T) array with T <= context_length and ids in [0, V)."""
    is_integer = np.issubdtype(in_idx.dtype, np.integer)
    has_ids = is_integer and in_idx.size > 0
    check_token_ids(
        in_idx.shape, str(in_idx.dtype), is_integer,
        int(in_idx.min()) if has_ids else None, int(in_idx.max()) if has_ids else None,
        vocab_size, context_length,
    )


def as_ids(in_idx, vocab_size: int, context_length: int) -> np.ndarray:
    """Checked token ids as int64: any integer dtype is accepted (uint16 token files too), none wraps around."""
    in_idx = np.asarray(in_idx)
    check_ids(in_idx, vocab_size, context_length)
    return in_idx.astype(np.int64, copy=False)


def as_mask(attention_mask) -> np.ndarray:
    """An attention mask as an array, once it is known to hold numbers (bool, integer or float)."""
    attention_mask = np.asarray(attention_mask)
    check_mask_dtype(str(attention_mask.dtype), attention_mask.dtype.kind in "biuf")
    return attention_mask


def is_binary_mask(attention_mask: np.ndarray) -> bool:
    """Whether an attention mask holds only 0 (padding) and 1 (token)."""
    return bool(((attention_mask == 0) | (attention_mask == 1)).all())


def padding_positions(attention_mask: np.ndarray) -> np.ndarray:
    """Position of each token counted from its row's first real one (cumsum - 1); padding gets 0."""
    return np.maximum(np.cumsum(attention_mask, axis=1) - 1, 0)  # (B, T_keys)


def padding_mask(attention_mask: np.ndarray, num_queries: int) -> np.ndarray:
    """True where a query (one of the last ``num_queries`` positions) must not see a key: a later one, or padding.

    A padding query still sees its own key, so no row of scores is all -inf (which would give NaN).
    """
    num_keys = attention_mask.shape[1]
    key_pos = np.arange(num_keys)  # (T_keys,)
    query_pos = key_pos[num_keys - num_queries :, None]  # (T, 1)
    future = key_pos > query_pos  # (T, T_keys)
    padding = (attention_mask == 0)[:, None, None, :] & (key_pos != query_pos)  # (B, 1, T, T_keys)
    return future | padding  # (B, 1, T, T_keys), broadcast over the heads


class GPTModelSaved(NamedTuple):
    """Nothing of the model's own (its modules keep theirs): the mark that a forward kept its activations."""


class GPTModel(Module):
    """logits = LN_f(blocks(E_tok[idx] + E_pos[0..T-1])) W_out^T: GPT-2 (Radford et al., 2019).

    Built from a ``GPTConfig`` or the book's dict. Weights come from ``seed``
    (or an explicit ``rng``), in ``dtype`` (float32 by default; float64 for
    tight reference checks). Call ``model(idx)`` on (B, T) token ids for (B, T, V) logits;
    ``model(idx, cache=cache, attention_mask=mask)`` for generation (see the module docstring).
    ``init=False`` gives placeholders for weights, drawing nothing, for ``load_pretrained`` to fill;
    dropout then draws from ``rng`` (or ``seed``) from its first number.
    """

    def __init__(self, cfg: ConfigLike, seed: int | None = None, *, rng=None, dtype=np.float32, init=True):
        super().__init__()
        cfg = as_config(cfg)
        check_float_dtype("dtype", str(np.dtype(dtype)), np.issubdtype(dtype, np.floating))
        check_memory(weights_bytes(cfg, np.dtype(dtype).itemsize), "GPTModel's weights")
        rng = as_rng(seed if rng is None else rng)
        self.cfg = cfg
        self.tok_emb = Embedding(cfg.vocab_size, cfg.emb_dim, rng=rng, dtype=dtype, init=init)
        self.pos_emb = Embedding(cfg.context_length, cfg.emb_dim, rng=rng, dtype=dtype, init=init)
        self.drop_emb = Dropout(cfg.drop_rate, rng=rng)
        self.trf_blocks = Sequential(
            *[TransformerBlock(cfg, rng=rng, dtype=dtype, init=init) for _ in range(cfg.n_layers)]
        )
        self.final_norm = LayerNorm(cfg.emb_dim, dtype=dtype)
        self.out_head = Linear(cfg.emb_dim, cfg.vocab_size, bias=False, rng=rng, dtype=dtype, init=init)

    def forward(
        self, in_idx: np.ndarray, *, cache: KVCache | None = None, attention_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, T, V) logits of any (B, T) integer ids, checked first (see ``forward_checked_ids``)."""
        in_idx = as_ids(in_idx, self.cfg.vocab_size, self.cfg.context_length)
        return self.forward_checked_ids(in_idx, cache=cache, attention_mask=attention_mask)

    def forward_checked_ids(
        self, in_idx: np.ndarray, *, cache: KVCache | None = None, attention_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """The forward of int64 (B, T) ids already known to be in [0, V), e.g. generate's own samples.

        ``generate`` checks the prompt once and then feeds its samples here, as the torch twin must: there,
        reading the ids' range on the host waits for a CUDA device at every decode step.
        """
        batch_size, seq_len = in_idx.shape
        cached = 0 if cache is None else cache.length
        if cache is not None:
            cache.check_fits(self.cfg, batch_size, seq_len, self.tok_emb.weight.dtype, "cpu")
        positions, mask = self.positions_and_mask(batch_size, seq_len, cached, attention_mask)
        tok_embeds = self.tok_emb(in_idx)  # (B, T) -> (B, T, C)
        pos_embeds = self.pos_emb(positions)  # (T,) -> (T, C), or (B, T) -> (B, T, C) with padding
        x = tok_embeds + pos_embeds  # (B, T, C), positions broadcast over the batch
        x = self.drop_emb(x)
        layer_caches = [None] * len(self.trf_blocks) if cache is None else cache.layers
        for block, layer_cache in zip(self.trf_blocks, layer_caches):
            x = block(x, cache=layer_cache, mask=mask)  # (B, T, C) -> (B, T, C)
        x = self.final_norm(x)
        logits = self.out_head(x)  # (B, T, C) -> (B, T, V)
        self.save_for_backward(GPTModelSaved())
        return logits

    def backward(self, dlogits: np.ndarray) -> None:
        """Back from d loss / d logits (B, T, V) through the head, the final norm, the blocks in reverse,
        the embedding dropout, into both embeddings; every parameter's gradient lands in its module's ``grads``.

        A head tied to the token embedding (``load_pretrained`` shares one array) gets both
        gradients, the head's and the embedding's scatter-add; ``named_grads()`` reports their sum once.
        """
        self.saved_for_backward(GPTModelSaved)  # a clear ValueError when no forward kept its activations
        dx = self.final_norm.backward(self.out_head.backward(dlogits))  # (B, T, V) -> (B, T, C)
        for block in reversed(self.trf_blocks):
            dx = block.backward(dx)  # (B, T, C) -> (B, T, C)
        dx = self.drop_emb.backward(dx)
        self.tok_emb.backward(dx)
        self.pos_emb.backward(dx)  # (T,) positions broadcast over the batch: each row sums B positions

    def positions_and_mask(
        self, batch_size: int, seq_len: int, cached: int, attention_mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The new tokens' positions, and the attention mask (None: each layer's causal one) they need."""
        if attention_mask is None:
            return np.arange(cached, cached + seq_len), None  # (T,)
        attention_mask = as_mask(attention_mask)
        expected = (batch_size, cached + seq_len)
        check_attention_mask(attention_mask.shape, expected, lambda: is_binary_mask(attention_mask))
        attention_mask = attention_mask.astype(np.int64)  # float 0/1 means the same as int 0/1
        positions = padding_positions(attention_mask)[:, cached:]  # (B, T_cached + T) -> (B, T)
        return positions, padding_mask(attention_mask, seq_len)  # (B, T), (B, 1, T, T_cached + T)


class ParameterCount(NamedTuple):
    """``untied`` counts the output head separately; ``tied`` counts it as the token embedding (GPT-2's "124M")."""

    untied: int
    tied: int


def count_parameters(model: GPTModel) -> ParameterCount:
    """Trainable parameters, with and without the output head tied to the token embedding."""
    untied = sum(p.size for p in model.parameters())
    return ParameterCount(untied=untied, tied=untied - model.out_head.weight.size)
