"""Activation functions: GELU for the feed-forward network, softmax for attention and sampling."""

import math

import numpy as np

from .layers import Module

__all__ = ["GELU", "softmax"]

# A Python float, not np.sqrt(...): a NumPy float64 scalar would upcast float32 activations.
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Module):
    """GELU(x) ~= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation GPT-2 uses.

    Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        # Step by step on one temporary of x's shape; x**3 would call pow(), about 80x slower than two multiplies.
        inner = x * x
        inner *= x  # x^3
        inner *= 0.044715
        inner += x  # x + 0.044715 x^3
        inner *= _SQRT_2_OVER_PI
        gate = np.tanh(inner, out=inner)  # in place on our own temporary
        gate += 1.0
        gate *= 0.5
        gate *= x  # 0.5 x (1 + tanh(...))
        return gate


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j).

    Subtracting the row maximum changes nothing mathematically and keeps exp
    from overflowing; -inf entries (masked positions) become exactly 0. ``out``
    may be ``x`` itself when the caller owns ``x`` (e.g. fresh attention scores).
    """
    shifted = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(shifted, out=shifted)  # in place on our own temporary
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted
