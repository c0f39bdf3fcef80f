"""Backward of Linear, Embedding and Dropout: against torch autograd, finite differences, and their own rules
(a repeated id gets the sum of its uses; dropout's backward reuses the forward's mask); misuse is a ValueError."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numpy_gpt.layers import Dropout, Embedding, Linear, LinearSaved
from tests.grad_checks import check_against_torch, check_finite_differences, numpy_backward
from tests.strategies import DTYPES, activations, seeds
from tests.twins import copy_weights


def upstream(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@given(st.data(), DTYPES, st.integers(1, 9), st.integers(1, 9), st.booleans(), seeds)
def test_linear_backward_matches_torch(data, dtype, d_in, d_out, bias, seed):
    layer = Linear(d_in, d_out, bias=bias, rng=seed, dtype=dtype)
    x = data.draw(activations(d_in, dtype))
    check_against_torch(layer, copy_weights(layer, torch.nn.Linear(d_in, d_out, bias=bias)), x,
                        upstream(x.shape[:-1] + (d_out,), dtype, seed))


@settings(max_examples=10)
@given(st.data(), st.integers(1, 6), st.integers(1, 6), st.booleans(), seeds)
def test_linear_backward_matches_finite_differences(data, d_in, d_out, bias, seed):
    layer = Linear(d_in, d_out, bias=bias, rng=seed, dtype=np.float64)
    x = data.draw(activations(d_in, np.float64, scales=(1.0,)))
    check_finite_differences(layer, x, upstream(x.shape[:-1] + (d_out,), np.float64, seed), seed)


@given(DTYPES, st.integers(2, 30), st.integers(1, 7), seeds)
def test_embedding_backward_matches_torch_with_repeated_ids(dtype, vocab, width, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, vocab, (rng.integers(1, 4), rng.integers(1, 9)))
    idx[0, 0] = idx[-1, -1]  # at least one id used twice (once when the batch is a single token)
    table = Embedding(vocab, width, rng=seed, dtype=dtype)
    _, _, grads, _ = check_against_torch(table, copy_weights(table, torch.nn.Embedding(vocab, width)), idx,
                                      upstream(idx.shape + (width,), dtype, seed))
    unused = np.setdiff1d(np.arange(vocab), idx)
    assert not grads["weight"][unused].any()  # rows no id picked get exactly 0


def test_embedding_backward_sums_the_uses_of_a_repeated_id():
    table = Embedding(5, 2, rng=0, dtype=np.float64)
    idx = np.array([[3, 1, 3]])
    dout = np.array([[[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]]])
    _, _, grads = numpy_backward(table, idx, dout)
    expected = np.zeros((5, 2))
    expected[3], expected[1] = [101.0, 202.0], [10.0, 20.0]
    np.testing.assert_array_equal(grads["weight"], expected)


@given(st.data(), DTYPES, st.sampled_from([0.0, 0.1, 0.5]), st.booleans(), seeds)
def test_dropout_backward_uses_the_forward_mask(data, dtype, p, training, seed):
    layer = Dropout(p, rng=seed)
    layer.train(training)
    x = data.draw(activations(4, dtype))
    dout = upstream(x.shape, dtype, seed)
    out, dx, _ = numpy_backward(layer, x, dout)
    assert dx.dtype == dtype
    if not training or p == 0.0:
        np.testing.assert_array_equal(dx, dout)  # the identity
    else:
        keep = out != 0  # the forward's mask (x is never exactly 0 here)
        np.testing.assert_array_equal(dx, dout * keep / (1.0 - p))


def test_dropout_backward_matches_torch_with_shared_masks():
    from torch_gpt.layers import Dropout as TorchDropout

    x = upstream((2, 5, 6), np.float32, 0)
    np_drop, torch_drop = Dropout(0.4), TorchDropout(0.4)
    check_against_torch(np_drop, torch_drop, x, upstream(x.shape, np.float32, 1), mask_seed=3)


def test_backward_without_a_kept_forward_is_a_value_error():
    layer = Linear(3, 2, rng=0)
    layer(np.ones((1, 3), np.float32))  # not inside keeping_activations(): nothing kept
    with pytest.raises(ValueError, match=r"Linear.backward called without a forward that kept its activations: "
                                         r"run the forward inside `with model.keeping_activations\(\):`"):
        layer.backward(np.ones((1, 2), np.float32))
    numpy_backward(layer, np.ones((1, 3), np.float32), np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="without a forward that kept"):  # one backward per kept forward
        layer.backward(np.ones((1, 2), np.float32))


def test_inference_keeps_nothing_and_the_switch_is_scoped():
    layer = Linear(3, 2, rng=0)
    layer(np.ones((1, 3), np.float32))
    assert layer._saved == {} and not layer.keeps_activations
    x = np.ones((1, 3), np.float32)
    with layer.keeping_activations():
        layer(x)
    assert list(layer._saved) == [LinearSaved] and layer._saved[LinearSaved].x is x  # the input, under its name
    assert not layer.keeps_activations
