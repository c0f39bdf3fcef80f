"""Blockwise causal attention: the tiled path equals the full (T, T) path, forward and backward, in both packages.

Every T (1 too, and T not a multiple of the tile), tile sizes from 1 past T, a cached prefix (the queries
are the last positions of the keys), float64 and float32; NumPy's tiled backward against torch autograd
through the book's full path; the twins' tiled paths against each other; causality.
"""

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt.attention as np_att
import torch_gpt.attention as torch_att
from tests import tolerances as tol
from tests.strategies import DTYPES, seeds


@st.composite
def tiled_inputs(draw, dtype):
    """(q, k, v, tile): (B, H, T, D) queries that are the last T of T_cached + T keys, and a tile size."""
    batch, heads, tokens = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 12))
    cached, width = draw(st.integers(0, 5)), draw(st.integers(1, 8))
    tile = draw(st.integers(1, tokens + 2))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    rng = np.random.default_rng(draw(seeds))
    q = rng.standard_normal((batch, heads, tokens, width))
    k, v = (rng.standard_normal((batch, heads, cached + tokens, width)) for _ in range(2))
    return *(scale * a.astype(dtype) for a in (q, k, v)), tile


def causal(q, k) -> np.ndarray:
    """The full path's mask: query i (at position T_keys - T + i) hides every later key."""
    num_queries, num_keys = q.shape[-2], k.shape[-2]
    return np.triu(np.ones((num_keys, num_keys), dtype=bool), k=1)[num_keys - num_queries :]


def full_path(module, q, k, v):
    mask = causal(q, k) if module is np_att else torch.from_numpy(causal(q, k))
    return module.scaled_attention_weights(q, k, mask) @ v


@given(st.data(), DTYPES)
def test_tiled_forward_equals_the_full_path_in_both_packages(data, dtype):
    q, k, v, tile = data.draw(tiled_inputs(dtype))
    context, lse = np_att.tiled_causal_attention(q, k, v, tile)
    assert context.dtype == lse.dtype == dtype
    torch_context, torch_lse = torch_att.tiled_causal_attention(*(torch.from_numpy(a) for a in (q, k, v)), tile)
    reference = tol.attend_budget(q, 0.0, k, 0.0, v, 0.0, 1 / math.sqrt(q.shape[-1]), causal(q, k))
    torch_full = full_path(torch_att, *(torch.from_numpy(a) for a in (q, k, v))).numpy()
    outputs = (context, torch_context.numpy(), full_path(np_att, q, k, v), torch_full)
    tol.assert_matches_reference(reference, dtype, *outputs)
    scores, score_budget = tol.scores_budget(q, 0.0, k, 0.0, 1 / math.sqrt(q.shape[-1]), causal(q, k))
    top = scores.max(-1, keepdims=True)
    expected_lse = np.log(np.exp(scores - top).sum(-1, keepdims=True)) + top
    lse_budget = score_budget.max(-1, keepdims=True) + np.abs(expected_lse) + 4  # its scores' error, 2 roundings
    tol.assert_matches_reference((expected_lse, lse_budget), dtype, lse, torch_lse.numpy())


@given(st.data(), DTYPES)
def test_tiled_backward_equals_autograd_through_the_full_path(data, dtype):
    q, k, v, tile = data.draw(tiled_inputs(dtype))
    d_context = np.random.default_rng(0).standard_normal(q.shape).astype(dtype)
    context, lse = np_att.tiled_causal_attention(q, k, v, tile)
    grads = np_att.tiled_causal_attention_backward(d_context, q, k, v, context, lse, tile)
    assert all(g.dtype == dtype for g in grads)
    leaves = [torch.from_numpy(a).requires_grad_() for a in (q, k, v)]
    full_path(torch_att, *leaves).backward(torch.from_numpy(d_context))
    tiled_leaves = [torch.from_numpy(a).requires_grad_() for a in (q, k, v)]
    torch_att.TiledCausalAttention.apply(*tiled_leaves, tile).backward(torch.from_numpy(d_context))
    exact = np_att.tiled_causal_attention_backward(  # the float64 reference of the same formula
        *(a.astype(np.float64) for a in (d_context, q, k, v)), *np_att.tiled_causal_attention(
            *(a.astype(np.float64) for a in (q, k, v)), tile), tile)
    budgets = tol.attention_backward_budget(q, k, v, d_context, 1 / math.sqrt(q.shape[-1]), causal(q, k))
    for i, (ours, budget) in enumerate(zip(grads, budgets)):
        others = (leaves[i].grad.numpy(), tiled_leaves[i].grad.numpy())
        tol.assert_matches_reference((exact[i], budget), dtype, ours, *others)


@given(st.data())
def test_the_tiled_path_is_causal(data):
    q, k, v, tile = data.draw(tiled_inputs(np.float64))
    num_queries, num_keys = q.shape[-2], k.shape[-2]
    row = data.draw(st.integers(0, num_queries - 1))
    position = num_keys - num_queries + row  # the key position of query row `row`
    later_k, later_v = k.copy(), v.copy()
    later_k[..., position + 1 :, :] += 1.0
    later_v[..., position + 1 :, :] -= 2.0
    before, _ = np_att.tiled_causal_attention(q, k, v, tile)
    after, _ = np_att.tiled_causal_attention(q, later_k, later_v, tile)
    np.testing.assert_array_equal(before[..., : row + 1, :], after[..., : row + 1, :])
    if row + 1 < num_queries:
        assert not np.array_equal(before[..., row + 1 :, :], after[..., row + 1 :, :])  # the test can fail


def test_tiles_cover_every_query_once_and_see_exactly_their_prefix():
    for num_queries, cached, tile in [(1, 0, 1), (7, 0, 3), (7, 4, 3), (8, 2, 8), (5, 0, 9)]:
        tiles = np_att.causal_tiles(num_queries, cached + num_queries, tile)
        assert tiles == torch_att.causal_tiles(num_queries, cached + num_queries, tile)
        assert [s for s, _, _ in tiles] == list(range(0, num_queries, tile))
        assert tiles[-1][1] == num_queries and all(k_end == cached + end for _, end, k_end in tiles)
