"""TransformerBlock: NumPy vs torch in eval and (with shared dropout masks) training mode; the pre-norm residuals."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import Masks, assert_matches_reference
from tests.strategies import DTYPES, activations, configs, seeds
from tests.twins import run_torch, share_masks, twins


def block_input(data, cfg, dtype):
    return data.draw(activations(cfg.emb_dim, dtype, max_tokens=cfg.context_length))


@given(st.data(), configs(), DTYPES, seeds, st.booleans())
def test_block_matches_torch(data, cfg, dtype, seed, train):
    classes = (numpy_gpt.TransformerBlock, torch_gpt.TransformerBlock)
    np_block, torch_block = twins(*classes, (cfg,), dtype, seed, train=train)
    share_masks(np_block, torch_block, seed)
    x = block_input(data, cfg, dtype)
    out = np_block(x)
    assert out.dtype == dtype
    reference = tol.block_budget(np_block, x, masks=Masks(np_block, seed))
    assert_matches_reference(reference, dtype, out, run_torch(torch_block, x))


@given(st.data(), configs(), seeds)
def test_block_is_pre_norm_residual(data, cfg, seed):
    block = numpy_gpt.TransformerBlock(cfg, rng=seed, dtype=np.float64).eval()
    x = block_input(data, cfg, np.float64)
    h = x + block.att(block.norm1(x))
    _, budget = tol.block_budget(block, x)
    tol.assert_within_budget(block(x), h + block.ff(block.norm2(h)), budget, np.float64)


@given(st.data(), configs(), seeds)
def test_zeroed_sublayers_make_the_block_the_identity(data, cfg, seed):
    # With the attention and feed-forward output projections at zero, only the residual path remains.
    block = numpy_gpt.TransformerBlock(cfg, rng=seed, dtype=np.float64).eval()
    for layer in (block.att.out_proj, block.ff.layers[2]):
        layer.weight[...] = 0.0
        layer.bias[...] = 0.0
    x = block_input(data, cfg, np.float64)
    np.testing.assert_array_equal(block(x), x)
