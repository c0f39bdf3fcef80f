"""Backward of LayerNorm: against the torch twin's autograd and ``F.layer_norm``'s, finite differences,
and its invariant (dx sums to 0 over the features: LayerNorm ignores a shift of its input)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import assert_grad_within_budget
from tests.grad_checks import check_against_torch, check_finite_differences, numpy_backward
from tests.strategies import DTYPES, activations, seeds
from tests.twins import copy_weights, randomise
from torch_gpt.layers import KERNELS


def upstream(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kernel", KERNELS)  # F.layer_norm's autograd, and autograd through the written-out formula
@given(st.data(), DTYPES, st.integers(1, 9), seeds)
def test_layer_norm_backward_matches_torch(kernel, data, dtype, width, seed):
    np_norm = numpy_gpt.LayerNorm(width, dtype=dtype)
    randomise(np_norm, seed)
    torch_norm = copy_weights(np_norm, torch_gpt.LayerNorm(width, kernel=kernel))
    x = data.draw(activations(width, dtype))
    dout = upstream(x.shape, dtype, seed)
    _, dx, _, dx_magnitude = check_against_torch(np_norm, torch_norm, x, dout)
    x_t = torch.tensor(x, requires_grad=True)
    out = F.layer_norm(x_t, (width,), torch.from_numpy(np_norm.scale), torch.from_numpy(np_norm.shift), eps=1e-5)
    (dx_ref,) = torch.autograd.grad(out, x_t, torch.from_numpy(dout))
    assert_grad_within_budget(dx, dx_ref.numpy(), dx_magnitude, width, steps=4, dtype=dtype)


@settings(max_examples=10)
@given(st.data(), st.integers(2, 8), seeds)
def test_layer_norm_backward_matches_finite_differences(data, width, seed):
    norm = numpy_gpt.LayerNorm(width, dtype=np.float64)
    randomise(norm, seed)
    x = data.draw(activations(width, np.float64, scales=(1.0,)))
    check_finite_differences(norm, x, upstream(x.shape, np.float64, seed), seed)


@given(st.data(), st.integers(1, 9), seeds)
def test_layer_norm_input_gradient_sums_to_zero(data, width, seed):
    """LayerNorm ignores a shift of all its inputs (x - mean), so its input gradient sums to 0 over features."""
    x = data.draw(activations(width, np.float64))
    norm = numpy_gpt.LayerNorm(width, dtype=np.float64)
    randomise(norm, seed)
    dout = upstream(x.shape, np.float64, seed)
    _, dx, _ = numpy_backward(norm, x, dout)
    g = np.abs(dout * norm.scale)
    x_hat = np.abs(x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + norm.eps)
    terms = (g + g.mean(-1, keepdims=True) + x_hat * (g * x_hat).mean(-1, keepdims=True)).sum(-1)
    assert_grad_within_budget(dx.sum(-1), 0.0, terms / np.sqrt(x.var(-1) + norm.eps), width, 1, np.float64,
                              both_rounded=False, name="sum of dx")
