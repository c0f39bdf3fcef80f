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

import numpy as np

from .config import ConfigLike, as_config
from .validation import as_int, check_cache, check_cache_layout, check_float_dtype, check_memory

__all__ = ["LayerCache", "KVCache"]


class LayerCache:
    """One attention layer's keys and values for positions 0 .. length - 1, in (B, H, T_max, D) buffers."""

    def __init__(self, batch_size: int, n_heads: int, max_len: int, head_dim: int, *, dtype=np.float32):
        shape = (batch_size, n_heads, max_len, head_dim)  # (B, H, T_max, D)
        self.keys = np.zeros(shape, dtype=dtype)
        self.values = np.zeros(shape, dtype=dtype)
        self.length = 0

    def append(self, keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store the new tokens' (B, H, T, D) keys and values after the cached ones; return all of them so far."""
        start, end = self.length, self.length + keys.shape[-2]
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # views: (B, H, T_cached + T, D)


class KVCache:
    """Every layer's ``LayerCache`` for one batch, with room for ``max_len`` tokens (default: the context)."""

    def __init__(self, cfg: ConfigLike, batch_size: int, max_len: int | None = None, *, dtype=np.float32):
        cfg = as_config(cfg)
        batch_size = as_int("batch_size", batch_size, 1)
        max_len = min(as_int("max_len", cfg.context_length if max_len is None else max_len, 1), cfg.context_length)
        check_float_dtype("KVCache dtype", str(np.dtype(dtype)), np.issubdtype(dtype, np.floating))
        check_memory(2 * cfg.n_layers * batch_size * max_len * cfg.emb_dim * np.dtype(dtype).itemsize, "the KV cache")
        self.batch_size, self.max_len = batch_size, max_len
        self.layers = [
            LayerCache(batch_size, cfg.n_heads, self.max_len, cfg.head_dim, dtype=dtype) for _ in range(cfg.n_layers)
        ]

    @property
    def length(self) -> int:
        """Tokens cached so far (the same in every layer)."""
        return self.layers[0].length

    def layout(self) -> tuple:
        """(layers, heads, head width, dtype, device): what a model must match to use this cache."""
        _, n_heads, _, head_dim = self.layers[0].keys.shape
        return len(self.layers), n_heads, head_dim, str(self.layers[0].keys.dtype), "cpu"

    def check_fits(self, cfg, batch_size: int, seq_len: int, dtype, device) -> None:
        """Raise ValueError unless a model of ``cfg`` in ``dtype`` on ``device`` can add ``seq_len`` tokens here."""
        check_cache_layout(self.layout(), (cfg.n_layers, cfg.n_heads, cfg.head_dim, str(np.dtype(dtype)), device))
        check_cache(batch_size, seq_len, self.length, self.batch_size, self.max_len, cfg.context_length)
