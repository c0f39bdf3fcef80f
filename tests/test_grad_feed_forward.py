"""Backward of the feed-forward network (Linear, GELU, Linear) against torch autograd and finite differences."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from tests.grad_checks import check_against_torch, check_finite_differences
from tests.strategies import DTYPES, activations, configs, seeds
from tests.twins import twins


def upstream(x, dtype, seed):
    return np.random.default_rng(seed).standard_normal(x.shape).astype(dtype)


@given(st.data(), configs(max_layers=1), DTYPES, seeds)
def test_feed_forward_backward_matches_torch(data, cfg, dtype, seed):
    np_ff, torch_ff = twins(numpy_gpt.FeedForward, torch_gpt.FeedForward, (cfg,), dtype, seed)
    x = data.draw(activations(cfg.emb_dim, dtype, scales=(0.1, 1.0, 3.0)))
    check_against_torch(np_ff, torch_ff, x, upstream(x, dtype, seed))


@settings(max_examples=10)
@given(st.data(), configs(max_layers=1), seeds)
def test_feed_forward_backward_matches_finite_differences(data, cfg, seed):
    np_ff, _ = twins(numpy_gpt.FeedForward, torch_gpt.FeedForward, (cfg,), np.float64, seed)
    x = data.draw(activations(cfg.emb_dim, np.float64, scales=(1.0,)))
    check_finite_differences(np_ff, x, upstream(x, np.float64, seed), seed)
