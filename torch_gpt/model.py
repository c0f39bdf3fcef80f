"""The GPT model: token + position embeddings, a stack of transformer blocks, final norm, output head.

Two optional inputs serve generation: a ``KVCache`` (the new tokens continue
after the cached ones) and an ``attention_mask`` for left-padded batches
(1 = token, 0 = padding; positions count from each row's first token).

Shapes: B batch, T tokens, C = emb_dim, V = vocab_size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .block import TransformerBlock
from .config import ConfigLike, as_config, weights_bytes
from .kv_cache import KVCache
from .layer_norm import LayerNorm
from .layers import Dropout, Embedding, Linear, Module, Sequential
from .validation import check_attention_mask, check_id_dtype, check_mask_dtype, check_memory, check_token_ids

__all__ = [
    "GPTModel", "ParameterCount", "count_parameters", "check_ids", "as_tensor", "as_ids", "as_mask", "is_binary_mask",
    "padding_positions", "padding_mask",
]


def check_ids(in_idx: torch.Tensor, vocab_size: int, context_length: int) -> None:
    """Raise ValueError unless ``in_idx`` is an integer (B, T) tensor with T <= context_length and ids in [0, V)."""
    is_integer = not (in_idx.is_floating_point() or in_idx.is_complex() or in_idx.dtype == torch.bool)
    min_id, max_id = _id_range(in_idx) if is_integer and in_idx.numel() > 0 else (None, None)
    check_token_ids(
        tuple(in_idx.shape), str(in_idx.dtype).removeprefix("torch."), is_integer, min_id, max_id,
        vocab_size, context_length,
    )


def _id_range(in_idx: torch.Tensor) -> tuple[int, int]:
    """(smallest, largest) id; torch has no min/max for uint16, uint32, uint64, so those ask NumPy.

    Reading them on the host waits for a CUDA device, so both come back in one transfer.
    """
    if in_idx.dtype in (torch.uint16, torch.uint32, torch.uint64):
        array = in_idx.cpu().numpy()
        return int(array.min()), int(array.max())
    min_id, max_id = torch.stack(torch.aminmax(in_idx)).tolist()
    return min_id, max_id


def as_tensor(values, check_dtype: Callable[[str, bool], None], device=None) -> torch.Tensor:
    """torch's ``np.asarray``: a tensor as is, anything else through NumPy, so both packages see the same dtype;
    one torch cannot hold (object, str) goes to ``check_dtype(name, False)``, which raises."""
    if isinstance(values, torch.Tensor):
        return values.to(device)
    array = np.asarray(values)
    if array.dtype.kind not in "biufc":
        check_dtype(str(array.dtype), False)
    return torch.as_tensor(array, device=device)


def as_ids(in_idx, vocab_size: int, context_length: int, device=None) -> torch.Tensor:
    """Checked token ids as int64: any integer dtype is accepted (uint16 token files too), none wraps around."""
    in_idx = as_tensor(in_idx, check_id_dtype, device)
    check_ids(in_idx, vocab_size, context_length)
    return in_idx.long()


def as_mask(attention_mask, device=None) -> torch.Tensor:
    """An attention mask as a tensor, once it is known to hold numbers (bool, integer or float)."""
    attention_mask = as_tensor(attention_mask, check_mask_dtype, device)
    check_mask_dtype(str(attention_mask.dtype).removeprefix("torch."), not attention_mask.is_complex())
    if attention_mask.dtype in (torch.uint16, torch.uint32, torch.uint64):  # few torch ops take these:
        attention_mask = attention_mask.long()  # 0 and 1 survive the cast, and no other value becomes one
    return attention_mask


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
        if torch.get_default_device().type == "cpu":  # not on "meta", where load_pretrained builds it
            check_memory(weights_bytes(cfg, torch.get_default_dtype().itemsize), "GPTModel's weights")
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
        """(B, T, V) logits of any (B, T) integer ids, checked first (see ``forward_checked_ids``)."""
        in_idx = as_ids(in_idx, self.cfg.vocab_size, self.cfg.context_length, self.tok_emb.weight.device)
        return self.forward_checked_ids(in_idx, cache=cache, attention_mask=attention_mask)

    def forward_checked_ids(
        self, in_idx: torch.Tensor, *, cache: KVCache | None = None, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The forward of int64 (B, T) ids already known to be in [0, V), e.g. generate's own samples.

        Checking ids reads their range on the host, which on CUDA waits for the device: ``generate``
        checks the prompt once and then feeds its samples here, so a decode step never waits.
        """
        weight = self.tok_emb.weight
        batch_size, seq_len = in_idx.shape
        cached = 0 if cache is None else cache.length
        if cache is not None:
            cache.check_fits(self.cfg, batch_size, seq_len, weight.dtype, weight.device)
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
        attention_mask = as_mask(attention_mask, device)
        expected = (batch_size, cached + seq_len)
        check_attention_mask(tuple(attention_mask.shape), expected, lambda: is_binary_mask(attention_mask))
        attention_mask = attention_mask.long()  # float 0/1 means the same as int 0/1
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
