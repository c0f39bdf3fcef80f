"""Activation functions: GELU for the feed-forward network, softmax for attention and sampling."""

import math
from typing import NamedTuple

import numpy as np

from .layers import Module

__all__ = ["GELU", "GELUSaved", "softmax", "softmax_backward"]

# A Python float, not np.sqrt(...): a NumPy float64 scalar would upcast float32 activations.
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELUSaved(NamedTuple):
    """What GELU's backward needs: its input (tanh is recomputed rather than kept: one array less per layer)."""

    x: np.ndarray


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
        self.save_for_backward(GELUSaved(x))
        return gate

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dx = dy * 0.5 (1 + t + x (1 - t^2) du/dx), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3).

        The product rule on 0.5 x (1 + tanh u): 0.5 (1 + t) from x, 0.5 x (1 - t^2) u' from
        tanh' = 1 - tanh^2, with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
        """
        x = self.saved_for_backward(GELUSaved).x
        x_sq = x * x
        t = x_sq * 0.044715
        t += 1.0
        t *= x
        t *= _SQRT_2_OVER_PI  # u = sqrt(2/pi) x (1 + 0.044715 x^2)
        np.tanh(t, out=t)
        du = x_sq  # reuse: u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        du *= 3.0 * 0.044715
        du += 1.0
        du *= _SQRT_2_OVER_PI
        dx = t * t
        np.subtract(1.0, dx, out=dx)  # 1 - t^2
        dx *= du
        dx *= x
        dx += t
        dx += 1.0
        dx *= 0.5  # 0.5 (1 + t + x (1 - t^2) u')
        dx *= dout
        return dx


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


def softmax_backward(dout: np.ndarray, out: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = y * (dy - sum_j dy_j y_j) for y = softmax(x): the Jacobian diag(y) - y y^T applied to dy, never built.

    From dy_i/dx_k = y_i (delta_ik - y_k). Where y is 0 (masked positions) dx is exactly 0.
    """
    dx = dout * out
    row_dot = dx.sum(axis=axis, keepdims=True)  # sum_j dy_j y_j
    dx -= out * row_dot
    return dx
