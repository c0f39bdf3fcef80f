"""Backward of GELU and softmax: against torch autograd (GELU also against ``F.gelu(approximate="tanh")``'s
autograd) and finite differences; softmax's backward is exactly zero where a weight is zero (masked)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import FD_STEP, assert_directional_derivative, assert_grad_within_budget
from numpy_gpt.activations import softmax, softmax_backward
from tests.grad_checks import check_against_torch, check_finite_differences, directional_derivative
from tests.strategies import DTYPES, activations, seeds
from torch_gpt.layers import KERNELS


def upstream(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kernel", KERNELS)  # F.gelu's autograd, and autograd through the written-out formula
@given(st.data(), DTYPES, seeds)
def test_gelu_backward_matches_torch_twin_and_f_gelu(kernel, data, dtype, seed):
    x = data.draw(activations(7, dtype))
    dout = upstream(x.shape, dtype, seed)
    _, dx, _, dx_magnitude = check_against_torch(numpy_gpt.GELU(), torch_gpt.GELU(kernel=kernel), x, dout)
    x_t = torch.tensor(x, requires_grad=True)
    (dx_ref,) = torch.autograd.grad(F.gelu(x_t, approximate="tanh"), x_t, torch.from_numpy(dout))
    assert_grad_within_budget(dx, dx_ref.numpy(), dx_magnitude, 1, steps=2, dtype=dtype)


@settings(max_examples=10)
@given(st.data(), seeds)
def test_gelu_backward_matches_finite_differences(data, seed):
    x = data.draw(activations(5, np.float64, scales=(0.1, 1.0, 3.0)))
    check_finite_differences(numpy_gpt.GELU(), x, upstream(x.shape, np.float64, seed), seed)


def softmax_fd(z, dout, v):
    """d/dt sum(dout * softmax(z + t v)) and its truncation bound, by the same Richardson-combined central
    differences as every FD check."""
    point = {"z": z.copy()}
    return directional_derivative(lambda: float(np.sum(dout * softmax(point["z"]))), point, {"z": v}, FD_STEP)


@given(st.data(), DTYPES, seeds)
def test_softmax_backward_matches_torch_and_finite_differences(data, dtype, seed):
    z = data.draw(activations(6, dtype))
    dout = upstream(z.shape, dtype, seed)
    y = softmax(z)
    dz = softmax_backward(dout, y)
    assert dz.dtype == dtype
    z_t = torch.tensor(z, requires_grad=True)
    (dz_t,) = torch.autograd.grad(torch_gpt.softmax(z_t, dim=-1), z_t, torch.from_numpy(dout))
    y64 = np.abs(softmax(z.astype(np.float64)))
    terms = y64 * (np.abs(dout) + (np.abs(dout) * y64).sum(-1, keepdims=True))  # y (|dy| + sum |dy y|)
    assert_grad_within_budget(dz, dz_t.numpy(), terms, z.shape[-1], steps=4, dtype=dtype)
    z64, dout64 = z.astype(np.float64), dout.astype(np.float64)
    v = upstream(z.shape, np.float64, seed + 1)
    dz64 = softmax_backward(dout64, softmax(z64))
    objective_terms = float(np.sum(np.abs(dout64 * softmax(z64))))  # f = sum dout * y
    finite_difference, truncation = softmax_fd(z64, dout64, v)
    assert_directional_derivative(finite_difference, float(np.sum(dz64 * v)), float(np.sum(np.abs(dz64 * v))),
                                  objective_terms, truncation)


def test_softmax_backward_is_zero_where_the_weight_is_zero():
    z = np.array([[0.5, -np.inf, 1.0, -np.inf]])
    dz = softmax_backward(np.array([[1.0, 5.0, -2.0, 7.0]]), softmax(z))
    assert dz[0, 1] == 0.0 and dz[0, 3] == 0.0
    assert abs(dz.sum()) < 1e-15  # softmax ignores a shift of all its inputs, so the gradient sums to 0
