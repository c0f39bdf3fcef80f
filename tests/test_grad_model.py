"""The whole model's loss and gradients: ``numpy_gpt.loss_and_grads`` against torch autograd (eval, and training
with shared dropout masks), finite differences, a Hugging Face ``GPT2LMHeadModel`` (an implementation nobody here
wrote, loaded through ``load_pretrained``), the tied head, repeated ids, ``ignore_index``, B = 1, T = 1, and
no state left on the model between calls."""

import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.tolerances import FD_STEP, assert_directional_derivative, assert_grad_norm_within_budget
from tests.grad_checks import (
    TermMagnitudes,
    directional_derivative,
    dot,
    fix_masks,
    float64_copy,
    random_direction,
    unique_parameters,
)
from tests.strategies import DTYPES, configs, seeds, token_batches
from tests.test_checkpoint import gpt2_configs, random_gpt2
from tests.twins import model_twins


def targets_for(ids: np.ndarray, vocab_size: int, seed: int) -> np.ndarray:
    """Random targets with about one position in five set to ignore_index (-100)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, vocab_size, ids.shape)
    targets[rng.random(ids.shape) < 0.2] = -100
    targets[0, 0] = rng.integers(0, vocab_size)  # at least one counted position (all ignored: tested below)
    return targets


def compare_with_torch(np_model, torch_model, ids, targets, mask_seed=None):
    """loss_and_grads on both sides (and on a float64 copy for the budgets) agree; returns the NumPy result."""
    dtype = np_model.tok_emb.weight.dtype
    reference = float64_copy(np_model)
    magnitudes = TermMagnitudes(reference)
    for model in (np_model, torch_model, reference):
        if mask_seed is not None:
            fix_masks(model, mask_seed)
    loss, grads = numpy_gpt.loss_and_grads(np_model, ids, targets)
    loss_t, grads_t = torch_gpt.loss_and_grads(torch_model, ids, targets)
    loss64, _ = numpy_gpt.loss_and_grads(reference, ids, targets)
    assert isinstance(loss, float) and set(grads) == set(grads_t) == {k for k, _ in torch_model.named_parameters()}
    steps = 2 * len(list(np_model.modules()))
    for key, grad in grads.items():
        assert grad.dtype == dtype and grad.shape == grads_t[key].shape, key
        assert_grad_norm_within_budget(grad, grads_t[key].detach().cpu().numpy(), magnitudes.magnitudes[key],
                                       ids.size, steps, dtype, name=key)
    counted = max(int((targets != -100).sum()), 1)
    assert_grad_norm_within_budget(loss, loss_t, abs(loss64), counted, steps, dtype, name="loss")
    return loss, grads


@settings(max_examples=15)
@given(st.data(), configs(), DTYPES, seeds, st.booleans())
def test_loss_and_grads_match_torch(data, cfg, dtype, seed, train):
    np_model, torch_model = model_twins(cfg, dtype, seed, train=train)
    ids = data.draw(token_batches(cfg))  # B = 1 and T = 1 included
    compare_with_torch(np_model, torch_model, ids, targets_for(ids, cfg.vocab_size, seed),
                       mask_seed=seed if train else None)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 1)])
def test_loss_and_grads_match_torch_at_b1_and_t1(shape):
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 6, "n_heads": 2, "n_layers": 2, "qkv_bias": True}
    np_model, torch_model = model_twins(cfg, np.float64, 0)
    ids = np.random.default_rng(1).integers(0, 11, shape)
    compare_with_torch(np_model, torch_model, ids, np.random.default_rng(2).integers(0, 11, shape))


def test_repeated_ids_and_ignored_targets():
    cfg = {"vocab_size": 5, "context_length": 8, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    np_model, torch_model = model_twins(cfg, np.float64, 3)
    ids = np.array([[2, 2, 2, 4, 2, 2]])
    targets = np.array([[1, -100, 3, 2, -100, 0]])
    _, grads = compare_with_torch(np_model, torch_model, ids, targets)
    assert not grads["tok_emb.weight"][[0, 1, 3]].any() and grads["tok_emb.weight"][[2, 4]].all()
    assert not grads["pos_emb.weight"][6:].any()  # positions past T get nothing
    # an ignored position adds nothing: dropping it from the targets changes no gradient
    loss_all_but, grads_all_but = numpy_gpt.loss_and_grads(np_model, ids[:, :4], targets[:, :4])
    truncated = numpy_gpt.loss_and_grads(np_model, ids[:, :4], np.array([[1, -100, 3, 2]]))
    assert loss_all_but == truncated[0]


def test_every_target_ignored_gives_nan_loss_and_zero_gradients_as_torch():
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    np_model, torch_model = model_twins(cfg, np.float64, 0)
    ids, targets = np.zeros((2, 3), int), np.full((2, 3), -100)
    loss, grads = numpy_gpt.loss_and_grads(np_model, ids, targets)
    loss_t, grads_t = torch_gpt.loss_and_grads(torch_model, ids, targets)
    assert np.isnan(loss) and np.isnan(loss_t)
    assert not any(g.any() for g in grads.values()) and not any(g.any() for g in grads_t.values())


def tie(np_model, torch_model):
    np_model.out_head.weight = np_model.tok_emb.weight  # as load_pretrained does: one array
    torch_model.out_head.weight = torch_model.tok_emb.weight


@given(configs(), DTYPES, seeds, st.data())
@settings(max_examples=10)
def test_tied_head_gets_the_sum_of_both_uses_once(cfg, dtype, seed, data):
    np_model, torch_model = model_twins(cfg, dtype, seed)
    ids = data.draw(token_batches(cfg))
    targets = targets_for(ids, cfg.vocab_size, seed)
    np_model.out_head.weight = np_model.tok_emb.weight.copy()  # equal values, two arrays: two gradients
    _, untied = numpy_gpt.loss_and_grads(np_model, ids, targets)
    tie(np_model, torch_model)
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
    _, grads = compare_with_torch(np_model, torch_model, ids, targets)
    assert "out_head.weight" not in grads and "tok_emb.weight" in grads
    if dtype == np.float64:  # tied with the same array values: the sum of the untied model's two gradients
        reference = float64_copy(np_model)
        magnitudes = TermMagnitudes(reference)
        numpy_gpt.loss_and_grads(reference, ids, targets)
        assert_grad_norm_within_budget(grads["tok_emb.weight"], untied["tok_emb.weight"] + untied["out_head.weight"],
                                       magnitudes.magnitudes["tok_emb.weight"], ids.size, 4, dtype)


def loss_of(model, ids, targets, mask_seed):
    if mask_seed is not None:
        fix_masks(model, mask_seed)
    return float(numpy_gpt.cross_entropy(model(ids), targets))


@settings(max_examples=8)
@given(configs(max_layers=2), seeds, st.data(), st.booleans(), st.booleans())
def test_gradients_match_finite_differences(cfg, seed, data, train, tied):
    np_model, torch_model = model_twins(cfg, np.float64, seed, train=train, scale=0.3)
    if tied:
        tie(np_model, torch_model)
    ids = data.draw(token_batches(cfg))
    targets = targets_for(ids, cfg.vocab_size, seed)
    mask_seed = seed if train else None
    if mask_seed is not None:
        fix_masks(np_model, mask_seed)
    _, grads = numpy_gpt.loss_and_grads(np_model, ids, targets)
    params = unique_parameters(np_model)
    direction = random_direction(params, seed)
    finite_difference, truncation = directional_derivative(
        lambda: loss_of(np_model, ids, targets, mask_seed), params, direction, FD_STEP)
    predicted, size = dot(grads, direction)
    # f = mean(logsumexp - z_target); each layer's rounding reaches the logits, so S grows with the depth
    logits = np_model(ids)
    objective_terms = (cfg.n_layers + 2) * float(np.mean(np.abs(logits).max(-1) + np.log(cfg.vocab_size)))
    assert_directional_derivative(finite_difference, predicted, size, objective_terms, truncation)


@settings(max_examples=8)
@given(gpt2_configs(), seeds, st.data())
def test_loss_and_grads_match_hugging_face_gpt2(config, seed, data):
    """HF's loss with labels (shifted inside: position t predicts label t + 1) and .backward(); its gradients,
    saved as a checkpoint in place of its weights, load through the same key table as any weights."""
    hf = random_gpt2(config, seed).double()
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, (2, data.draw(st.integers(2, config.n_positions))))
    out = hf(torch.from_numpy(ids), labels=torch.from_numpy(ids))
    out.loss.backward()
    with tempfile.TemporaryDirectory() as path:
        hf.save_pretrained(path)
        model = numpy_gpt.load_pretrained(path, dtype=np.float64)
        with torch.no_grad():
            for param in hf.parameters():
                param.copy_(param.grad)
        hf.save_pretrained(path)
        hf_grads = numpy_gpt.load_pretrained(path, dtype=np.float64)
    assert model.out_head.weight is model.tok_emb.weight  # GPT-2's tied head
    targets = np.concatenate([ids[:, 1:], np.full((2, 1), -100)], axis=1)  # our targets: HF's shift, last ignored
    magnitudes = TermMagnitudes(model)
    loss, grads = numpy_gpt.loss_and_grads(model, ids, targets)
    expected = dict(hf_grads.named_parameters())
    assert set(grads) == {k for k in expected if k != "out_head.weight"}
    # transformers computes the loss of even a float64 model in float32 (ForCausalLMLoss upcasts with
    # logits.float()), so HF's loss and d loss / d logits, and with them every gradient, carry float32 rounding.
    assert_grad_norm_within_budget(loss, out.loss.item(), abs(loss), ids.size, 2, np.float32, name="loss")
    for key, grad in grads.items():
        assert_grad_norm_within_budget(grad, expected[key], magnitudes.magnitudes[key], ids.size, 2, np.float32,
                                       name=key)


def test_no_state_survives_between_calls():
    cfg = {"vocab_size": 13, "context_length": 6, "emb_dim": 6, "n_heads": 3, "n_layers": 2, "drop_rate": 0.0}
    model, _ = model_twins(cfg, np.float64, 0)
    fresh, _ = model_twins(cfg, np.float64, 0)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 13, (2, 5)), rng.integers(0, 13, (3, 4))
    numpy_gpt.loss_and_grads(model, first, first)
    loss, grads = numpy_gpt.loss_and_grads(model, second, second)
    loss_fresh, grads_fresh = numpy_gpt.loss_and_grads(fresh, second, second)
    assert loss == loss_fresh
    for key in grads:
        np.testing.assert_array_equal(grads[key], grads_fresh[key])
    assert all(not m._saved and not m.grads and not m.keeps_activations for m in model.modules())


def test_a_failed_call_leaves_nothing_on_the_model():
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = numpy_gpt.GPTModel(cfg, seed=0)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 7\)"):
        numpy_gpt.loss_and_grads(model, np.zeros((1, 3), int), np.array([[0, 9, 1]]))
    assert all(not m._saved and not m.grads and not m.keeps_activations for m in model.modules())


def test_model_backward_without_a_kept_forward_is_a_value_error():
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = numpy_gpt.GPTModel(cfg, seed=0)
    logits = model(np.zeros((1, 3), int))  # an ordinary forward keeps nothing
    with pytest.raises(ValueError, match=r"^GPTModel.backward called without a forward that kept its activations: "
                       r"run the forward inside `with model.keeping_activations\(\):`, then one backward$"):
        model.backward(np.ones_like(logits))


def test_keeping_activations_with_a_kv_cache_is_a_value_error():
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = numpy_gpt.GPTModel(cfg, seed=0)
    cache = numpy_gpt.KVCache(model.cfg, batch_size=1, dtype=np.float32)
    with pytest.raises(ValueError, match="gradients through a KV cache are not supported"):
        with model.keeping_activations():
            model(np.zeros((1, 2), int), cache=cache)
