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
        return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - max_j x_j) / sum_k exp(x_k - max_j x_j); torch subtracts the max itself."""
    return torch.softmax(x, dim=dim)
