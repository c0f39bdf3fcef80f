"""Attention, step by step: every variant NumPy vs torch, causality, weights as distributions,
the wrapper equal to the fused multi-head module, and ``F.scaled_dot_product_attention`` as a third opinion."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from tests.strategies import DTYPES, activations, seeds
from tests.tolerances import assert_close, for_dtype
from tests.twins import run_torch, share_masks, twins


@st.composite
def attention_shapes(draw):
    """(d_in, d_out, context_length, num_heads, qkv_bias) with d_out divisible by num_heads."""
    num_heads = draw(st.integers(1, 4))
    return (
        draw(st.integers(1, 9)),
        num_heads * draw(st.integers(1, 5)),
        draw(st.integers(1, 10)),
        num_heads,
        draw(st.booleans()),
    )


def build(name, shape, dropout, dtype, seed, train=False):
    d_in, d_out, context_length, num_heads, qkv_bias = shape
    args = {
        "SelfAttention": (d_in, d_out, qkv_bias),
        "CausalAttention": (d_in, d_out, context_length, dropout, qkv_bias),
        "MultiHeadAttentionWrapper": (d_in, d_out, context_length, dropout, num_heads, qkv_bias),
        "MultiHeadAttention": (d_in, d_out, context_length, dropout, num_heads, qkv_bias),
    }[name]
    return twins(getattr(numpy_gpt, name), getattr(torch_gpt, name), args, dtype, seed, train=train)


VARIANTS = ["SelfAttention", "CausalAttention", "MultiHeadAttentionWrapper", "MultiHeadAttention"]
CAUSAL = VARIANTS[1:]


def inputs(data, shape, dtype, scales=(0.1, 1.0, 10.0)):
    d_in, _, context_length, _, _ = shape
    return data.draw(activations(d_in, dtype, max_tokens=context_length, scales=scales))


@given(st.data(), DTYPES)
def test_simplified_self_attention_matches_torch_and_its_formula(data, dtype):
    x = data.draw(activations(5, dtype))
    out = numpy_gpt.SimplifiedSelfAttention()(x)
    assert out.dtype == dtype
    tol = for_dtype(dtype)
    assert_close(out, run_torch(torch_gpt.SimplifiedSelfAttention(), x), tol)
    scores = np.einsum("btc,bsc->bts", x.astype(np.float64), x.astype(np.float64))
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    assert_close(out, weights @ x.astype(np.float64), tol)


@pytest.mark.parametrize("name", VARIANTS)
@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds)
def test_attention_matches_torch_in_eval_mode(name, data, shape, dtype, seed):
    np_att, torch_att = build(name, shape, 0.5, dtype, seed)
    x = inputs(data, shape, dtype)
    out = np_att(x)
    assert out.dtype == dtype
    assert_close(out, run_torch(torch_att, x), for_dtype(dtype))


@pytest.mark.parametrize("name", CAUSAL)
@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds, p=st.sampled_from([0.1, 0.5]))
def test_attention_dropout_with_shared_masks_matches_torch(name, data, shape, dtype, seed, p):
    np_att, torch_att = build(name, shape, p, dtype, seed, train=True)
    share_masks(np_att, torch_att, seed)
    x = inputs(data, shape, dtype)
    assert_close(np_att(x), run_torch(torch_att, x), for_dtype(dtype))


@pytest.mark.parametrize("name", CAUSAL)
@given(data=st.data(), shape=attention_shapes(), seed=seeds)
def test_changing_a_future_token_never_changes_earlier_outputs(name, data, shape, seed):
    np_att, torch_att = build(name, shape, 0.0, np.float64, seed)
    # Small inputs keep softmax away from saturation, so the change must show at and after `position`.
    x = inputs(data, shape, np.float64, scales=(0.1,))
    position = data.draw(st.integers(0, x.shape[1] - 1))
    changed = x.copy()
    changed[:, position:] += np.random.default_rng(seed).standard_normal(changed[:, position:].shape)
    for run in (np_att, lambda v: run_torch(torch_att, v)):
        before, after = run(x), run(changed)
        np.testing.assert_array_equal(before[:, :position], after[:, :position])
        assert not np.array_equal(before[:, position:], after[:, position:])  # the test can fail


@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds)
def test_causal_attention_weights_are_lower_triangular_distributions(data, shape, dtype, seed):
    np_att, torch_att = build("MultiHeadAttention", shape, 0.0, dtype, seed)
    x = inputs(data, shape, dtype)
    queries, keys = np_att.split_heads(np_att.W_query(x)), np_att.split_heads(np_att.W_key(x))
    weights = np_att.attention_weights(queries, keys)  # (B, H, T, T)
    tol = for_dtype(dtype)
    assert_close(weights.sum(-1), np.ones(weights.shape[:-1]), tol)
    assert (weights >= 0).all()
    assert (np.triu(weights, k=1) == 0).all()
    with torch.no_grad():
        torch_weights = torch_att.attention_weights(torch.from_numpy(queries), torch.from_numpy(keys))
    assert_close(weights, torch_weights.numpy(), tol)


@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds)
def test_multi_head_attention_matches_scaled_dot_product_attention(data, shape, dtype, seed):
    np_att, _ = build("MultiHeadAttention", shape, 0.0, dtype, seed)
    x = inputs(data, shape, dtype)
    q, k, v = (torch.from_numpy(np_att.split_heads(w(x))) for w in (np_att.W_query, np_att.W_key, np_att.W_value))
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
    batch, tokens, _ = x.shape
    context = context.transpose(1, 2).reshape(batch, tokens, -1).numpy()
    assert_close(np_att(x), np_att.out_proj(context), for_dtype(dtype))


@given(data=st.data(), shape=attention_shapes(), dtype=DTYPES, seed=seeds)
def test_wrapper_equals_multi_head_attention_with_matching_weights(data, shape, dtype, seed):
    d_in, d_out, context_length, num_heads, qkv_bias = shape
    head_dim = d_out // num_heads
    wrapper, _ = build("MultiHeadAttentionWrapper", (d_in, head_dim, context_length, num_heads, qkv_bias), 0.0, dtype, seed)
    fused = numpy_gpt.MultiHeadAttention(d_in, d_out, context_length, 0.0, num_heads, qkv_bias, rng=seed, dtype=dtype)
    # Stack each head's projection rows into the fused one; the output projection becomes the identity.
    state = {}
    for name in ("W_query", "W_key", "W_value"):
        state[f"{name}.weight"] = np.concatenate([getattr(h, name).weight for h in wrapper.heads])
        if qkv_bias:
            state[f"{name}.bias"] = np.concatenate([getattr(h, name).bias for h in wrapper.heads])
    state["out_proj.weight"] = np.eye(d_out, dtype=dtype)
    state["out_proj.bias"] = np.zeros(d_out, dtype=dtype)
    fused.load_state_dict(state)
    x = inputs(data, shape, dtype)
    assert_close(fused(x), wrapper(x), for_dtype(dtype))


@given(data=st.data(), shape=attention_shapes(), seed=seeds)
def test_attention_does_not_mutate_its_input(data, shape, seed):
    np_att, _ = build("MultiHeadAttention", shape, 0.0, np.float32, seed)
    x = inputs(data, shape, np.float32)
    before = x.copy()
    np_att(x)
    np.testing.assert_array_equal(x, before)


def test_sequences_longer_than_the_mask_fail_loudly():
    for module in (numpy_gpt, torch_gpt):
        att = module.CausalAttention(4, 4, 3, 0.0)
        x = np.zeros((1, 4, 4), dtype=np.float32)
        with pytest.raises((ValueError, RuntimeError)):
            att(x if module is numpy_gpt else torch.from_numpy(x))
