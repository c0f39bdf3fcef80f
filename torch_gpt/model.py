"""The GPT model: token + position embeddings, a stack of transformer blocks, final norm, output head.

Two optional inputs serve generation: a ``KVCache`` (the new tokens continue
after the cached ones) and an ``attention_mask`` for left-padded batches
(1 = token, 0 = padding; positions count from each row's first token).

Shapes: B batch, T tokens, C = emb_dim, V = vocab_size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .block import TransformerBlock
from .config import ConfigLike, as_config
from .kv_cache import KVCache
from .layer_norm import LayerNorm
from .layers import Dropout, Embedding, Linear, Module, Sequential
from .validation import check_attention_mask, check_cache, check_token_ids

__all__ = [
    "GPTModel", "ParameterCount", "count_parameters", "check_ids", "is_binary_mask", "padding_positions",
    "padding_mask",
]


def check_ids(in_idx: torch.Tensor, vocab_size: int, context_length: int) -> None:
    """Raise ValueError unless ``in_idx`` is an integer (B, T) tensor with T <= context_length and ids in [0, V)."""
    is_integer = not (in_idx.is_floating_point() or in_idx.is_complex() or in_idx.dtype == torch.bool)
    has_ids = is_integer and in_idx.numel() > 0
    check_token_ids(
        tuple(in_idx.shape), str(in_idx.dtype).removeprefix("torch."), is_integer,
        int(in_idx.min()) if has_ids else None, int(in_idx.max()) if has_ids else None,
        vocab_size, context_length,
    )


def is_binary_mask(attention_mask: torch.Tensor) -> bool:
    """Whether an attention mask holds only 0 (padding) and 1 (token)."""
    return bool(((attention_mask == 0) | (attention_mask == 1)).all())


def padding_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted from its row's first real one (cumsum - 1); padding gets 0."""
    return (torch.cumsum(attention_mask.long(), dim=1) - 1).clamp(min=0)  # (B, T_keys)


def padding_mask(attention_mask: torch.Tensor, num_queries: int) -> torch.Tensor:
    """True where a query (one of the last ``num_queries`` positions) must not see a key: a later one, or padding.

    A padding query still sees its own key, so no row of scores is all -inf (which would give NaN).
    """
    num_keys = attention_mask.shape[1]
    key_pos = torch.arange(num_keys, device=attention_mask.device)  # (T_keys,)
    query_pos = key_pos[num_keys - num_queries :, None]  # (T, 1)
    future = key_pos > query_pos  # (T, T_keys)
    padding = (attention_mask == 0)[:, None, None, :] & (key_pos != query_pos)  # (B, 1, T, T_keys)
    return future | padding  # (B, 1, T, T_keys), broadcast over the heads


class GPTModel(Module):
    """logits = LN_f(blocks(E_tok[idx] + E_pos[0..T-1])) W_out^T: GPT-2 (Radford et al., 2019).

    Built from a ``GPTConfig`` or the book's dict. Weights come from torch's
    global generator (seed it with ``torch.manual_seed``), in float32; use
    ``.to(torch.float64)`` for tight reference checks. Call ``model(idx)`` on
    (B, T) token ids for (B, T, V) logits; ``model(idx, cache=cache,
    attention_mask=mask)`` for generation (see the module docstring).
    """

    def __init__(self, cfg: ConfigLike):
        super().__init__()
        cfg = as_config(cfg)
        self.cfg = cfg
        self.tok_emb = Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = Dropout(cfg.drop_rate)
        self.trf_blocks = Sequential(*[TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = Linear(cfg.emb_dim, cfg.vocab_size, bias=False)

    def forward(
        self, in_idx: torch.Tensor, *, cache: KVCache | None = None, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        in_idx = torch.as_tensor(in_idx, device=self.out_head.weight.device)
        check_ids(in_idx, self.cfg.vocab_size, self.cfg.context_length)
        batch_size, seq_len = in_idx.shape
        cached = 0 if cache is None else cache.length
        if cache is not None:
            check_cache(batch_size, seq_len, cached, cache.batch_size, cache.max_len, self.cfg.context_length)
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
        return logits

    def positions_and_mask(
        self, batch_size: int, seq_len: int, cached: int, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The new tokens' positions, and the attention mask (None: each layer's causal one) they need."""
        device = self.out_head.weight.device
        if attention_mask is None:
            return torch.arange(cached, cached + seq_len, device=device), None  # (T,)
        attention_mask = torch.as_tensor(attention_mask, device=device)
        is_binary = is_binary_mask(attention_mask)
        check_attention_mask(tuple(attention_mask.shape), (batch_size, cached + seq_len), is_binary)
        positions = padding_positions(attention_mask)[:, cached:]  # (B, T_cached + T) -> (B, T)
        return positions, padding_mask(attention_mask, seq_len)  # (B, T), (B, 1, T, T_cached + T)


class ParameterCount(NamedTuple):
    """``untied`` counts the output head separately; ``tied`` counts it as the token embedding (GPT-2's "124M")."""

    untied: int
    tied: int


def count_parameters(model: GPTModel) -> ParameterCount:
    """Trainable parameters, with and without the output head tied to the token embedding."""
    # remove_duplicate=False: a head tied to the token embedding is one Parameter, counted under both names.
    untied = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    return ParameterCount(untied=untied, tied=untied - model.out_head.weight.numel())
