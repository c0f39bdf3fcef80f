"""Every numerical tolerance the tests use, in one place, each with the reason it is what it is.

NumPy (OpenBLAS) and torch (its own CPU kernels / MKL) add the same products
in different orders, so results differ by rounding only: about
eps * sqrt(K) * |typical term| for a length-K dot product, growing mildly with depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


# float64: eps = 2.2e-16; reductions of a few thousand terms and a handful of
# layers stay below 1e-12, so 1e-9 leaves room without hiding a real bug
# (a wrong formula is off by far more than 1e-9).
FLOAT64 = Tolerance(rtol=1e-9, atol=1e-9)

# float32, one component: eps = 1.2e-7; sums over C <= 4 * 64 terms of
# O(1) values plus exp/tanh rounding give errors around 1e-6.
FLOAT32 = Tolerance(rtol=1e-4, atol=1e-5)

# float32, whole models and blocks: errors compound through LayerNorm
# divisions and residual stacks; observed up to ~2e-6 on 124M logits of size ~3.
FLOAT32_MODEL = Tolerance(rtol=1e-3, atol=1e-4)

# A float64 computation against the same formula written out by hand in the test:
# only the order of a few roundings differs, so 1e-12 is already generous.
FORMULA = Tolerance(rtol=1e-12, atol=1e-12)

# Statistical checks on outputs (LayerNorm mean 0 / variance 1): the eps=1e-5
# inside sqrt(var + eps) shifts the variance by up to eps / var.
NORMALISED = Tolerance(rtol=1e-3, atol=1e-4)


def for_dtype(dtype, model: bool = False) -> Tolerance:
    """The NumPy-vs-torch tolerance for a component (or whole model) computed in ``dtype``."""
    if np.dtype(dtype) == np.float64:
        return FLOAT64
    return FLOAT32_MODEL if model else FLOAT32


def assert_close(actual, expected, tol: Tolerance) -> None:
    """Element-wise |actual - expected| <= atol + rtol * |expected|, with a readable report."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol.rtol, atol=tol.atol)
