"""GPTModel: NumPy vs torch logits, causality, dtypes, parameter counts, bad input, and the 124M check."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.config import GPT_CONFIG_124M
from gpt_common.tolerances import Masks, assert_matches_reference
from tests.strategies import DTYPES, configs, seeds, token_batches
from tests.twins import copy_weights, model_twins, run_torch, share_masks


@given(st.data(), configs(), DTYPES, seeds)
def test_logits_match_torch(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed)
    idx = data.draw(token_batches(cfg))
    logits = np_model(idx)
    assert logits.shape == (*idx.shape, cfg.vocab_size)
    assert logits.dtype == dtype
    assert_matches_reference(tol.model_budget(np_model, idx), dtype, logits, run_torch(torch_model, idx))


@given(st.data(), configs(drop_rates=(0.1, 0.5)), DTYPES, seeds)
def test_training_mode_matches_torch_with_shared_dropout_masks(data, cfg, dtype, seed):
    np_model, torch_model = model_twins(cfg, dtype, seed, train=True)
    share_masks(np_model, torch_model, seed)
    idx = data.draw(token_batches(cfg))
    reference = tol.model_budget(np_model, idx, masks=Masks(np_model, seed))
    assert_matches_reference(reference, dtype, np_model(idx), run_torch(torch_model, idx))


@given(st.data(), configs(), seeds)
def test_changing_a_future_token_never_changes_earlier_logits(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    idx = data.draw(token_batches(cfg))
    position = data.draw(st.integers(0, idx.shape[1] - 1))
    changed = idx.copy()
    changed[:, position:] = (changed[:, position:] + 1) % cfg.vocab_size
    for run in (np_model, lambda v: run_torch(torch_model, v)):
        np.testing.assert_array_equal(run(idx)[:, :position], run(changed)[:, :position])
        if cfg.emb_dim > 2:  # widths 1 and 2: LayerNorm maps every token to (nearly) the same vector
            assert not np.array_equal(run(idx)[:, position], run(changed)[:, position])


@given(st.data(), configs(), seeds)
def test_int32_ids_and_lists_give_the_same_logits(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed)
    idx = data.draw(token_batches(cfg))
    expected = np_model(idx)
    np.testing.assert_array_equal(np_model(idx.astype(np.int32)), expected)
    np.testing.assert_array_equal(np_model(idx.tolist()), expected)
    assert_matches_reference(tol.model_budget(np_model, idx), np.float64, run_torch(torch_model, idx.astype(np.int32)))


@given(configs(), seeds)
def test_parameter_counts_agree_and_tying_removes_the_head(cfg, seed):
    np_count = numpy_gpt.count_parameters(numpy_gpt.GPTModel(cfg, seed=seed))
    torch_count = torch_gpt.count_parameters(torch_gpt.GPTModel(cfg))
    assert np_count == torch_count
    assert np_count.untied - np_count.tied == cfg.vocab_size * cfg.emb_dim


@pytest.mark.slow
def test_124m_float32_forward_matches_torch_and_counts_are_gpt2s():
    """The foundation's acceptance check: a (1, 1024) batch through GPT-2 124M, float32 end to end."""
    np_model = numpy_gpt.GPTModel(GPT_CONFIG_124M, seed=0).eval()
    torch_model = copy_weights(np_model, torch_gpt.GPTModel(GPT_CONFIG_124M)).eval()
    assert numpy_gpt.count_parameters(np_model) == (163_009_536, 124_412_160)
    assert torch_gpt.count_parameters(torch_model) == (163_009_536, 124_412_160)
    idx = np.random.default_rng(0).integers(0, GPT_CONFIG_124M.vocab_size, (1, 1024))
    logits = np_model(idx)
    assert logits.dtype == np.float32 and logits.shape == (1, 1024, 50257)
    assert_matches_reference(tol.model_budget(np_model, idx), np.float32, logits, run_torch(torch_model, idx))


TINY = {"vocab_size": 10, "context_length": 4, "emb_dim": 6, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0}
BAD_IDS = [
    (np.array([[1, 2, 10]]), r"token ids must be in \[0, 10\), got min 1 and max 10"),
    (np.array([[-1, 2]]), r"token ids must be in \[0, 10\), got min -1 and max 2"),
    (np.zeros((1, 5), dtype=np.int64), "sequence length 5 exceeds context_length 4"),
    (np.array([1, 2, 3]), r"token ids must have shape \(B, T\), got shape \(3,\)"),
    (np.zeros((1, 2, 2), dtype=np.int64), r"token ids must have shape \(B, T\), got shape \(1, 2, 2\)"),
    (np.array([[1.0, 2.0]]), "token ids must be integers, got dtype float"),
    (np.array([[True, False]]), "token ids must be integers, got dtype bool"),
    (np.zeros((1, 0), dtype=np.int64), r"token ids must be non-empty, got shape \(1, 0\)"),
    (np.zeros((0, 2), dtype=np.int64), r"token ids must be non-empty, got shape \(0, 2\)"),
]


@pytest.mark.parametrize("idx, message", BAD_IDS)
@pytest.mark.parametrize("package", ["numpy", "torch"])
def test_bad_token_ids_raise_the_same_value_error_in_both(idx, message, package):
    if package == "numpy":
        model, idx = numpy_gpt.GPTModel(TINY, seed=0), idx
    else:
        model, idx = torch_gpt.GPTModel(TINY), torch.from_numpy(idx)
    with pytest.raises(ValueError, match=message):
        model(idx)


def test_forward_does_not_mutate_the_ids():
    idx = np.array([[1, 2, 3]])
    numpy_gpt.GPTModel(TINY, seed=0)(idx)
    np.testing.assert_array_equal(idx, [[1, 2, 3]])


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (numpy_gpt.GPTModel(TINY, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.out_head.weight, b.out_head.weight)
    assert not np.array_equal(a.out_head.weight, c.out_head.weight)
    generator = np.random.default_rng(1)
    np.testing.assert_array_equal(numpy_gpt.GPTModel(TINY, rng=generator).tok_emb.weight, a.tok_emb.weight)
