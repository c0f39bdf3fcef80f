"""Layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016)."""

from functools import partial
from typing import NamedTuple

import numpy as np

from .layers import Module, map_rows

__all__ = ["LayerNorm", "LayerNormSaved", "layer_norm", "layer_norm_backward"]


class LayerNormSaved(NamedTuple):
    """What LayerNorm's backward needs: x_hat = (x - mean) / std, unscaled, and std (B, T, 1)."""

    x_hat: np.ndarray
    std: np.ndarray


class LayerNorm(Module):
    """y = scale * (x - mean) / sqrt(var + eps) + shift over the last axis, with the biased variance (as GPT-2)."""

    def __init__(self, emb_dim: int, *, dtype=np.float32):
        super().__init__()
        self.eps = 1e-5
        self.scale = np.ones(emb_dim, dtype=dtype)
        self.shift = np.zeros(emb_dim, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        norm_x = np.empty(x.shape, x.dtype)  # (B, T, C)
        std = np.empty(x.shape[:-1] + (1,), x.dtype)  # (B, T, 1)
        y = np.empty_like(norm_x) if self.keeps_activations else norm_x  # x_hat is kept unscaled: y needs its own
        kernel = partial(layer_norm, scale=self.scale, shift=self.shift, eps=self.eps)
        map_rows(kernel, x, norm_x, std, y)  # layer_norm (below), block by block of rows on every core
        self.save_for_backward(LayerNormSaved(norm_x, std))
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dx = (g - mean(g) - x_hat mean(g x_hat)) / std, with g = dy * scale; dscale = sum dy x_hat, dshift = sum dy.

        Derivation, over one row of C features: y = scale * x_hat + shift, x_hat = (x - mu) / std,
        std = sqrt(var + eps). With g = dL/dx_hat = dy * scale, x_hat_j depends on x_k directly
        (delta_jk / std), through mu (d mu / dx_k = 1 / C) and through std (d var / dx_k = 2 (x_k - mu) / C,
        as sum_j (x_j - mu) = 0, so d std / dx_k = x_hat_k / C). Hence
        d x_hat_j / dx_k = (delta_jk - 1/C - x_hat_j x_hat_k / C) / std, and summing g_j times it over j:
        dL/dx_k = (g_k - (1/C) sum_j g_j - x_hat_k (1/C) sum_j g_j x_hat_j) / std.
        """
        x_hat, std = self.saved_for_backward(LayerNormSaved)
        width = dout.shape[-1]
        self.accumulate_grad("scale", (dout * x_hat).reshape(-1, width).sum(axis=0))  # (C,)
        self.accumulate_grad("shift", dout.reshape(-1, width).sum(axis=0))  # (C,)
        dx = np.empty(x_hat.shape, x_hat.dtype)  # (B, T, C)
        map_rows(partial(layer_norm_backward, scale=self.scale), dout, x_hat, std, dx)  # on every core
        return dx


def layer_norm(x, x_hat, std, y, *, scale, shift, eps: float) -> None:
    """x_hat = (x - mean) / std, std = sqrt(var + eps), y = scale * x_hat + shift, row by row, written into
    ``x_hat``, ``std`` and ``y`` (which may be ``x_hat`` itself)."""
    mean = x.mean(axis=-1, keepdims=True)  # (rows, C) -> (rows, 1)
    np.subtract(x, mean, out=x_hat)  # every step below works on it in place
    var = np.mean(np.square(x_hat), axis=-1, keepdims=True)  # biased: divides by C, not C - 1
    var += eps
    np.sqrt(var, out=std)
    x_hat /= std
    np.multiply(x_hat, scale, out=y)
    y += shift


def layer_norm_backward(dout, x_hat, std, dx, *, scale) -> None:
    """dx = (g - mean(g) - x_hat mean(g x_hat)) / std with g = dy * scale, row by row, written into ``dx``."""
    g = np.multiply(dout, scale, out=dx)
    g_x_hat = g * x_hat  # (rows, C), a block-sized temporary
    g_x_hat_mean = g_x_hat.mean(axis=-1, keepdims=True)  # (rows, 1)
    g -= g.mean(axis=-1, keepdims=True)
    g -= np.multiply(x_hat, g_x_hat_mean, out=g_x_hat)
    g /= std
