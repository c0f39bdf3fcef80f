"""GELU and softmax: NumPy vs the torch twin vs torch's own functions, and their invariants."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from tests.strategies import DTYPES, activations, seeds
from tests.twins import run_torch
from torch_gpt.layers import KERNELS


@given(st.data(), DTYPES)
def test_gelu_matches_torch_twin_and_f_gelu_tanh(data, dtype):
    x = data.draw(activations(7, dtype))
    out = numpy_gpt.GELU()(x)
    assert out.dtype == dtype
    f_gelu = F.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    on_kernel, written = (run_torch(torch_gpt.GELU(kernel=kernel), x) for kernel in KERNELS)
    assert_matches_reference(tol.gelu_budget(x, 0.0), dtype, out, on_kernel, written, f_gelu)


def test_gelu_known_values():
    # GELU(0) = 0, GELU(x) -> x for large x, -> 0 for very negative x; GELU(1) = 0.8411920 (tanh form).
    x = np.array([[[0.0, 1.0, 10.0, -10.0]]], dtype=np.float64)
    _, budget = tol.gelu_budget(x, 0.0)
    expected = [[[0.0, 0.8411919906082768, 10.0, 0.0]]]
    tol.assert_within_budget(numpy_gpt.GELU()(x), expected, budget, np.float64)


@given(st.data(), DTYPES, st.integers(-1, 2))
def test_softmax_matches_torch_and_rows_sum_to_one(data, dtype, axis):
    x = data.draw(activations(6, dtype))
    out = numpy_gpt.softmax(x, axis=axis)
    assert out.dtype == dtype
    expected, budget = tol.softmax_budget(x, 0.0, axis=axis)
    assert_matches_reference((expected, budget), dtype, out, torch_gpt.softmax(torch.from_numpy(x), dim=axis).numpy())
    terms = x.shape[axis]
    row_sum_budget = budget.sum(axis=axis) + np.sqrt(terms) + 1  # a K-term sum of weights that sum to 1
    assert_matches_reference((np.ones_like(row_sum_budget), row_sum_budget), dtype, out.sum(axis=axis))
    assert (out >= 0).all()


def test_softmax_is_stable_and_maps_minus_inf_to_zero():
    x = np.array([[1000.0, 1000.0, -np.inf], [-1000.0, 0.0, -np.inf]], dtype=np.float32)
    out = numpy_gpt.softmax(x)
    expected, budget = tol.softmax_budget(x, 0.0)
    np.testing.assert_array_equal(expected, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])  # exp(-1000) underflows to 0
    assert_matches_reference((expected, budget), np.float32, out)
    assert out[0, 2] == 0.0 and np.isfinite(out).all()


@given(seeds)
def test_softmax_does_not_mutate_its_input(seed):
    x = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    before = x.copy()
    numpy_gpt.softmax(x)
    numpy_gpt.GELU()(x)
    np.testing.assert_array_equal(x, before)


def test_gelu_constant_does_not_upcast_float32():
    # math.sqrt(2/pi) is a Python float; np.sqrt(2/np.pi) would be a float64 scalar.
    x = np.full((1, 1, 3), 0.5, dtype=np.float32)
    assert numpy_gpt.GELU()(x).dtype == np.float32
    assert isinstance(numpy_gpt.activations._SQRT_2_OVER_PI, float) and math.isclose(
        numpy_gpt.activations._SQRT_2_OVER_PI, math.sqrt(2 / math.pi)
    )
