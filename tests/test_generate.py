"""generate_text_simple: the same greedy tokens in both packages, context cropping, argument checks."""

import importlib

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import GREEDY_MARGIN
from tests.strategies import configs, seeds, token_batches
from tests.twins import copy_weights, greedy_margin, model_twins, randomise


@given(st.data(), configs(), seeds, st.integers(0, 6))
def test_greedy_tokens_match_torch(data, cfg, seed, max_new_tokens):
    np_model = numpy_gpt.GPTModel(cfg, seed=seed, dtype=np.float64).eval()
    randomise(np_model, seed + 1)
    torch_model = copy_weights(np_model, torch_gpt.GPTModel(cfg)).eval()
    idx = data.draw(token_batches(cfg))
    context_size = data.draw(st.integers(1, cfg.context_length))
    assume(greedy_margin(np_model, idx, max_new_tokens, context_size) > GREEDY_MARGIN)
    out = numpy_gpt.generate_text_simple(np_model, idx, max_new_tokens, context_size)
    out_t = torch_gpt.generate_text_simple(torch_model, torch.from_numpy(idx), max_new_tokens, context_size)
    assert out.shape == (idx.shape[0], idx.shape[1] + max_new_tokens)
    np.testing.assert_array_equal(out[:, : idx.shape[1]], idx)
    np.testing.assert_array_equal(out, out_t.numpy())


def test_prompt_longer_than_the_context_is_cropped_and_each_step_is_the_argmax():
    cfg = {"vocab_size": 13, "context_length": 3, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = numpy_gpt.GPTModel(cfg, seed=3, dtype=np.float64).eval()
    idx = np.array([[1, 2, 3, 4, 5, 6, 7]])
    out = numpy_gpt.generate_text_simple(model, idx, 4, context_size=3)
    for step in range(4):
        window = out[:, 7 + step - 3 : 7 + step]
        assert out[0, 7 + step] == model(window)[0, -1].argmax()


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_bad_arguments(package):
    cfg = {"vocab_size": 13, "context_length": 3, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = package.GPTModel(cfg) if package is torch_gpt else package.GPTModel(cfg, seed=0)
    idx = np.array([[1, 2]]) if package is numpy_gpt else torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0, got -1"):
        package.generate_text_simple(model, idx, -1, 3)
    with pytest.raises(ValueError, match="context_size must be an int >= 1, got 0"):
        package.generate_text_simple(model, idx, 1, 0)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 13\)"):
        package.generate_text_simple(model, idx * 7, 1, 3)
    with pytest.raises(ValueError, match="sequence length 4 exceeds context_length 3"):
        package.generate_text_simple(model, idx[:, [0, 1, 0, 1]], 1, 4)


@given(st.data(), configs(), seeds, st.integers(0, 8))
def test_generate_with_the_books_context_size_equals_generate_text_simple(data, cfg, seed, max_new_tokens):
    """``generate(..., context_size=k)`` (the book's argument) slides a k-token window, cache or not."""
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    idx = data.draw(token_batches(cfg, max_batch=2))
    context_size = data.draw(st.integers(1, cfg.context_length))
    assume(greedy_margin(np_model, idx, max_new_tokens, context_size) > GREEDY_MARGIN)
    expected = numpy_gpt.generate_text_simple(np_model, idx, max_new_tokens, context_size)
    for use_cache in (True, False):
        out = numpy_gpt.generate(np_model, idx, max_new_tokens, context_size=context_size, use_cache=use_cache)
        np.testing.assert_array_equal(out, expected)
        out_t = torch_gpt.generate(torch_model, torch.from_numpy(idx), max_new_tokens, context_size=context_size,
                                   use_cache=use_cache)
        np.testing.assert_array_equal(out_t.numpy(), expected)


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_checks_the_ids_once_per_call_not_at_every_step(monkeypatch, package, use_cache):
    """Reading the ids' range is a host sync on CUDA: generate checks its prompt, then trusts its own samples."""
    model_module = importlib.import_module(f"{package.__name__}.model")
    calls = []
    original = model_module.check_ids
    monkeypatch.setattr(model_module, "check_ids", lambda *args: calls.append(args) or original(*args))
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = package.GPTModel(cfg).eval() if package is torch_gpt else package.GPTModel(cfg, seed=0)
    prompt = np.array([[1, 2, 3]])
    out = package.generate(model, prompt if package is numpy_gpt else torch.from_numpy(prompt), 5,
                           use_cache=use_cache)  # past the context: the window slides, recomputed in full
    assert out.shape == (1, 8) and len(calls) == 1
    model(prompt if package is numpy_gpt else torch.from_numpy(prompt))
    assert len(calls) == 2  # a direct forward still checks
