"""Layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016)."""

import torch
from torch import nn

from .layers import Module

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """y = scale * (x - mean) / sqrt(var + eps) + shift over the last axis, with the biased variance (as GPT-2)."""

    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (B, T, C) -> (B, T, 1)
        norm_x = x - mean
        var = torch.mean(torch.square(norm_x), dim=-1, keepdim=True)  # biased: divides by C, not C - 1
        norm_x = norm_x / torch.sqrt(var + self.eps)  # not in place: autograd kept norm_x for square's backward
        norm_x *= self.scale
        norm_x += self.shift
        return norm_x
