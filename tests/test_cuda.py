"""The torch twin on a CUDA device against the NumPy reference (skipped on machines without a GPU).

TF32 is switched off for these tests: with it, float32 matmuls on Ampere and
later round their inputs to 10-bit mantissas, which is a different computation.
"""

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import GREEDY_MARGIN, assert_matches_reference
from tests.strategies import DTYPES, configs, seeds, token_batches
from tests.test_attention_kernel import TORCH_PATHS, set_path
from tests.test_grad_model import compare_with_torch, targets_for
from tests.twins import greedy_margin, model_twins

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def no_tf32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@given(st.data(), configs(), DTYPES, seeds)
def test_cuda_logits_match_numpy(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed)
    idx = data.draw(token_batches(cfg))
    with torch.no_grad():
        logits = torch_model.to("cuda")(torch.from_numpy(idx).to("cuda")).cpu().numpy()
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, logits, np_model(idx))


@given(st.data(), configs(), DTYPES, seeds, st.sampled_from(TORCH_PATHS))
def test_cuda_logits_match_numpy_on_every_attention_path(data, cfg, dtype, seed, attention):
    """torch's CUDA SDPA kernels (flash, memory-efficient or math, as torch picks) against the reference too."""
    np_model, torch_model = model_twins(cfg, dtype, seed)
    set_path(torch_model, attention)
    idx = data.draw(token_batches(cfg))
    with torch.no_grad():
        logits = torch_model.to("cuda")(torch.from_numpy(idx).to("cuda")).cpu().numpy()
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, logits, np_model(idx))


@settings(max_examples=10)
@given(st.data(), configs(drop_rates=(0.0,)), DTYPES, seeds, st.sampled_from(TORCH_PATHS))
def test_cuda_gradients_match_numpy_on_every_attention_path(data, cfg, dtype, seed, attention):
    np_model, torch_model = model_twins(cfg, dtype, seed, train=True)
    set_path(torch_model, attention)
    ids = data.draw(token_batches(cfg))
    compare_with_torch(np_model, torch_model.to("cuda"), ids, targets_for(ids, cfg.vocab_size, seed))


@given(st.data(), configs(), seeds, st.integers(0, 6))
def test_cuda_generation_matches_numpy_with_and_without_the_cache(data, cfg, seed, max_new_tokens):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    idx = data.draw(token_batches(cfg, max_batch=2))
    assume(greedy_margin(np_model, idx, max_new_tokens) > GREEDY_MARGIN)
    expected = numpy_gpt.generate(np_model, idx, max_new_tokens)
    torch_model = torch_model.to("cuda")
    for use_cache in (True, False):
        out = torch_gpt.generate(torch_model, torch.from_numpy(idx).to("cuda"), max_new_tokens, use_cache=use_cache)
        np.testing.assert_array_equal(out.cpu().numpy(), expected)


def test_cuda_bad_ids_raise_the_same_error():
    model = torch_gpt.GPTModel({"vocab_size": 10, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1})
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 10\), got min 1 and max 10"):
        model.to("cuda")(torch.tensor([[1, 10]], device="cuda"))


@pytest.fixture
def sync_errors():
    """Inside the block, any operation that makes the host wait for the device raises a RuntimeError."""
    @contextlib.contextmanager
    def block():
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")

    return block


def test_cuda_generation_checks_the_prompt_once_and_then_never_waits_for_the_host(sync_errors):
    cfg = {"vocab_size": 23, "context_length": 16, "emb_dim": 8, "n_heads": 2, "n_layers": 2}
    np_model, torch_model = model_twins(cfg, np.float64, 5)
    prompt = np.random.default_rng(5).integers(0, 23, (2, 5))
    assert greedy_margin(np_model, prompt, 8) > GREEDY_MARGIN
    torch_model = torch_model.to("cuda")
    ids = torch.from_numpy(prompt).to("cuda")
    with sync_errors(), pytest.raises(RuntimeError, match="synchroniz"):
        torch_model(ids)  # the check can fail: a forward of unchecked ids reads their range on the host
    stream = torch_gpt.generate_stream(torch_model, ids, 8)  # checks its arguments, the prompt's ids, now
    with sync_errors():
        steps = list(stream)  # the prefill (tiled attention) and seven one-token decode steps
    tokens = torch.stack(steps, dim=1).cpu().numpy()
    np.testing.assert_array_equal(tokens, numpy_gpt.generate(np_model, prompt, 8)[:, prompt.shape[1]:])
