"""The NumPy ``Module`` mini-framework against ``torch.nn``: state dicts, dtypes, modes, Linear, Embedding, Dropout."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from numpy_gpt.layers import Dropout, Embedding, Linear
from tests.strategies import DTYPES, configs, seeds
from tests.twins import SharedMasks, copy_weights, run_torch


@given(configs(), seeds)
def test_state_dict_keys_and_shapes_match_torch(cfg, seed):
    np_model = numpy_gpt.GPTModel(cfg, seed=seed)
    torch_model = torch_gpt.GPTModel(cfg)
    np_shapes = {k: v.shape for k, v in np_model.state_dict().items()}
    torch_shapes = {k: tuple(v.shape) for k, v in torch_model.state_dict().items()}
    assert np_shapes == torch_shapes
    assert ("trf_blocks.0.att.W_query.bias" in np_shapes) == cfg.qkv_bias


@given(configs(), seeds)
def test_state_dict_round_trips_numpy_torch_numpy(cfg, seed):
    source = numpy_gpt.GPTModel(cfg, seed=seed)
    torch_model = copy_weights(source, torch_gpt.GPTModel(cfg))
    target = numpy_gpt.GPTModel(cfg, seed=seed + 1)
    target.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()}, strict=True)
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value)


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = numpy_gpt.GPTModel(cfg, seed=0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: np.zeros_like(v) for k, v in before.items()}
    with pytest.raises(ValueError, match="missing keys \\['out_head.weight'\\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "out_head.weight"})
    with pytest.raises(ValueError, match="unexpected keys \\['extra'\\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="shape mismatch for tok_emb.weight: expected \\(7, 4\\), got \\(8, 4\\)"):
        model.load_state_dict({**state, "tok_emb.weight": np.zeros((8, 4))})
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_copies_and_keeps_the_dtype():
    linear = Linear(3, 2, rng=0)
    source = {"weight": np.ones((2, 3)), "bias": np.zeros(2)}  # float64 in, float32 model
    linear.load_state_dict(source)
    assert linear.weight.dtype == np.float32
    source["weight"][0, 0] = 5.0
    assert linear.weight[0, 0] == 1.0


@given(configs(), seeds)
def test_to_float64_and_train_eval_propagate(cfg, seed):
    model = numpy_gpt.GPTModel(cfg, seed=seed).to(np.float64)
    assert {v.dtype for v in model.parameters()} == {np.dtype(np.float64)}
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


@given(DTYPES, seeds, st.integers(1, 9), st.integers(1, 9), st.booleans())
def test_linear_matches_f_linear(dtype, seed, d_in, d_out, bias):
    layer = Linear(d_in, d_out, bias, rng=seed, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((2, 3, d_in)).astype(dtype)
    torch_bias = torch.from_numpy(layer.bias) if bias else None
    expected = F.linear(torch.from_numpy(x), torch.from_numpy(layer.weight), torch_bias)
    out = layer(x)
    assert out.dtype == dtype
    assert_matches_reference(tol.linear_budget(x, 0.0, layer.weight, layer.bias), dtype, out, expected.numpy())


def test_linear_init_follows_nn_linear_bounds():
    layer = Linear(64, 256, rng=0)
    bound = 1 / 8
    assert np.abs(layer.weight).max() <= bound and np.abs(layer.weight).max() > 0.9 * bound
    assert abs(layer.weight.std() - bound / np.sqrt(3)) < 0.01 * bound


@given(DTYPES, seeds)
def test_embedding_matches_torch(dtype, seed):
    table = Embedding(11, 5, rng=seed, dtype=dtype)
    idx = np.random.default_rng(seed).integers(0, 11, (3, 4))
    expected = F.embedding(torch.from_numpy(idx), torch.from_numpy(table.weight)).numpy()
    np.testing.assert_array_equal(table(idx), expected)
    assert table(idx).dtype == dtype


@given(DTYPES, seeds, st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_with_shared_masks_matches_torch(dtype, seed, p):
    x = np.random.default_rng(seed).standard_normal((2, 3, 5)).astype(dtype)
    np_drop, torch_drop = Dropout(p), torch_gpt.layers.Dropout(p)
    np_drop.mask_fn, torch_drop.mask_fn = SharedMasks(seed), SharedMasks(seed)
    reference = tol.dropout_budget(x, 0.0, SharedMasks(seed)(x.shape, p), p)
    out = np_drop(x)
    assert out.dtype == dtype
    assert_matches_reference(reference, dtype, out, run_torch(torch_drop, x))


def test_dropout_is_identity_in_eval_mode_and_scales_in_training():
    x = np.ones((200, 500), dtype=np.float32)
    for drop in (Dropout(0.3, rng=0), torch_gpt.layers.Dropout(0.3)):
        drop.eval()
        out = drop(torch.from_numpy(x)) if isinstance(drop, torch.nn.Module) else drop(x)
        np.testing.assert_array_equal(np.asarray(out), x)
    out = Dropout(0.3, rng=0).train()(x)
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.7)}
    assert abs((out == 0).mean() - 0.3) < 0.01  # 100,000 draws: std of the fraction is 0.0014


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_rejects_invalid_probability(p):
    for cls in (Dropout, torch_gpt.layers.Dropout):
        with pytest.raises(ValueError, match=f"dropout probability must be in \\[0, 1\\), got {p}"):
            cls(p)
