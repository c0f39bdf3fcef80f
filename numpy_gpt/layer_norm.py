"""Layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016)."""

import numpy as np

from .layers import Module

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """y = scale * (x - mean) / sqrt(var + eps) + shift over the last axis, with the biased variance (as GPT-2)."""

    def __init__(self, emb_dim: int, *, dtype=np.float32):
        super().__init__()
        self.eps = 1e-5
        self.scale = np.ones(emb_dim, dtype=dtype)
        self.shift = np.zeros(emb_dim, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)  # (B, T, C) -> (B, T, 1)
        norm_x = x - mean  # our own temporary; every step below works on it in place
        var = np.mean(np.square(norm_x), axis=-1, keepdims=True)  # biased: divides by C, not C - 1
        norm_x /= np.sqrt(var + self.eps)
        norm_x *= self.scale
        norm_x += self.shift
        return norm_x
