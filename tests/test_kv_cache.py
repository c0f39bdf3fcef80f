"""The KV cache: logits with it equal a full recompute at every step, in both packages; generation with it
equals generation without it and ``generate_text_simple``; what happens at the context length; bad use."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import GREEDY_MARGIN, assert_matches_reference
from tests.strategies import DTYPES, configs, seeds
from tests.twins import copy_weights, greedy_margin, model_twins, run_torch


@st.composite
def cached_runs(draw, cfg):
    """(ids (B, T), chunk lengths summing to T): a prefill of any length, then chunks of one or more tokens."""
    total = draw(st.integers(1, cfg.context_length))
    prefill = draw(st.integers(1, total))
    chunks = [prefill]
    while sum(chunks) < total:
        chunks.append(draw(st.integers(1, total - sum(chunks))) if draw(st.booleans()) else 1)
    rng = np.random.default_rng(draw(seeds))
    return rng.integers(0, cfg.vocab_size, (draw(st.integers(1, 3)), total)), chunks


def run_in_chunks(model, cache, idx, chunks, as_input=lambda x: x):
    outputs, start = [], 0
    for size in chunks:
        outputs.append(np.asarray(model(as_input(idx[:, start : start + size]), cache=cache)))
        start += size
        assert cache.length == start
    return np.concatenate(outputs, axis=1)  # (B, T, V)


@settings(max_examples=100)
@given(st.data(), configs(), DTYPES, seeds)
def test_cached_logits_equal_a_full_recompute_at_every_step(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed)
    idx, chunks = data.draw(cached_runs(cfg))
    full = np_model(idx)
    cached = run_in_chunks(np_model, numpy_gpt.KVCache(cfg, idx.shape[0], dtype=dtype), idx, chunks)
    torch_cache = torch_gpt.KVCache(cfg, idx.shape[0], dtype=torch_model.tok_emb.weight.dtype)
    with torch.no_grad():
        torch_cached = run_in_chunks(torch_model, torch_cache, idx, chunks, torch.from_numpy)
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, full, cached, torch_cached)


@given(configs(), seeds)
def test_the_cache_holds_the_layers_keys_and_values(cfg, seed):
    np_model, _ = model_twins(cfg, np.float64, seed)
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, cfg.context_length))
    cache = numpy_gpt.KVCache(cfg, 2, dtype=np.float64)
    np_model(idx, cache=cache)
    # The first layer's keys are W_key(LN1(token + position embeddings)), split into heads.
    block = np_model.trf_blocks[0]
    x = np_model.tok_emb(idx) + np_model.pos_emb(np.arange(idx.shape[1]))
    normed = tol.layer_norm_module_budget(block.norm1, x, 0.0)
    keys, budget = tol.linear_module_budget(block.att.W_key, *normed)
    expected = (block.att.split_heads(keys), block.att.split_heads(budget))  # (B, H, T, D)
    assert_matches_reference(expected, np.float64, cache.layers[0].keys)
    assert all(layer.length == cfg.context_length for layer in cache.layers)




@settings(max_examples=60)
@given(st.data(), configs(), seeds)
def test_cached_greedy_generation_equals_uncached_and_generate_text_simple_past_the_context(data, cfg, seed):
    """overflow="slide": once the sequence outgrows the context, the window slides like generate_text_simple's."""
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    prompt_len = data.draw(st.integers(1, cfg.context_length))
    max_new_tokens = data.draw(st.integers(0, cfg.context_length + 3))
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (data.draw(st.integers(1, 2)), prompt_len))
    assume(greedy_margin(np_model, idx, max_new_tokens) > GREEDY_MARGIN)
    expected = numpy_gpt.generate_text_simple(np_model, idx, max_new_tokens, cfg.context_length)
    np.testing.assert_array_equal(numpy_gpt.generate(np_model, idx, max_new_tokens), expected)
    np.testing.assert_array_equal(numpy_gpt.generate(np_model, idx, max_new_tokens, use_cache=False), expected)
    out = torch_gpt.generate(torch_model, torch.from_numpy(idx), max_new_tokens)
    np.testing.assert_array_equal(out.numpy(), expected)


@given(st.data(), configs(), seeds)
def test_overflow_stop_ends_at_the_context_length(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    prompt_len = data.draw(st.integers(1, cfg.context_length))
    max_new_tokens = data.draw(st.integers(0, cfg.context_length + 3))
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (1, prompt_len))
    out = numpy_gpt.generate(np_model, idx, max_new_tokens, overflow="stop")
    assert out.shape == (1, min(prompt_len + max_new_tokens, cfg.context_length))
    slid = numpy_gpt.generate(np_model, idx, max_new_tokens, overflow="slide")
    np.testing.assert_array_equal(out, slid[:, : out.shape[1]])  # the same tokens, up to the stop
    torch_out = torch_gpt.generate(torch_model, torch.from_numpy(idx), max_new_tokens, overflow="stop")
    assert torch_out.shape == out.shape


TINY = {"vocab_size": 11, "context_length": 5, "emb_dim": 4, "n_heads": 2, "n_layers": 2}


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_a_full_or_mismatched_cache_is_a_clear_error_and_is_left_unchanged(package):
    model = package.GPTModel(TINY, seed=0) if package is numpy_gpt else package.GPTModel(TINY)
    idx = np.array([[1, 2, 3]]) if package is numpy_gpt else torch.tensor([[1, 2, 3]])
    cache = package.KVCache(TINY, batch_size=1)
    model(idx, cache=cache)
    with pytest.raises(ValueError, match=r"sequence length 6 \(3 cached \+ 3 new\) exceeds context_length 5"):
        model(idx, cache=cache)
    assert cache.length == 3
    with pytest.raises(ValueError, match="the KV cache holds 1 rows, got a batch of 2"):
        model(idx[[0, 0]], cache=cache)
    small = package.KVCache(TINY, batch_size=1, max_len=2)
    with pytest.raises(ValueError, match=r"the KV cache has room for 2 tokens, got 0 cached \+ 3 new"):
        model(idx, cache=small)
    assert small.length == 0
    with pytest.raises(ValueError, match="max_len must be an int >= 1, got 0"):
        package.KVCache(TINY, batch_size=1, max_len=0)


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_a_prompt_longer_than_the_context_is_a_clear_error(package):
    model = package.GPTModel(TINY, seed=0) if package is numpy_gpt else package.GPTModel(TINY)
    idx = np.zeros((1, 6), dtype=np.int64)
    with pytest.raises(ValueError, match="the prompt has 6 tokens, more than context_length 5"):
        package.generate(model, idx if package is numpy_gpt else torch.from_numpy(idx), 1)


def test_a_float32_model_decodes_a_batch_in_float32():
    """A float32 model decodes in float32: logits, cache and all (no silent float64 upcast on the hot path)."""
    model = numpy_gpt.GPTModel(TINY, seed=0).eval()
    cache = numpy_gpt.KVCache(TINY, batch_size=3)
    logits = model(np.array([[1, 2], [3, 4], [5, 6]]), cache=cache)
    step = model(np.array([[7], [8], [9]]), cache=cache)
    assert logits.dtype == step.dtype == cache.layers[0].keys.dtype == np.float32
    full = np.array([[1, 2, 7], [3, 4, 8], [5, 6, 9]])
    value, budget = tol.model_budget(model, full)
    torch_step = run_torch(copy_weights(model, torch_gpt.GPTModel(TINY)).eval(), full)[:, -1]
    assert_matches_reference((value[:, -1], budget[:, -1]), np.float32, step[:, 0], model(full)[:, -1], torch_step)
