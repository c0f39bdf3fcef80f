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


# ---------------------------------------------------------------------------------------------------------------
# Backward budgets (issue 9). Appended as its own section so merges with the rest of this file stay easy.
#
# A gradient entry is a sum g = sum_i a_i b_i of K terms (dW = dy^T x over the N positions, db = sum dy, ...).
# Rounding the sum itself costs at most LAMBDA * sqrt(K) * u * sum_i |a_i b_i| (Higham & Mary 2019, probabilistic);
# the factors a_i, b_i arrive with the relative errors of the forward and backward steps that made them, at most
# GRAD_ROUNDINGS_PER_STEP * u per step on the path, which adds steps * GRAD_ROUNDINGS_PER_STEP * u * sum |a_i b_i|.
# So the budget, in units of u, is (sqrt(K) + GRAD_ROUNDINGS_PER_STEP * steps) * sum_i |a_i b_i|, where the
# magnitudes sum_i |a_i b_i| come from a float64 run (tests/grad_checks.py TermMagnitudes) and `steps` counts the
# modules between the loss and the gradient, both ways. Element-wise, so a gradient that cancels to ~0 (a key
# bias: softmax ignores a shift shared by a whole row of scores) is bounded by its terms, not by its value.
# ---------------------------------------------------------------------------------------------------------------

if "LAMBDA" not in globals():  # main's tolerance API defines these; this stand-in goes when it is merged
    LAMBDA = 4.0  # P(|error| > LAMBDA sqrt(K) u sum|terms|) <= 2 exp(-LAMBDA^2 / 2) ~ 7e-4 per sum, far less in practice

    def unit_roundoff(dtype) -> float:
        return float(np.finfo(dtype).eps) / 2.0  # 2**-24 for float32, 2**-53 for float64

# Dependent roundings one backward step applies to an element (the GELU backward, the longest, has ~10;
# a Linear or LayerNorm backward 2 to 6), counted once per module on the path.
GRAD_ROUNDINGS_PER_STEP = 10


def grad_budget(magnitude, terms: int, steps: int) -> np.ndarray:
    """(sqrt(K) + GRAD_ROUNDINGS_PER_STEP * steps) * sum|terms|, in units of u (see the section comment)."""
    return (np.sqrt(terms) + GRAD_ROUNDINGS_PER_STEP * steps) * np.asarray(magnitude, dtype=np.float64)


def assert_grad_within_budget(actual, expected, magnitude, terms: int, steps: int, dtype, *, both_rounded=True,
                              name: str = "gradient"):
    """Element-wise |actual - expected| <= (2 or 1) * LAMBDA * u * grad_budget(...), with a readable report."""
    factor = (2.0 if both_rounded else 1.0) * LAMBDA * unit_roundoff(dtype)
    bound = factor * grad_budget(magnitude, terms, steps)
    error = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else ()
    assert np.all(error <= bound), f"{name}: error {error[worst]:.3g} > budget {bound[worst]:.3g} at {worst}"


def assert_grad_norm_within_budget(actual, expected, magnitude, terms: int, steps: int, dtype, *, both_rounded=True,
                                   name: str = "gradient"):
    """The Frobenius-norm form: ||actual - expected|| <= (2 or 1) * LAMBDA * u * ||grad_budget(...)||, for a whole
    gradient tensor that passed through many sums whose terms are only tracked at the last one (see the comment
    on ``grad_budget``); a single entry may cancel deeper down, the tensor's norm of terms does not."""
    factor = (2.0 if both_rounded else 1.0) * LAMBDA * unit_roundoff(dtype)
    error = np.linalg.norm(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    bound = factor * np.linalg.norm(grad_budget(magnitude, terms, steps))
    assert error <= bound, f"{name}: error norm {error:.3g} > budget {bound:.3g}"


# Central differences along a random direction v in float64, at steps h and h/2 combined by Richardson
# extrapolation: truncation ~ h^4 |f^(5)| and rounding ~ u |f| / h, both below 1e-9 of the derivative's
# terms for h = 1e-4 even where LayerNorm's variance is near eps; a wrong formula (a dropped term, a wrong
# sign) is off by a large fraction of sum |g v|.
FD_STEP = 1e-4
FD_RTOL = 1e-6


def assert_directional_derivative(finite_difference: float, predicted: float, terms_size: float) -> None:
    """|FD - <g, v>| <= FD_RTOL * sum |g v|: the finite difference agrees with the hand-written gradient."""
    assert abs(finite_difference - predicted) <= FD_RTOL * terms_size, (
        f"finite difference {finite_difference!r} vs gradient {predicted!r} (terms {terms_size:.3g})")
