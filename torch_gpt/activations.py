"""Activation functions: GELU for the feed-forward network, softmax for attention and sampling."""

import math

import torch

from .layers import Module

__all__ = ["GELU", "softmax"]

# A Python float, so no tensor constant decides the dtype.
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Module):
    """GELU(x) ~= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation GPT-2 uses.

    Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Step by step on one temporary of x's shape, as the NumPy twin; each in-place step is autograd-safe.
        inner = x * x
        inner *= x  # x^3
        inner *= 0.044715
        inner += x  # x + 0.044715 x^3
        inner *= _SQRT_2_OVER_PI
        gate = torch.tanh(inner)  # not in place: autograd keeps tanh's output for the backward pass
        gate = gate + 1.0
        gate *= 0.5
        gate *= x  # 0.5 x (1 + tanh(...))
        return gate


def softmax(x: torch.Tensor, dim: int = -1, out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j); torch subtracts the max itself.

    ``out`` may be ``x`` itself, as in the NumPy twin; torch refuses ``out`` when autograd is recording.
    """
    return torch.softmax(x, dim=dim, out=out)
