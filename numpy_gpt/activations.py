"""Activation functions: GELU for the feed-forward network, softmax for attention and sampling."""

import math
from typing import NamedTuple

import numpy as np

from .layers import Module, map_rows

__all__ = [
    "GELU", "GELUSaved", "gelu", "gelu_backward", "softmax", "softmax_rows", "softmax_backward",
    "softmax_backward_rows",
]

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
        gate = np.empty(x.shape, x.dtype)
        map_rows(gelu, x, gate)  # gelu (below), block by block of rows on every core
        self.save_for_backward(GELUSaved(x))
        return gate

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dx = dy * GELU'(x) (``gelu_backward``, below), block by block of rows on every core."""
        x = self.saved_for_backward(GELUSaved).x
        dx = np.empty(x.shape, x.dtype)
        map_rows(gelu_backward, x, dout, dx)
        return dx


def gelu(x: np.ndarray, gate: np.ndarray) -> None:
    """gate = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written into ``gate``.

    Step by step in place; x**3 would call pow(), about 80x slower than two multiplies.
    """
    np.multiply(x, x, out=gate)
    gate *= x  # x^3
    gate *= 0.044715
    gate += x  # x + 0.044715 x^3
    gate *= _SQRT_2_OVER_PI
    np.tanh(gate, out=gate)
    gate += 1.0
    gate *= 0.5
    gate *= x  # 0.5 x (1 + tanh(...))


def gelu_backward(x: np.ndarray, dout: np.ndarray, dx: np.ndarray) -> None:
    """dx = dy * 0.5 (1 + t + x (1 - t^2) du/dx), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3).

    The product rule on 0.5 x (1 + tanh u): 0.5 (1 + t) from x, 0.5 x (1 - t^2) u' from
    tanh' = 1 - tanh^2, with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2). Written into ``dx``.
    """
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
    np.multiply(t, t, out=dx)
    np.subtract(1.0, dx, out=dx)  # 1 - t^2
    dx *= du
    dx *= x
    dx += t
    dx += 1.0
    dx *= 0.5  # 0.5 (1 + t + x (1 - t^2) u')
    dx *= dout


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j).

    Subtracting the row maximum changes nothing mathematically and keeps exp
    from overflowing; -inf entries (masked positions) become exactly 0. ``out``
    may be ``x`` itself when the caller owns ``x`` (e.g. fresh attention scores).
    Over the last axis it runs ``softmax_rows`` block by block of rows on every core.
    """
    out = np.empty(x.shape, x.dtype) if out is None else out
    if axis in (-1, x.ndim - 1):
        map_rows(softmax_rows, x, out)
    else:
        np.copyto(out, np.moveaxis(softmax(np.moveaxis(x, axis, -1)), -1, axis))
    return out


def softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """softmax over the last axis, written into ``out`` (which may be ``x``): three passes, two in place."""
    np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)


def softmax_backward(dout: np.ndarray, out: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = y * (dy - sum_j dy_j y_j) for y = softmax(x): the Jacobian diag(y) - y y^T applied to dy, never built.

    From dy_i/dx_k = y_i (delta_ik - y_k). Where y is 0 (masked positions) dx is exactly 0.
    Over the last axis it runs ``softmax_backward_rows`` block by block of rows on every core.
    """
    if axis not in (-1, out.ndim - 1):
        return np.moveaxis(softmax_backward(np.moveaxis(dout, axis, -1), np.moveaxis(out, axis, -1)), -1, axis)
    dx = np.empty(out.shape, out.dtype)
    map_rows(softmax_backward_rows, dout, out, dx)
    return dx


def softmax_backward_rows(dout: np.ndarray, out: np.ndarray, dx: np.ndarray) -> None:
    """dx = y * dy - y * sum_j dy_j y_j over the last axis, written into ``dx``."""
    np.multiply(dout, out, out=dx)
    row_dot = dx.sum(axis=-1, keepdims=True)  # sum_j dy_j y_j
    dx -= out * row_dot
