"""Blockwise causal attention: the tiled path equals the full (T, T) path, forward and backward, in both packages.

Every T (1 too, and T not a multiple of the tile), tile sizes from 1 past T, a cached prefix (the queries
are the last positions of the keys), float64 and float32; NumPy's tiled backward against torch autograd
through the book's full path; the twins' tiled paths against each other; causality. Then the same inside
``MultiHeadAttention`` and ``GPTModel`` (tile_size against None, a prefill after cached tokens; torch on
``attention="tiled"``, its SDPA default has its own file), which path runs when, and the full path,
bit for bit, wherever the tiles do not apply: padding masks, active dropout.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import numpy_gpt.attention as np_att
import numpy_gpt.kv_cache as np_kv
import torch_gpt
import torch_gpt.attention as torch_att
import torch_gpt.kv_cache as torch_kv
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from tests.grad_checks import check_against_torch, fix_masks
from tests.strategies import DTYPES, configs, seeds, token_batches
from tests.test_attention import attention_shapes, build, inputs, mha_backward_case
from tests.test_batched_generation import padded_batches
from tests.test_grad_model import compare_with_torch, targets_for
from tests.twins import model_twins, run_torch, torch_dtype


@st.composite
def tiled_inputs(draw, dtype, scales=(0.1, 1.0, 3.0)):
    """(q, k, v, tile): (B, H, T, D) queries that are the last T of T_cached + T keys, and a tile size."""
    batch, heads, tokens = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 12))
    cached, width = draw(st.integers(0, 5)), draw(st.integers(1, 8))
    tile = draw(st.integers(1, tokens + 2))
    scale = draw(st.sampled_from(scales))
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
    # Small inputs keep softmax away from saturation, so a change to later keys must show in later rows.
    q, k, v, tile = data.draw(tiled_inputs(np.float64, scales=(0.1,)))
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


# ------------------------------------------------------------------------------------------------
# The tiled path inside MultiHeadAttention and GPTModel: equal to the full path (tile_size=None) in both
# packages, forward and backward, with and without a cache; the full path wherever the tiles do not apply.


def set_tile_size(module, tile_size) -> None:
    """Every MultiHeadAttention inside ``module`` (NumPy or torch) takes the tiles of ``tile_size``; None: the
    full path. (torch's default, its SDPA kernel, is set aside here; tests/test_attention_kernel.py has it.)"""
    for sub in module.modules():
        if hasattr(sub, "tile_size"):
            sub.attention = "tiled" if tile_size is not None else "full"
            sub.tile_size = tile_size


# (dropout p, training): the settings in which the tiles run; an active dropout keeps the full path (below).
TILED_MODES = st.sampled_from([(0.0, False), (0.0, True), (0.5, False)])


@given(st.data(), attention_shapes(), DTYPES, seeds, TILED_MODES)
def test_multi_head_attention_tiled_equals_full_in_both_packages(data, shape, dtype, seed, mode):
    np_mha, torch_mha = build("MultiHeadAttention", shape, mode[0], dtype, seed, train=mode[1])
    x = inputs(data, shape, dtype)
    tokens = x.shape[1]
    tile = data.draw(st.integers(1, tokens + 1))
    outputs = []
    for tile_size in (tile, None):
        set_tile_size(np_mha, tile_size)
        set_tile_size(torch_mha, tile_size)
        tiled = tile_size is not None and tokens > 1
        assert np_mha.uses_tiles(None, tokens) == torch_mha.uses_tiles(None, tokens) == tiled
        outputs += [np_mha(x), run_torch(torch_mha, x)]
    assert all(out.dtype == dtype for out in outputs)
    assert_matches_reference(tol.mha_budget(np_mha, x), dtype, *outputs)


@settings(max_examples=15)
@given(st.data(), attention_shapes(), DTYPES, seeds, TILED_MODES)
def test_multi_head_attention_tiled_backward_equals_full_in_both_packages(data, shape, dtype, seed, mode):
    np_mha, torch_mha, x, tile, dout = mha_backward_case(data, shape, dtype, seed, mode)
    # Each package on each path against the other on each: NumPy vs torch, and tiled vs full across them.
    for np_tile, torch_tile in itertools.product((tile, None), repeat=2):
        set_tile_size(np_mha, np_tile)
        set_tile_size(torch_mha, torch_tile)
        check_against_torch(np_mha, torch_mha, x, dout)


@given(st.data(), attention_shapes(), DTYPES, seeds)
def test_a_prefill_after_cached_tokens_takes_the_tiles_and_equals_the_full_path(data, shape, dtype, seed):
    np_mha, torch_mha = build("MultiHeadAttention", shape, 0.0, dtype, seed)
    x = inputs(data, shape, dtype)
    batch, total, _ = x.shape
    cached = data.draw(st.integers(0, total - 1))  # the new chunk is the last total - cached positions
    tile = data.draw(st.integers(1, total - cached + 1))
    num_heads, head_dim = np_mha.num_heads, np_mha.head_dim
    outputs = []
    for tile_size in (tile, None):
        set_tile_size(np_mha, tile_size)
        set_tile_size(torch_mha, tile_size)
        np_cache = np_kv.LayerCache(batch, num_heads, total, head_dim, dtype=dtype)
        torch_cache = torch_kv.LayerCache(batch, num_heads, total, head_dim, dtype=torch_dtype(dtype))
        for start, end in ((0, cached), (cached, total)):
            if end > start:
                np_out = np_mha(x[:, start:end], cache=np_cache)
                torch_out = run_torch(torch_mha, x[:, start:end], cache=torch_cache)
        outputs += [np_out, torch_out]
    value, budget = tol.mha_budget(np_mha, x)  # the whole sequence at once: its last rows are the chunk's
    assert_matches_reference((value[:, cached:], budget[:, cached:]), dtype, *outputs)


def counting_tiles(monkeypatch) -> list[str]:
    """Record the package of every call of ``tiled_causal_attention`` (the NumPy module's or the torch one's)."""
    calls = []
    for module in (np_att, torch_att):
        original = module.tiled_causal_attention

        def counted(*args, _original=original, _name=module.__name__, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "tiled_causal_attention", counted)
    return calls


@pytest.mark.parametrize(("case", "tiled"), [
    ({}, True),
    ({"train": True, "p": 0.0}, True),
    ({"cached": 2}, True),  # a prefill after cached tokens
    ({"tokens": 1}, False),  # T = 1, as in a one-token decode step
    ({"tokens": 1, "cached": 3}, False),  # the decode step itself
    ({"tile_size": None}, False),
    ({"mask": True}, False),  # a padding mask
    ({"train": True, "p": 0.1}, False),  # dropout active: the book's path and its random numbers
])
def test_which_path_runs_when(monkeypatch, case, tiled):
    calls = counting_tiles(monkeypatch)
    tokens, cached, p = case.get("tokens", 4), case.get("cached", 0), case.get("p", 0.1)
    np_mha, torch_mha = build("MultiHeadAttention", (3, 4, 8, 2, False), p, np.float64, 0,
                              train=case.get("train", False))
    x = np.random.default_rng(0).standard_normal((1, cached + tokens, 3))
    mask = np.triu(np.ones((tokens, cached + tokens), dtype=bool), k=cached + 1) if case.get("mask") else None
    for mha, as_input in ((np_mha, lambda a: a), (torch_mha, torch.from_numpy)):
        set_tile_size(mha, case.get("tile_size", 2))
        cache = (np_kv if mha is np_mha else torch_kv).LayerCache(1, 2, cached + tokens, 2, dtype=as_input(x).dtype)
        if cached:
            with torch.no_grad():
                mha(as_input(x[:, :cached]), cache=cache)
        calls.clear()
        with torch.no_grad():
            mha(as_input(x[:, cached:]), cache=cache, mask=None if mask is None else as_input(mask))
        assert calls == ([type(mha).__module__] if tiled else [])


@given(st.data(), configs(drop_rates=(0.0, 0.1)), DTYPES, seeds)
def test_model_logits_tiled_equal_full_in_both_packages_with_and_without_a_cache(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed)
    idx = data.draw(token_batches(cfg))  # B = 1 and T = 1 included
    batch, total = idx.shape
    cached = data.draw(st.integers(0, total - 1))
    tile = data.draw(st.integers(1, total + 1))
    outputs = []
    for tile_size in (tile, None):
        set_tile_size(np_model, tile_size)
        set_tile_size(torch_model, tile_size)
        outputs += [np_model(idx), run_torch(torch_model, idx)]
        np_cache = numpy_gpt.KVCache(cfg, batch, dtype=dtype)
        torch_cache = torch_gpt.KVCache(cfg, batch, dtype=torch_dtype(dtype))
        if cached:
            np_model(idx[:, :cached], cache=np_cache)
            run_torch(torch_model, idx[:, :cached], cache=torch_cache)
        outputs += [np.concatenate([outputs[-2][:, :cached], np_model(idx[:, cached:], cache=np_cache)], axis=1),
                    np.concatenate([outputs[-1][:, :cached], run_torch(torch_model, idx[:, cached:],
                                                                        cache=torch_cache)], axis=1)]
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, *outputs)


