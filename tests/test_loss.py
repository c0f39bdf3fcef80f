"""The loss: cross-entropy against torch (values, ignore_index, no overflow), the fused gradient against
torch autograd, the same ValueError for bad input in both packages, and the book's calc_loss_batch /
calc_loss_loader running unchanged on either side."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import assert_grad_norm_within_budget, assert_grad_within_budget
from numpy_gpt.data import DataLoader as NumpyLoader
from numpy_gpt.data import GPTDatasetV1 as NumpyDataset
from numpy_gpt.loss import cross_entropy_with_grad
from tests.strategies import DTYPES, seeds
from tests.twins import model_twins
from torch_gpt.data import GPTDatasetV1 as TorchDataset


@st.composite
def logits_and_targets(draw, dtype):
    """(B, T, V) or (N, V) logits of scale up to 30, integer targets with some ignore_index (-100)."""
    rng = np.random.default_rng(draw(seeds))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2))) + (draw(st.integers(1, 40)),)
    logits = (draw(st.sampled_from([0.1, 1.0, 30.0])) * rng.standard_normal(shape)).astype(dtype)
    targets = rng.integers(0, shape[-1], shape[:-1])
    targets[rng.random(targets.shape) < 0.25] = -100
    targets.reshape(-1)[0] = rng.integers(0, shape[-1])  # at least one counted position
    return logits, targets


def loss_terms(logits, targets):
    """Per counted position |log sum exp| + |z_t| (the loss's terms), and the count."""
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    counted = t != -100
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    return (np.abs(lse) + np.abs(z[np.arange(len(t)), np.where(counted, t, 0)]))[counted].mean(), int(counted.sum())


def torch_loss_and_grad(logits, targets):
    z = torch.tensor(logits, requires_grad=True)
    loss = torch_gpt.cross_entropy(z, torch.from_numpy(targets))
    (grad,) = torch.autograd.grad(loss, z)
    return loss.item(), grad.numpy()


@given(st.data(), DTYPES)
def test_cross_entropy_and_its_gradient_match_torch(data, dtype):
    logits, targets = data.draw(logits_and_targets(dtype))
    loss = numpy_gpt.cross_entropy(logits, targets)
    loss_with_grad, grad = cross_entropy_with_grad(logits, targets)
    loss_t, grad_t = torch_loss_and_grad(logits, targets)
    assert loss.dtype == grad.dtype == dtype and loss == loss_with_grad and grad.shape == logits.shape
    magnitude, counted = loss_terms(logits, targets)
    vocab = logits.shape[-1]
    assert_grad_norm_within_budget(loss, loss_t, magnitude, vocab, 2, dtype, name="loss")
    probs = np.exp(logits - logits.max(-1, keepdims=True).astype(np.float64))
    probs /= probs.sum(-1, keepdims=True)
    grad_terms = (probs + 1.0) / counted  # softmax / N and the 1 / N subtracted at the target
    assert_grad_within_budget(grad, grad_t, grad_terms, vocab, 3, dtype, name="dlogits")
    assert not grad[targets == -100].any()  # an ignored position gets exactly 0


def test_cross_entropy_never_overflows():
    logits = np.array([[1e4, -1e4, 0.0], [80.0, 80.0, -80.0]], np.float32)  # exp(80) overflows float32
    targets = np.array([0, 1])
    loss, grad = cross_entropy_with_grad(logits, targets)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    # row 1: -log(1) = 0; row 2: -log(1/2); the terms are as large as the logits
    magnitude, _ = loss_terms(logits, targets)
    assert_grad_norm_within_budget(loss, np.log(2.0) / 2, magnitude, 3, 2, np.float32, both_rounded=False)
    expected = torch_gpt.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)).item()
    assert_grad_norm_within_budget(loss, expected, magnitude, 3, 2, np.float32)


def test_overwrite_logits_writes_the_gradient_in_place_and_the_default_mutates_nothing():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.integers(0, 5, (2, 3))
    kept = logits.copy()
    loss, grad = cross_entropy_with_grad(logits, targets)
    np.testing.assert_array_equal(logits, kept)
    loss_in_place, grad_in_place = cross_entropy_with_grad(logits, targets, overwrite_logits=True)
    assert np.shares_memory(grad_in_place, logits) and loss_in_place == loss
    np.testing.assert_array_equal(grad_in_place, grad)


