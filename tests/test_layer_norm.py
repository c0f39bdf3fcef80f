"""LayerNorm: NumPy vs the torch twin vs ``F.layer_norm``, and the normalisation invariant."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import NORMALISED, assert_close, assert_matches_reference
from tests.strategies import DTYPES, activations, seeds
from tests.twins import copy_weights, randomise, run_torch


@given(st.data(), DTYPES, st.integers(2, 33), seeds)
def test_layer_norm_matches_torch_twin_and_f_layer_norm(data, dtype, width, seed):
    x = data.draw(activations(width, dtype))
    np_norm = numpy_gpt.LayerNorm(width, dtype=dtype)
    randomise(np_norm, seed)
    torch_norm = copy_weights(np_norm, torch_gpt.LayerNorm(width))
    out = np_norm(x)
    assert out.dtype == dtype
    f_layer_norm = F.layer_norm(
        torch.from_numpy(x), (width,), torch.from_numpy(np_norm.scale), torch.from_numpy(np_norm.shift), eps=1e-5
    )
    assert torch_norm.kernel == "torch"  # the default: F.layer_norm; then the written-out formula
    on_kernel = run_torch(torch_norm, x)
    torch_norm.kernel = "written"
    reference = tol.layer_norm_budget(x, 0.0, np_norm.scale, np_norm.shift, np_norm.eps)
    assert_matches_reference(reference, dtype, out, on_kernel, run_torch(torch_norm, x), f_layer_norm.numpy())


def test_an_unknown_kernel_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="^kernel must be one of 'torch', 'written', got 'fast'$"):
        torch_gpt.LayerNorm(4, kernel="fast")
    with pytest.raises(ValueError, match="^kernel must be one of 'torch', 'written', got None$"):
        torch_gpt.GELU(kernel=None)


@given(st.data(), DTYPES, st.integers(2, 33))
def test_default_layer_norm_output_has_mean_zero_and_unit_variance(data, dtype, width):
    x = data.draw(activations(width, dtype))
    x = x + np.float32(3.0).astype(dtype)  # an offset the norm must remove
    out = numpy_gpt.LayerNorm(width, dtype=dtype)(x)
    var = x.var(axis=-1, keepdims=True)
    expected_var = var / (var + 1e-5)  # eps inside the sqrt shrinks the variance slightly
    assert_close(out.mean(axis=-1), np.zeros(out.shape[:-1]), NORMALISED)
    assert_close(out.var(axis=-1, keepdims=True), expected_var, NORMALISED)


def test_layer_norm_uses_the_biased_variance():
    x = np.array([[[1.0, 3.0]]])  # mean 2, biased variance 1, unbiased 2
    norm = numpy_gpt.LayerNorm(2, dtype=np.float64)
    _, budget = tol.layer_norm_budget(x, 0.0, norm.scale, norm.shift, norm.eps)
    tol.assert_within_budget(norm(x), [[[-1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(1 + 1e-5)]]], budget, np.float64)
    assert torch_gpt.LayerNorm(2).eps == numpy_gpt.LayerNorm(2).eps == 1e-5
