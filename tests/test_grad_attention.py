"""Backward of every attention variant, ``qkv_bias`` on and off, against torch autograd (eval mode, and
training mode with shared dropout masks) and finite differences; a future token gets no gradient."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from tests.grad_checks import check_against_torch, check_finite_differences, numpy_backward
from tests.strategies import DTYPES, activations, seeds
from tests.test_attention import CAUSAL, VARIANTS, attention_shapes, build, inputs


def upstream(x, width, dtype, seed):
    return np.random.default_rng(seed).standard_normal(x.shape[:-1] + (width,)).astype(dtype)


@pytest.mark.parametrize("name", VARIANTS)
@settings(max_examples=15)
@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds)
def test_attention_backward_matches_torch_in_eval_mode(name, data, shape, dtype, seed):
    np_att, torch_att = build(name, shape, 0.5, dtype, seed)
    x = inputs(data, shape, dtype, scales=(0.1, 1.0))
    width = shape[1] * (shape[3] if name == "MultiHeadAttentionWrapper" else 1)
    check_against_torch(np_att, torch_att, x, upstream(x, width, dtype, seed))


@pytest.mark.parametrize("name", CAUSAL)
@settings(max_examples=10)
@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds, p=st.sampled_from([0.1, 0.5]))
def test_attention_backward_with_shared_dropout_masks_matches_torch(name, data, shape, dtype, seed, p):
    np_att, torch_att = build(name, shape, p, dtype, seed, train=True)
    x = inputs(data, shape, dtype, scales=(0.1, 1.0))
    width = shape[1] * (shape[3] if name == "MultiHeadAttentionWrapper" else 1)
    check_against_torch(np_att, torch_att, x, upstream(x, width, dtype, seed), mask_seed=seed)


@pytest.mark.parametrize("name", VARIANTS)
@settings(max_examples=8)
@given(data=st.data(), shape=attention_shapes(), seed=seeds, train=st.booleans())
def test_attention_backward_matches_finite_differences(name, data, shape, seed, train):
    np_att, _ = build(name, shape, 0.3, np.float64, seed, train=train)
    x = inputs(data, shape, np.float64, scales=(1.0,))
    width = shape[1] * (shape[3] if name == "MultiHeadAttentionWrapper" else 1)
    check_finite_differences(np_att, x, upstream(x, width, np.float64, seed), seed, mask_seed=seed if train else None)


@given(st.data(), DTYPES, seeds)
def test_simplified_self_attention_backward_matches_torch_and_finite_differences(data, dtype, seed):
    x = data.draw(activations(5, dtype, scales=(0.1, 1.0)))
    dout = upstream(x, 5, dtype, seed)
    check_against_torch(numpy_gpt.SimplifiedSelfAttention(), torch_gpt.SimplifiedSelfAttention(), x, dout)
    check_finite_differences(numpy_gpt.SimplifiedSelfAttention(), x.astype(np.float64), dout.astype(np.float64), seed)


@pytest.mark.parametrize("name", CAUSAL)
@given(data=st.data(), shape=attention_shapes(), seed=seeds)
def test_a_later_token_gets_no_gradient_from_earlier_outputs(name, data, shape, seed):
    np_att, _ = build(name, shape, 0.0, np.float64, seed)
    x = inputs(data, shape, np.float64)
    if x.shape[1] < 2:
        return
    dout = upstream(x, np_att(x).shape[-1], np.float64, seed)
    dout[:, -1] = 0.0  # the loss reads every output but the last one
    _, dx, _ = numpy_backward(np_att, x, dout)
    assert not dx[:, -1].any()  # so the last token, which only the last output sees, gets exactly 0
