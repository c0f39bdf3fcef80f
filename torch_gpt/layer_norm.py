"""Layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016).

``LayerNorm`` runs, by default, torch's fused kernel for exactly this formula (``F.layer_norm``, the
production twin's fast path: one pass, no temporaries); ``layer_norm`` below is the written-out formula the
NumPy twin runs, statement for statement, one attribute away (``kernel="written"``). Neither draws random
numbers, so the choice never moves the book's dropout masks; a test proves the two equal, forward and backward.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .layers import KERNELS, Module
from .validation import check_kernel

__all__ = ["LayerNorm", "layer_norm"]


class LayerNorm(Module):
    """y = scale * (x - mean) / sqrt(var + eps) + shift over the last axis, with the biased variance (as GPT-2)."""

    def __init__(self, emb_dim: int, *, kernel: str = "torch"):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))
        check_kernel(kernel, KERNELS)
        self.kernel = kernel  # "torch" (F.layer_norm) | "written" (layer_norm, below, the NumPy twin's statements)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "torch":
            return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)
        return layer_norm(x, self.scale, self.shift, self.eps)  # autograd differentiates it (NumPy: by hand)


def layer_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float) -> torch.Tensor:
    """x_hat = (x - mean) / std, std = sqrt(var + eps), y = scale * x_hat + shift, over the last axis."""
    mean = x.mean(dim=-1, keepdim=True)  # (..., C) -> (..., 1)
    x_hat = x - mean
    var = torch.mean(torch.square(x_hat), dim=-1, keepdim=True)  # biased: divides by C, not C - 1
    var = var + eps
    std = torch.sqrt(var)
    x_hat = x_hat / std  # not in place: autograd kept x_hat for square's backward
    y = x_hat * scale
    y += shift
    return y
