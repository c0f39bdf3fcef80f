"""torch's fused attention kernel (``attention="sdpa"``, the torch twin's default) equals the written-out paths.

``F.scaled_dot_product_attention`` computes softmax(Q K^T / sqrt(D), causal) V, the formula of the tiled and
full paths. Here, under the rounding-budget rule: the kernel against NumPy's tiled and full paths and torch's
own, forward and backward, in ``MultiHeadAttention`` and ``GPTModel``, with a prefill after cached tokens
and one-token decode steps; which path runs when; and the book's path, random draws and all, whenever
dropout is active or a padding mask is given.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import numpy_gpt.kv_cache as np_kv
import torch_gpt
import torch_gpt.kv_cache as torch_kv
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from tests.grad_checks import check_against_torch, fix_masks
from tests.strategies import DTYPES, configs, seeds, token_batches
from tests.test_attention import attention_shapes, build, inputs, mha_backward_case
from tests.test_batched_generation import padded_batches
from tests.test_grad_model import compare_with_torch, targets_for
from tests.twins import model_twins, run_torch, torch_dtype

NUMPY_PATHS = ["tiled", "full"]
TORCH_PATHS = ["sdpa", "tiled", "full"]
# (dropout p, training): the settings in which a fast path may run; an active dropout keeps the book's path.
FAST_MODES = st.sampled_from([(0.0, False), (0.0, True), (0.5, False)])


def set_path(module, attention: str, tile_size: int | None = 2) -> None:
    """Every MultiHeadAttention inside ``module`` (NumPy or torch) takes the causal path ``attention``."""
    for sub in module.modules():
        if hasattr(sub, "tile_size"):
            sub.attention, sub.tile_size = attention, tile_size


def test_the_torch_default_is_the_kernel_and_the_numpy_default_the_tiles():
    assert torch_gpt.MultiHeadAttention(4, 4, 8, 0.0, 2).attention == "sdpa"
    assert numpy_gpt.MultiHeadAttention(4, 4, 8, 0.0, 2).attention == "tiled"
    assert torch_gpt.GPTModel(numpy_gpt.GPTConfig(vocab_size=5, context_length=4, emb_dim=4, n_heads=2,
                                                  n_layers=1)).trf_blocks[0].att.attention == "sdpa"


@pytest.mark.parametrize("attention", ["flash", "SDPA", None, ""])
def test_an_unknown_path_is_refused_with_the_same_words(attention):
    with pytest.raises(ValueError, match="attention must be one of") as torch_error:
        torch_gpt.MultiHeadAttention(4, 4, 8, 0.0, 2, attention=attention)
    with pytest.raises(ValueError, match="attention must be one of") as numpy_error:
        numpy_gpt.MultiHeadAttention(4, 4, 8, 0.0, 2, attention=attention)
    assert f"got {attention!r}" in str(torch_error.value) and f"got {attention!r}" in str(numpy_error.value)
    with pytest.raises(ValueError, match="got 'sdpa'"):  # NumPy has no kernel of its own
        numpy_gpt.MultiHeadAttention(4, 4, 8, 0.0, 2, attention="sdpa")


@given(st.data(), attention_shapes(), DTYPES, seeds, FAST_MODES)
def test_multi_head_attention_kernel_equals_every_written_out_path(data, shape, dtype, seed, mode):
    np_mha, torch_mha = build("MultiHeadAttention", shape, mode[0], dtype, seed, train=mode[1])
    x = inputs(data, shape, dtype)
    tile = data.draw(st.integers(1, x.shape[1] + 1))
    outputs = []
    for attention in TORCH_PATHS:
        set_path(torch_mha, attention, tile)
        assert torch_mha.uses_kernel(None) == (attention == "sdpa")
        outputs.append(run_torch(torch_mha, x))
    for attention in NUMPY_PATHS:
        set_path(np_mha, attention, tile)
        outputs.append(np_mha(x))
    assert all(out.dtype == dtype for out in outputs)
    assert_matches_reference(tol.mha_budget(np_mha, x), dtype, *outputs)


@settings(max_examples=15)
@given(st.data(), attention_shapes(), DTYPES, seeds, FAST_MODES)
def test_multi_head_attention_kernel_backward_equals_every_written_out_path(data, shape, dtype, seed, mode):
    np_mha, torch_mha, x, tile, dout = mha_backward_case(data, shape, dtype, seed, mode)
    set_path(torch_mha, "sdpa")
    for attention in NUMPY_PATHS:  # NumPy's hand-written backward on each path against autograd through SDPA
        set_path(np_mha, attention, tile)
        check_against_torch(np_mha, torch_mha, x, dout)


@given(st.data(), attention_shapes(), DTYPES, seeds)
def test_a_prefill_after_cached_tokens_and_decode_steps_on_the_kernel(data, shape, dtype, seed):
    np_mha, torch_mha = build("MultiHeadAttention", shape, 0.0, dtype, seed)
    x = inputs(data, shape, dtype)
    batch, total, _ = x.shape
    cached = data.draw(st.integers(0, total - 1))
    chunks = [(0, cached), (cached, total)] if data.draw(st.booleans()) else \
        [(0, cached)] + [(t, t + 1) for t in range(cached, total)]  # a prefill, or decode one token at a time
    np_cache = np_kv.LayerCache(batch, np_mha.num_heads, total, np_mha.head_dim, dtype=dtype)
    torch_cache = torch_kv.LayerCache(batch, np_mha.num_heads, total, np_mha.head_dim, dtype=torch_dtype(dtype))
    np_out, torch_out = [], []
    for start, end in chunks:
        if end > start:
            np_out.append(np_mha(x[:, start:end], cache=np_cache))
            torch_out.append(run_torch(torch_mha, x[:, start:end], cache=torch_cache))
    assert torch_mha.attention == "sdpa"
    outputs = [np.concatenate(np_out, axis=1), np.concatenate(torch_out, axis=1), run_torch(torch_mha, x)]
    assert_matches_reference(tol.mha_budget(np_mha, x), dtype, *outputs)


@given(st.data(), configs(drop_rates=(0.0, 0.1)), DTYPES, seeds)
def test_model_logits_on_the_kernel_equal_numpy_with_and_without_a_cache(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed)  # eval: dropout off, the kernel runs
    idx = data.draw(token_batches(cfg))  # B = 1 and T = 1 included
    batch, total = idx.shape
    cached = data.draw(st.integers(0, total - 1))
    outputs = [np_model(idx), run_torch(torch_model, idx)]
    torch_cache = torch_gpt.KVCache(cfg, batch, dtype=torch_dtype(dtype))
    if cached:
        run_torch(torch_model, idx[:, :cached], cache=torch_cache)
    steps = [run_torch(torch_model, idx[:, t : t + 1], cache=torch_cache) for t in range(cached, total)]
    outputs.append(np.concatenate([outputs[1][:, :cached], *steps], axis=1))
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, *outputs)


@settings(max_examples=10)
@given(st.data(), configs(drop_rates=(0.0,)), DTYPES, seeds, st.booleans())
def test_model_gradients_on_the_kernel_equal_numpy_on_each_path(data, cfg, dtype, seed, train):
    np_model, torch_model = model_twins(cfg, dtype, seed, train=train)  # p = 0: the kernel in training too
    ids = data.draw(token_batches(cfg))
    targets = targets_for(ids, cfg.vocab_size, seed)
    for np_path, torch_path in itertools.product(NUMPY_PATHS, ["sdpa"]):
        set_path(np_model, np_path)
        set_path(torch_model, torch_path)
        compare_with_torch(np_model, torch_model, ids, targets)


def counting_kernel(monkeypatch) -> list[int]:
    """Record the number of queries of every call of torch's fused attention kernel."""
    calls = []
    original = F.scaled_dot_product_attention

    def counted(queries, *args, **kwargs):
        calls.append(queries.shape[-2])
        return original(queries, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize(("case", "kernel"), [
    ({}, True),
    ({"train": True, "p": 0.0}, True),
    ({"cached": 2}, True),  # a prefill after cached tokens
    ({"tokens": 1, "cached": 3}, True),  # a one-token decode step
    ({"attention": "tiled"}, False),
    ({"attention": "full"}, False),
    ({"mask": True}, False),  # a padding mask
    ({"train": True, "p": 0.1}, False),  # dropout active: the book's path and its random numbers
])
def test_which_path_runs_when(monkeypatch, case, kernel):
    calls = counting_kernel(monkeypatch)
    tokens, cached, p = case.get("tokens", 4), case.get("cached", 0), case.get("p", 0.1)
    _, mha = build("MultiHeadAttention", (3, 4, 8, 2, False), p, np.float64, 0, train=case.get("train", False))
    set_path(mha, case.get("attention", "sdpa"))
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, cached + tokens, 3)))
    mask = torch.triu(torch.ones(tokens, cached + tokens, dtype=torch.bool), cached + 1) if case.get("mask") else None
    cache = torch_kv.LayerCache(1, 2, cached + tokens, 2, dtype=x.dtype)
    with torch.no_grad():
        if cached:
            mha(x[:, :cached], cache=cache)
        calls.clear()
        mha(x[:, cached:], cache=cache, mask=mask)
    assert calls == ([tokens] if kernel else [])


