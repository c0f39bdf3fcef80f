"""Layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016)."""

from typing import NamedTuple

import numpy as np

from .layers import Module

__all__ = ["LayerNorm", "LayerNormSaved"]


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
        mean = x.mean(axis=-1, keepdims=True)  # (B, T, C) -> (B, T, 1)
        norm_x = x - mean  # our own temporary; every step below works on it in place
        var = np.mean(np.square(norm_x), axis=-1, keepdims=True)  # biased: divides by C, not C - 1
        std = np.sqrt(var + self.eps)  # (B, T, 1)
        norm_x /= std
        self.save_for_backward(LayerNormSaved(norm_x, std))  # kept unscaled: so the output gets its own array below
        y = norm_x * self.scale if self.keeps_activations else np.multiply(norm_x, self.scale, out=norm_x)
        y += self.shift
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
        dout_x_hat = dout * x_hat  # (B, T, C)
        self.accumulate_grad("scale", dout_x_hat.reshape(-1, width).sum(axis=0))  # (C,)
        self.accumulate_grad("shift", dout.reshape(-1, width).sum(axis=0))  # (C,)
        dout_x_hat *= self.scale  # g x_hat
        g_x_hat_mean = dout_x_hat.mean(axis=-1, keepdims=True)  # (B, T, 1)
        dx = dout * self.scale  # g
        dx -= dx.mean(axis=-1, keepdims=True)
        dx -= np.multiply(x_hat, g_x_hat_mean, out=dout_x_hat)  # reuse the (B, T, C) temporary
        dx /= std
        return dx
