"""Batches of prompts of different lengths, left-padded with an attention mask: each row's logits and tokens
equal those of its prompt alone, in both packages; padding is invisible; bad masks are clear errors."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import GREEDY_MARGIN, assert_matches_reference
from tests.strategies import configs, seeds
from tests.twins import greedy_margin, model_twins


@st.composite
def padded_batches(draw, cfg, max_batch=3):
    """(ids (B, T), mask (B, T), prompts): prompts of 1..T tokens, left-padded with arbitrary ids."""
    rng = np.random.default_rng(draw(seeds))
    lengths = draw(st.lists(st.integers(1, cfg.context_length), min_size=1, max_size=max_batch))
    width = max(lengths)
    prompts = [rng.integers(0, cfg.vocab_size, n) for n in lengths]
    ids = rng.integers(0, cfg.vocab_size, (len(lengths), width))  # padding ids are anything at all
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = prompt
        mask[row, width - len(prompt) :] = 1
    return ids, mask, prompts


@settings(max_examples=60)
@given(st.data(), configs(), seeds)
def test_padded_logits_equal_each_prompt_alone_with_and_without_the_cache(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    ids, mask, prompts = data.draw(padded_batches(cfg))
    logits = np_model(ids, attention_mask=mask)
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).numpy()
    split = data.draw(st.integers(1, ids.shape[1]))  # a prefill, then the rest through the cache
    cache = numpy_gpt.KVCache(cfg, len(ids), dtype=np.float64)
    first = np_model(ids[:, :split], cache=cache, attention_mask=mask[:, :split])
    rest = [np_model(ids[:, split:], cache=cache, attention_mask=mask)] if split < ids.shape[1] else []
    cached = np.concatenate([first, *rest], axis=1)
    value, budget = tol.model_budget(np_model, ids, attention_mask=mask)
    for row, prompt in enumerate(prompts):
        start = ids.shape[1] - len(prompt)
        alone = np_model(prompt[None])[0]  # (T_row, V)
        got = [out[row, start:] for out in (logits, torch_logits, cached)]
        assert_matches_reference((value[row, start:], budget[row, start:]), np.float64, alone, *got)
    assert np.isfinite(logits).all() and np.isfinite(torch_logits).all()  # padding queries too: no NaN


@settings(max_examples=60)
@given(st.data(), configs(), seeds)
def test_batched_greedy_generation_equals_each_prompt_alone(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    ids, mask, prompts = data.draw(padded_batches(cfg))
    max_new_tokens = data.draw(st.integers(0, cfg.context_length + 2))
    use_cache = data.draw(st.booleans())
    assume(all(greedy_margin(np_model, p[None], max_new_tokens) > GREEDY_MARGIN for p in prompts))
    out = numpy_gpt.generate(np_model, ids, max_new_tokens, attention_mask=mask, use_cache=use_cache)
    torch_out = torch_gpt.generate(torch_model, torch.from_numpy(ids), max_new_tokens,
                                   attention_mask=torch.from_numpy(mask), use_cache=use_cache)
    np.testing.assert_array_equal(torch_out.numpy(), out)
    np.testing.assert_array_equal(out[:, : ids.shape[1]], ids)
    for row, prompt in enumerate(prompts):
        alone = numpy_gpt.generate(np_model, prompt[None], max_new_tokens)[0]
        np.testing.assert_array_equal(out[row, ids.shape[1] - len(prompt) :], alone)


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_a_row_of_padding_only_gives_finite_logits(package):
    cfg = {"vocab_size": 9, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 2}
    model = package.GPTModel(cfg, seed=0) if package is numpy_gpt else package.GPTModel(cfg)
    ids, mask = np.array([[1, 2, 3], [4, 5, 6]]), np.array([[0, 0, 0], [0, 1, 1]])
    if package is torch_gpt:
        ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).numpy()
    else:
        logits = model(ids, attention_mask=mask)
    assert np.isfinite(logits).all()


BAD_MASKS = [
    (np.array([[1, 1]]), r"attention_mask must have the prompt's shape \(2, 3\), got \(1, 2\)"),
    (np.array([[1, 1, 1], [0, 2, 1]]), r"attention_mask must hold only 0 \(padding\) and 1 \(token\)"),
    (np.array([[1, 1, 1], [1, 1, 0]]), "attention_mask must be left padding: each row 0s then 1s"),
    (np.array([[1, 1, 1], [0, 1, 0]]), "attention_mask must be left padding"),
    (np.array([[1, 1, 1], [0, 0, 0]]), "ending in at least one 1"),
]


@pytest.mark.parametrize("mask, message", BAD_MASKS)
@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_bad_attention_masks_are_clear_errors(package, mask, message):
    cfg = {"vocab_size": 9, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = package.GPTModel(cfg, seed=0) if package is numpy_gpt else package.GPTModel(cfg)
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    as_input = np.asarray if package is numpy_gpt else torch.from_numpy
    with pytest.raises(ValueError, match=message):
        package.generate(model, as_input(ids), 2, attention_mask=as_input(mask))


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_the_model_checks_its_attention_mask_against_the_cache(package):
    cfg = {"vocab_size": 9, "context_length": 6, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = package.GPTModel(cfg, seed=0) if package is numpy_gpt else package.GPTModel(cfg)
    as_input = np.asarray if package is numpy_gpt else torch.from_numpy
    cache = package.KVCache(cfg, batch_size=1)
    model(as_input(np.array([[1, 2]])), cache=cache)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, cached \+ new tokens\) = \(1, 3\), "
                                         r"got \(1, 1\)"):
        model(as_input(np.array([[3]])), cache=cache, attention_mask=as_input(np.array([[1]])))
    with pytest.raises(ValueError, match=r"attention_mask must hold only 0 \(padding\) and 1 \(token\)"):
        model(as_input(np.array([[3]])), cache=cache, attention_mask=as_input(np.array([[1, 1, 3]])))
    assert cache.length == 2