@given(st.data(), configs(), seeds)
def test_padded_batches_take_the_full_path_whatever_the_setting(data, cfg, seed):
    _, torch_model = model_twins(cfg, np.float32, seed)
    ids, mask, _ = data.draw(padded_batches(cfg))
    outputs = []
    for attention in TORCH_PATHS:
        set_path(torch_model, attention)
        outputs.append(run_torch(torch_model, ids, attention_mask=torch.from_numpy(mask)))
    np.testing.assert_array_equal(outputs[0], outputs[2])
    np.testing.assert_array_equal(outputs[1], outputs[2])


@given(st.data(), configs(drop_rates=(0.1, 0.5)), seeds)
def test_with_dropout_on_the_kernel_setting_changes_nothing_not_even_the_random_draws(data, cfg, seed):
    """Training with dropout keeps the book's path, so torch after manual_seed draws what the book draws."""
    np_model, torch_model = model_twins(cfg, np.float32, seed, train=True)
    idx = data.draw(token_batches(cfg))
    outputs = []
    for attention in ("sdpa", "full"):
        set_path(torch_model, attention)
        fix_masks(np_model, seed)
        torch.manual_seed(seed)
        outputs.append((run_torch(torch_model, idx), torch.rand(1).item()))
    (kernel, after_kernel), (full, after_full) = outputs
    np.testing.assert_array_equal(kernel, full)
    assert after_kernel == after_full  # the generator stands at the same place afterwards