def test_all_targets_ignored_is_nan_as_in_torch():
    logits, targets = np.zeros((2, 3), np.float32), np.full(2, -100)
    loss, grad = cross_entropy_with_grad(logits, targets)
    assert np.isnan(loss) and not grad.any()
    assert np.isnan(torch_gpt.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)).item())


def test_a_custom_ignore_index():
    logits = np.random.default_rng(0).standard_normal((3, 4))
    targets = np.array([1, 7, 2])
    loss = numpy_gpt.cross_entropy(logits, targets, ignore_index=7)
    expected = torch_gpt.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets), ignore_index=7).item()
    assert_grad_norm_within_budget(loss, expected, 1.0 + np.abs(logits).max(), 4, 2, np.float64)


BAD = [
    (np.zeros((2, 3), np.float32), np.array([0, 3]),
     r"targets must be in \[0, 3\) or equal ignore_index=-100, got min 0 and max 3"),
    (np.zeros((2, 3), np.float32), np.array([-1, 0]),
     r"targets must be in \[0, 3\) or equal ignore_index=-100, got min -1 and max 0"),
    (np.zeros((2, 3), np.float32), np.array([0.0, 1.0]), "targets must be integers, got dtype float64"),
    (np.zeros((2, 3), np.float32), np.array([[0, 1]]),
     r"targets must have shape \(2,\) \(the logits' without the vocabulary axis\), got shape \(1, 2\)"),
    (np.zeros((2, 4, 3), np.float32), np.zeros((4, 2), np.int64), r"targets must have shape \(2, 4\)"),
    (np.zeros(3, np.float32), np.array(0), r"logits must have shape \(N, V\) or \(B, T, V\), got shape \(3,\)"),
    (np.array([[0.0, np.nan], [1.0, 1.0], [np.nan, np.nan]], np.float32), np.array([0, 1, -100]),
     "logits contain NaN at 2 of 3 positions"),
]


@pytest.mark.parametrize("logits, targets, message", BAD)
def test_bad_input_is_the_same_value_error_in_both_packages(logits, targets, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        numpy_gpt.cross_entropy(logits, targets)
    with pytest.raises(ValueError, match=f"^{message}"):
        cross_entropy_with_grad(logits, targets)
    with pytest.raises(ValueError, match=f"^{message}"):
        torch_gpt.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))


def test_ignore_index_must_be_an_int_in_both_packages():
    for cross_entropy, convert in ((numpy_gpt.cross_entropy, np.asarray), (torch_gpt.cross_entropy, torch.tensor)):
        with pytest.raises(ValueError, match="^ignore_index must be an int, got 1.5"):
            cross_entropy(convert([[0.0, 1.0]]), convert([0]), ignore_index=1.5)


def test_the_books_calc_loss_batch_and_calc_loss_loader_agree_across_packages():
    cfg = {"vocab_size": 50, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1}
    np_model, torch_model = model_twins(cfg, np.float64, 0)
    ids = np.random.default_rng(0).integers(0, 50, 60)
    np_loader = NumpyLoader(NumpyDataset.from_token_ids(ids, 8, 8), batch_size=2)
    torch_loader = torch.utils.data.DataLoader(TorchDataset.from_token_ids(ids, 8, 8), batch_size=2)
    device = torch.device("cpu")
    (np_inputs, np_targets), (t_inputs, t_targets) = next(iter(np_loader)), next(iter(torch_loader))
    np_loss = numpy_gpt.calc_loss_batch(np_inputs, np_targets, np_model, device)
    torch_loss = torch_gpt.calc_loss_batch(t_inputs, t_targets, torch_model, device)
    assert torch_loss.requires_grad  # the book calls .backward() on it
    magnitude = 1.0 + np.log(50.0)
    assert_grad_norm_within_budget(np_loss.item(), torch_loss.item(), magnitude, 50, 20, np.float64)
    for num_batches in (None, 2, 99):
        np_mean = numpy_gpt.calc_loss_loader(np_loader, np_model, device, num_batches=num_batches)
        torch_mean = torch_gpt.calc_loss_loader(torch_loader, torch_model, device, num_batches=num_batches)
        assert isinstance(np_mean, float) and isinstance(torch_mean, float)
        assert_grad_norm_within_budget(np_mean, torch_mean, magnitude, 50, 20, np.float64)
    assert np.isnan(numpy_gpt.calc_loss_loader([], np_model, device))
    assert np.isnan(torch_gpt.calc_loss_loader([], torch_model, device))
