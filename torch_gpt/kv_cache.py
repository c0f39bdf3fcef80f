"""The key-value cache: generation computes each token's keys and values once and keeps them.

Without it every new token re-runs the whole sequence, O(T^2) work per token
in attention and O(T) in every matrix product; with it, one "prefill" pass
over the prompt fills the cache and each later step feeds one token. The
buffers are allocated once at full size and filled left to right, so steps
never copy what is already cached. A cache is explicit state the caller
owns and passes in (``model(idx, cache=cache)``); modules keep none.

Shapes: B batch, H heads, T_max = max_len positions, D head width.
"""

from __future__ import annotations

import torch

from .config import ConfigLike, as_config
from .validation import check_int_at_least

__all__ = ["LayerCache", "KVCache"]


class LayerCache:
    """One attention layer's keys and values for positions 0 .. length - 1, in (B, H, T_max, D) buffers."""

    def __init__(
        self, batch_size: int, n_heads: int, max_len: int, head_dim: int, *, dtype=torch.float32, device=None
    ):
        shape = (batch_size, n_heads, max_len, head_dim)  # (B, H, T_max, D)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' (B, H, T, D) keys and values after the cached ones; return all of them so far."""
        start, end = self.length, self.length + keys.shape[-2]
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # views: (B, H, T_cached + T, D)


class KVCache:
    """Every layer's ``LayerCache`` for one batch, with room for ``max_len`` tokens (default: the context)."""

    def __init__(
        self, cfg: ConfigLike, batch_size: int, max_len: int | None = None, *, dtype=torch.float32, device=None
    ):
        cfg = as_config(cfg)
        max_len = cfg.context_length if max_len is None else max_len
        check_int_at_least("batch_size", batch_size, 1)
        check_int_at_least("max_len", max_len, 1)
        self.batch_size, self.max_len = batch_size, min(max_len, cfg.context_length)
        self.layers = [
            LayerCache(batch_size, cfg.n_heads, self.max_len, cfg.head_dim, dtype=dtype, device=device)
            for _ in range(cfg.n_layers)
        ]

    @property
    def length(self) -> int:
        """Tokens cached so far (the same in every layer)."""
        return self.layers[0].length
