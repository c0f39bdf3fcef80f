"""The position-wise feed-forward network: C -> 4C -> GELU -> C."""

import numpy as np

from .activations import GELU
from .config import ConfigLike, as_config
from .layers import Linear, Module, Sequential, as_rng

__all__ = ["FeedForward"]


class FeedForward(Module):
    """FFN(x) = GELU(x W1^T + b1) W2^T + b2, widening to 4C in between (Vaswani et al., 2017)."""

    def __init__(self, cfg: ConfigLike, *, rng=None, dtype=np.float32, init=True):
        super().__init__()
        cfg, rng = as_config(cfg), as_rng(rng)
        self.layers = Sequential(
            Linear(cfg.emb_dim, 4 * cfg.emb_dim, rng=rng, dtype=dtype, init=init),  # (B, T, C) -> (B, T, 4C)
            GELU(),
            Linear(4 * cfg.emb_dim, cfg.emb_dim, rng=rng, dtype=dtype, init=init),  # (B, T, 4C) -> (B, T, C)
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.layers(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Back through the second Linear, the GELU and the first Linear (``Sequential.backward``)."""
        return self.layers.backward(dout)