@settings(max_examples=10)
@given(st.data(), configs(drop_rates=(0.0,)), DTYPES, seeds, st.booleans())
def test_model_gradients_tiled_equal_full_in_both_packages(data, cfg, dtype, seed, train):
    np_model, torch_model = model_twins(cfg, dtype, seed, train=train)  # p = 0: tiles in training too
    ids = data.draw(token_batches(cfg))
    tile = data.draw(st.integers(1, ids.shape[1] + 1))
    targets = targets_for(ids, cfg.vocab_size, seed)
    for np_tile, torch_tile in itertools.product((tile, None), repeat=2):
        set_tile_size(np_model, np_tile)
        set_tile_size(torch_model, torch_tile)
        compare_with_torch(np_model, torch_model, ids, targets)


@given(st.data(), configs(), seeds)
def test_padded_batches_take_the_full_path_whatever_the_tile_size(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float32, seed)
    ids, mask, _ = data.draw(padded_batches(cfg))
    tile = data.draw(st.integers(1, ids.shape[1] + 1))
    for model, run in ((np_model, lambda **kw: np_model(ids, **kw)),
                       (torch_model, lambda **kw: run_torch(torch_model, ids, **kw))):
        set_tile_size(model, None)
        full = run(attention_mask=mask if model is np_model else torch.from_numpy(mask))
        set_tile_size(model, tile)
        np.testing.assert_array_equal(run(attention_mask=mask if model is np_model else torch.from_numpy(mask)), full)


@given(st.data(), configs(drop_rates=(0.1, 0.5)), seeds)
def test_with_dropout_on_the_tile_size_changes_nothing_not_even_the_random_draws(data, cfg, seed):
    """Training with dropout keeps the book's path, so torch after manual_seed draws what the book draws."""
    np_model, torch_model = model_twins(cfg, np.float32, seed, train=True)
    idx = data.draw(token_batches(cfg))
    tile = data.draw(st.integers(1, idx.shape[1] + 1))
    outputs = []
    for tile_size in (tile, None):
        set_tile_size(np_model, tile_size)
        set_tile_size(torch_model, tile_size)
        fix_masks(np_model, seed)
        torch.manual_seed(seed)
        outputs.append((np_model(idx), run_torch(torch_model, idx), torch.rand(1).item()))
    (np_tiled, torch_tiled, after_tiled), (np_full, torch_full, after_full) = outputs
    np.testing.assert_array_equal(np_tiled, np_full)
    np.testing.assert_array_equal(torch_tiled, torch_full)
    assert after_tiled == after_full  # the generator stands at the same place afterwards
