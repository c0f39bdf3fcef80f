"""The GPT model: token + position embeddings, a stack of transformer blocks, final norm, output head.

Shapes: B batch, T tokens, C = emb_dim, V = vocab_size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .block import TransformerBlock
from .config import ConfigLike, as_config
from .layer_norm import LayerNorm
from .layers import Dropout, Embedding, Linear, Module, Sequential, as_rng
from .validation import check_token_ids

__all__ = ["GPTModel", "ParameterCount", "count_parameters", "check_ids"]


def check_ids(in_idx: np.ndarray, vocab_size: int, context_length: int) -> None:
    """Raise ValueError unless ``in_idx`` is an integer (B, T) array with T <= context_length and ids in [0, V)."""
    is_integer = np.issubdtype(in_idx.dtype, np.integer)
    has_ids = is_integer and in_idx.size > 0
    check_token_ids(
        in_idx.shape, str(in_idx.dtype), is_integer,
        int(in_idx.min()) if has_ids else None, int(in_idx.max()) if has_ids else None,
        vocab_size, context_length,
    )


class GPTModel(Module):
    """logits = LN_f(blocks(E_tok[idx] + E_pos[0..T-1])) W_out^T: GPT-2 (Radford et al., 2019).

    Built from a ``GPTConfig`` or the seed's dict. Weights come from ``seed``
    (or an explicit ``rng``), in ``dtype`` (float32 by default; float64 for
    tight reference checks). Call ``model(idx)`` on (B, T) token ids for (B, T, V) logits.
    """

    def __init__(self, cfg: ConfigLike, seed: int | None = None, *, rng=None, dtype=np.float32):
        super().__init__()
        cfg = as_config(cfg)
        rng = as_rng(seed if rng is None else rng)
        self.cfg = cfg
        self.tok_emb = Embedding(cfg.vocab_size, cfg.emb_dim, rng=rng, dtype=dtype)
        self.pos_emb = Embedding(cfg.context_length, cfg.emb_dim, rng=rng, dtype=dtype)
        self.drop_emb = Dropout(cfg.drop_rate, rng=rng)
        self.trf_blocks = Sequential(*[TransformerBlock(cfg, rng=rng, dtype=dtype) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim, dtype=dtype)
        self.out_head = Linear(cfg.emb_dim, cfg.vocab_size, bias=False, rng=rng, dtype=dtype)

    def forward(self, in_idx: np.ndarray) -> np.ndarray:
        in_idx = np.asarray(in_idx)
        check_ids(in_idx, self.cfg.vocab_size, self.cfg.context_length)
        batch_size, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)  # (B, T) -> (B, T, C)
        pos_embeds = self.pos_emb(np.arange(seq_len))  # (T,) -> (T, C)
        x = tok_embeds + pos_embeds  # (B, T, C), positions broadcast over the batch
        x = self.drop_emb(x)
        x = self.trf_blocks(x)  # (B, T, C) -> (B, T, C)
        x = self.final_norm(x)
        logits = self.out_head(x)  # (B, T, C) -> (B, T, V)
        return logits


class ParameterCount(NamedTuple):
    """``untied`` counts the output head separately; ``tied`` counts it as the token embedding (GPT-2's "124M")."""

    untied: int
    tied: int


def count_parameters(model: GPTModel) -> ParameterCount:
    """Trainable parameters, with and without the output head tied to the token embedding."""
    untied = sum(p.size for p in model.parameters())
    return ParameterCount(untied=untied, tied=untied - model.out_head.weight.size)
