"""The building blocks are ``torch.nn``'s own; this file adds only an injectable dropout mask.

``numpy_gpt/layers.py`` re-implements the same slice of ``torch.nn`` in NumPy.
``Dropout.mask_fn``, when set, supplies the boolean keep-mask for a given
(shape, p) (as a NumPy array), so the tests can feed both packages the same masks;
``Dropout.generator``, when set (``load_pretrained(generator=...)``), is the
generator its masks draw from instead of torch's global one (the twin of NumPy's ``Dropout.rng``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["Module", "ModuleList", "Sequential", "Linear", "Embedding", "Dropout", "KERNELS"]

# LayerNorm's and GELU's paths: torch's fused kernel for exactly the formula (the default), or the formula written
# out as the NumPy twin runs it. Neither draws random numbers, so the book's dropout masks never depend on it.
KERNELS = ("torch", "written")

Module, ModuleList, Sequential, Linear, Embedding = nn.Module, nn.ModuleList, nn.Sequential, nn.Linear, nn.Embedding
MaskFn = Callable[[tuple, float], np.ndarray]  # (shape, p) -> boolean keep-mask


class Dropout(nn.Dropout):
    """Inverted dropout (Srivastava et al., 2014): zero with probability p, scale the rest by 1 / (1 - p).

    In eval mode, or with p = 0, it returns its input unchanged. ``mask_fn``,
    when set, supplies the keep-mask for a given (shape, p) instead of torch's generator;
    ``generator``, when set, draws the keep-mask (uniform >= p, as NumPy's) instead of the global one.
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        super().__init__(p)
        self.mask_fn: MaskFn | None = None
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.mask_fn is not None:
            keep = torch.from_numpy(self.mask_fn(tuple(x.shape), self.p)).to(x.device)
        elif self.generator is not None:
            keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        else:
            return super().forward(x)  # the book's path: torch's global generator
        return x * keep / (1.0 - self.p)
