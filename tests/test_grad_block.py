"""Backward of the transformer block (both residuals, the shortcut dropout used twice) against torch autograd,
in eval mode and in training mode with shared masks, and finite differences."""

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


@settings(max_examples=15)
@given(st.data(), configs(max_layers=1), DTYPES, seeds, st.booleans())
def test_block_backward_matches_torch(data, cfg, dtype, seed, train):
    np_block, torch_block = twins(numpy_gpt.TransformerBlock, torch_gpt.TransformerBlock, (cfg,), dtype, seed,
                                  train=train)
    x = data.draw(activations(cfg.emb_dim, dtype, max_tokens=cfg.context_length, scales=(0.1, 1.0)))
    check_against_torch(np_block, torch_block, x, upstream(x, dtype, seed), mask_seed=seed if train else None)


@settings(max_examples=8)
@given(st.data(), configs(max_layers=1), seeds, st.booleans())
def test_block_backward_matches_finite_differences(data, cfg, seed, train):
    np_block, _ = twins(numpy_gpt.TransformerBlock, torch_gpt.TransformerBlock, (cfg,), np.float64, seed, train=train)
    x = data.draw(activations(cfg.emb_dim, np.float64, max_tokens=cfg.context_length, scales=(1.0,)))
    check_finite_differences(np_block, x, upstream(x, np.float64, seed), seed, mask_seed=seed if train else None)
