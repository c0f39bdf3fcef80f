"""Activation functions: GELU for the feed-forward network, softmax for attention and sampling.

``GELU`` runs, by default, torch's fused kernel for exactly this formula (``F.gelu(approximate="tanh")``,
the production twin's fast path); ``gelu`` below is the written-out formula the NumPy twin runs, statement
for statement, one attribute away (``kernel="written"``). A test proves the two equal, forward and backward.
"""

import math

import torch
import torch.nn.functional as F

from .layers import KERNELS, Module
from .validation import check_kernel

__all__ = ["GELU", "gelu", "softmax"]

# A Python float, so no tensor constant decides the dtype.
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Module):
    """GELU(x) ~= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation GPT-2 uses.

    Hendrycks & Gimpel, "Gaussian Error Linear Units", 2016.
    """

    def __init__(self, *, kernel: str = "torch"):
        super().__init__()
        check_kernel(kernel, KERNELS)
        self.kernel = kernel  # "torch" (F.gelu, tanh form) | "written" (gelu, below, the NumPy twin's statements)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "torch":
            return F.gelu(x, approximate="tanh")
        return gelu(x)  # autograd differentiates it (NumPy: gelu_backward, by hand)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """gate = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Step by step on one temporary of x's shape, as the NumPy twin; each in-place step is autograd-safe.
    """
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
