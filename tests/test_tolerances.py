"""The rounding-budget rule must catch real bugs: a weight off by a relative 1e-3, or two heads swapped, fail it.

A rule loose enough to pass everything would prove nothing; these tests show the budget of
gpt_common/tolerances.py sits orders of magnitude below the smallest plausible defect.
"""

import numpy as np
import pytest

import numpy_gpt
from gpt_common import tolerances as tol
from tests.twins import model_twins, run_torch, twins

SHAPES = [(8, 12, 6, 3, True), (16, 16, 9, 4, False), (5, 10, 7, 2, True)]


def mha_twins(shape, seed):
    d_in, d_out, context_length, num_heads, qkv_bias = shape
    args = (d_in, d_out, context_length, 0.0, num_heads, qkv_bias)
    return twins(numpy_gpt.MultiHeadAttention, __import__("torch_gpt").MultiHeadAttention, args, np.float32, seed)


def inputs(shape, seed, scale=1.0):
    d_in, _, context_length, _, _ = shape
    return (scale * np.random.default_rng(seed).standard_normal((2, context_length, d_in))).astype(np.float32)


def fails(check) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_correct_pair_passes_and_a_weight_off_by_1e_3_fails(shape, seed):
    np_att, torch_att = mha_twins(shape, seed)
    x = inputs(shape, seed)
    reference = tol.mha_budget(np_att, x)
    tol.assert_matches_reference(reference, np.float32, np_att(x), run_torch(torch_att, x))
    weight = np_att.out_proj.weight
    row, col = np.unravel_index(np.argmax(np.abs(weight)), weight.shape)
    weight[row, col] *= np.float32(1 + 1e-3)  # the NumPy side now holds one wrong weight
    assert fails(lambda: tol.assert_matches_reference(reference, np.float32, np_att(x)))


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[3] > 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_swapping_two_heads_fails(shape, seed):
    np_att, _ = mha_twins(shape, seed)
    x = inputs(shape, seed)
    reference = tol.mha_budget(np_att, x)
    head = np_att.head_dim
    rows = np_att.W_query.weight.copy()
    np_att.W_query.weight[:head], np_att.W_query.weight[head : 2 * head] = rows[head : 2 * head], rows[:head]
    assert fails(lambda: tol.assert_matches_reference(reference, np.float32, np_att(x)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("where", ["trf_blocks.0.ff.layers.0.weight", "out_head.weight"])
def test_a_whole_model_with_one_weight_off_by_1e_3_fails(seed, where):
    cfg = {"vocab_size": 37, "context_length": 8, "emb_dim": 12, "n_heads": 3, "n_layers": 2, "drop_rate": 0.0}
    np_model, torch_model = model_twins(cfg, np.float32, seed)
    idx = np.random.default_rng(seed).integers(0, 37, (2, 8))
    reference = tol.model_budget(np_model, idx)
    tol.assert_matches_reference(reference, np.float32, np_model(idx), run_torch(torch_model, idx))
    weight = np_model.state_dict()[where]  # the live array
    row, col = np.unravel_index(np.argmax(np.abs(weight)), weight.shape)
    weight[row, col] *= np.float32(1 + 1e-3)
    assert fails(lambda: tol.assert_matches_reference(reference, np.float32, np_model(idx)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_whole_model_with_two_heads_swapped_fails(seed):
    cfg = {"vocab_size": 37, "context_length": 8, "emb_dim": 12, "n_heads": 3, "n_layers": 2, "drop_rate": 0.0}
    np_model, _ = model_twins(cfg, np.float32, seed)
    idx = np.random.default_rng(seed).integers(0, 37, (2, 8))
    reference = tol.model_budget(np_model, idx)
    att = np_model.trf_blocks[1].att
    head = att.head_dim
    rows = att.W_key.weight.copy()
    att.W_key.weight[:head], att.W_key.weight[head : 2 * head] = rows[head : 2 * head], rows[:head]
    assert fails(lambda: tol.assert_matches_reference(reference, np.float32, np_model(idx)))


def test_the_hard_float32_draws_use_a_fraction_of_the_budget():
    """Scale-10 inputs, scores in the hundreds, near-ties: the case that broke the element-wise rtol (issue 8)."""
    worst = 0.0
    for seed in range(20):
        shape = SHAPES[seed % len(SHAPES)]
        np_att, torch_att = mha_twins(shape, seed)
        x = inputs(shape, seed, scale=10.0)
        value, budget = tol.mha_budget(np_att, x)
        for out in (np_att(x), run_torch(torch_att, x)):
            worst = max(worst, tol.budget_ratio(out, value, budget, np.float32, both_rounded=False))
    assert 0.0 < worst < 1.0
