"""Sampling: the same tokens from the same seed in both packages, the filters against transformers' warpers,
inverse-CDF draws and their frequencies, greedy, stopping at an end id, and bad settings."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from numpy_gpt import sampling as np_sampling
from tests.strategies import configs, seeds
from tests.twins import model_twins
from torch_gpt import sampling as torch_sampling


def sampling_budget(logits, params):
    """The float64 rounding budget of ``sampling_probs``: softmax over the tokens top-k keeps."""
    probs = np_sampling.sampling_probs(logits, numpy_gpt.SamplingParams(params.temperature, params.top_k))
    reference, budget = tol.sampling_budget(logits, params.temperature, probs > 0)
    if params.top_p is not None and params.top_p < 1.0:
        budget = tol.top_p_budget(reference, budget, params.top_p)
    return reference, budget


@st.composite
def sampling_params(draw, vocab_size: int):
    return numpy_gpt.SamplingParams(
        temperature=draw(st.sampled_from([0.05, 0.5, 1.0, 2.0])),
        top_k=draw(st.none() | st.integers(1, vocab_size + 2)),
        top_p=draw(st.none() | st.floats(0.05, 1.0)),
    )


@st.composite
def logit_rows(draw, max_batch=4, max_vocab=60):
    """(B, V) float64 logits of scale 0.1 to 10, continuous so no two are equal."""
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(2, max_vocab)))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    return scale * np.random.default_rng(draw(seeds)).standard_normal(shape)


@settings(max_examples=100)
@given(logit_rows(), st.data(), seeds)
def test_numpy_and_torch_choose_the_same_tokens_from_the_same_seed(logits, data, seed):
    params = data.draw(sampling_params(logits.shape[-1]))
    rng_np, rng_torch = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(5):
        chosen = np_sampling.sample_next(logits, params, rng_np)
        chosen_torch = torch_sampling.sample_next(torch.from_numpy(logits), params, rng_torch)
        np.testing.assert_array_equal(chosen, chosen_torch.numpy())
    assert rng_np.random() == rng_torch.random()  # both consumed exactly the same numbers
    _, budget = sampling_budget(logits, params)
    torch_probs = torch_sampling.sampling_probs(torch.from_numpy(logits), params).numpy()
    tol.assert_within_budget(np_sampling.sampling_probs(logits, params), torch_probs, budget, np.float64)


def mass_above(probs):
    """For each token, the probability of the tokens ranked above it."""
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, -1)
    above = np.empty_like(probs)
    np.put_along_axis(above, order, np.cumsum(sorted_probs, -1) - sorted_probs, -1)
    return above


@given(logit_rows(), st.data())
def test_filters_keep_the_tokens_transformers_warpers_keep(logits, data):
    """A third opinion: TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper, applied in generate's order."""
    params = data.draw(sampling_params(logits.shape[-1]))
    assume(params.top_p is None or params.top_p < 1.0)
    scores = TemperatureLogitsWarper(params.temperature)(None, torch.from_numpy(logits))
    if params.top_k is not None:
        scores = TopKLogitsWarper(params.top_k)(None, scores)
    if params.top_p is not None:
        before = torch.softmax(scores, -1).numpy()
        assume(np.abs(mass_above(before) - params.top_p).min() > 1e-9)  # not at a boundary rounding could flip
        scores = TopPLogitsWarper(params.top_p)(None, scores)
    expected = torch.softmax(scores, -1).numpy()
    probs = np_sampling.sampling_probs(logits, params)
    np.testing.assert_array_equal(probs > 0, expected > 0)
    kept_logits = np.where(probs > 0, np.log(np.where(probs > 0, probs, 1.0)), -np.inf)
    _, budget = tol.softmax_budget(kept_logits, 0.0)  # renormalising the kept tokens
    _, own = sampling_budget(logits, params)
    total = probs.sum(-1, keepdims=True)
    tol.assert_within_budget(probs / total, expected, budget + own / total, np.float64)


@given(logit_rows(), st.data())
def test_top_k_and_top_p_keep_the_smallest_sets_they_promise(logits, data):
    params = data.draw(sampling_params(logits.shape[-1]))
    probs = np_sampling.sampling_probs(logits, params)
    kept = probs > 0
    if params.top_k is not None:
        assert (kept.sum(-1) <= params.top_k).all()
    if params.top_p is not None:
        full = np_sampling.sampling_probs(logits, numpy_gpt.SamplingParams(params.temperature, params.top_k))
        nucleus = full * kept
        assert (nucleus.sum(-1) >= min(params.top_p, 1.0) - 1e-12).all()  # the kept mass reaches top_p ...
        smallest_kept = np.where(kept, full, np.inf).min(-1)
        assert (nucleus.sum(-1) - smallest_kept < params.top_p + 1e-12).all()  # ... and not without its last token
    assert (kept.sum(-1) >= 1).all()


@pytest.mark.parametrize("sampling", [np_sampling, torch_sampling])
def test_inverse_cdf_picks_the_interval_holding_u_and_never_a_zero_probability_token(sampling):
    convert = np.asarray if sampling is np_sampling else torch.tensor
    probs = convert(np.tile([0.2, 0.0, 0.5, 0.3, 0.0], (7, 1)))
    uniforms = convert(np.array([0.0, 0.1999, 0.2, 0.6999, 0.7, 0.9999, np.nextafter(1.0, 0.0)]))
    np.testing.assert_array_equal(np.asarray(sampling.inverse_cdf(probs, uniforms)), [0, 0, 2, 2, 3, 3, 3])
    scaled = convert(np.array([[2.0, 0.0, 6.0, 0.0]]))  # unnormalised: the total scales u
    np.testing.assert_array_equal(np.asarray(sampling.inverse_cdf(scaled, convert(np.array([0.3])))), [2])


@pytest.mark.parametrize("params", [
    numpy_gpt.SamplingParams(1.0), numpy_gpt.SamplingParams(0.7, top_k=3), numpy_gpt.SamplingParams(1.3, top_p=0.6),
    numpy_gpt.SamplingParams(2.0, top_k=4, top_p=0.9),
])
def test_sample_frequencies_follow_the_processed_distribution(params):
    logits = np.array([2.0, 1.5, 0.3, 0.0, -0.5, -1.0, 1.0])
    probs = np_sampling.sampling_probs(logits[None], params)[0]
    probs /= probs.sum()
    draws = 40_000
    chosen = np_sampling.sample_next(np.tile(logits, (draws, 1)), params, np.random.default_rng(0))
    counts = np.bincount(chosen, minlength=len(logits))
    assert (counts[probs == 0] == 0).all()
    sigma = np.sqrt(draws * probs * (1 - probs))
    assert (np.abs(counts - draws * probs) <= 5 * sigma + 1).all(), (counts, draws * probs)


@given(logit_rows(), seeds)
def test_greedy_is_the_argmax_and_consumes_no_random_numbers(logits, seed):
    rng = np.random.default_rng(seed)
    params = numpy_gpt.SamplingParams(0.0, top_k=2, top_p=0.5)  # the filters cannot change the argmax
    np.testing.assert_array_equal(np_sampling.sample_next(logits, params, rng), logits.argmax(-1))
    torch_chosen = torch_sampling.sample_next(torch.from_numpy(logits), params, rng)
    np.testing.assert_array_equal(torch_chosen.numpy(), logits.argmax(-1))
    assert rng.random() == np.random.default_rng(seed).random()




@settings(max_examples=60)
@given(st.data(), configs(), seeds)
def test_seeded_generation_gives_the_same_tokens_in_both_packages(data, cfg, seed):
    np_model, torch_model = model_twins(cfg, np.float64, seed, scale=1.0)
    params = data.draw(sampling_params(cfg.vocab_size))
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (data.draw(st.integers(1, 3)), 1))
    steps = data.draw(st.integers(0, 2 * cfg.context_length))
    kwargs = dict(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p, rng=seed)
    out = numpy_gpt.generate(np_model, idx, steps, **kwargs)
    np.testing.assert_array_equal(out, torch_gpt.generate(torch_model, torch.from_numpy(idx), steps, **kwargs).numpy())
    np.testing.assert_array_equal(out, numpy_gpt.generate(np_model, idx, steps, use_cache=False, **kwargs))


@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_generation_stops_at_the_end_id_and_finished_rows_repeat_it(package):
    cfg = {"vocab_size": 7, "context_length": 12, "emb_dim": 6, "n_heads": 2, "n_layers": 1}
    np_model, torch_model = model_twins(cfg, np.float64, 5, scale=1.0)
    model = np_model if package is numpy_gpt else torch_model
    idx = np.array([[1, 2], [3, 4]])
    as_input = np.asarray if package is numpy_gpt else torch.from_numpy
    free = np.asarray(package.generate(model, as_input(idx), 8, temperature=1.0, rng=3))
    eos_id = int(free[0, 4])  # row 0's third new token
    stopped = np.asarray(package.generate(model, as_input(idx), 8, temperature=1.0, rng=3, eos_id=eos_id))
    row_ends = [int(np.flatnonzero(free[b, 2:] == eos_id)[0]) + 3 if (free[b, 2:] == eos_id).any() else 10
                for b in range(2)]
    assert stopped.shape[1] == max(row_ends)
    for b, end in enumerate(row_ends):
        np.testing.assert_array_equal(stopped[b, :end], free[b, :end])
        assert (stopped[b, end:] == eos_id).all()


BAD_SETTINGS = [
    (dict(temperature=-0.5), r"temperature must be a finite number >= 0 \(0 means greedy\), got -0.5"),
    (dict(temperature=math.inf), "temperature must be a finite number >= 0"),
    (dict(temperature=math.nan), "temperature must be a finite number >= 0"),
    (dict(temperature=1.0, top_k=0), "top_k must be None or an int >= 1, got 0"),
    (dict(temperature=1.0, top_k=2.5), "top_k must be None or an int >= 1, got 2.5"),
    (dict(temperature=1.0, top_p=0.0), r"top_p must be None or a number in \(0, 1\], got 0.0"),
    (dict(temperature=1.0, top_p=1.5), r"top_p must be None or a number in \(0, 1\], got 1.5"),
    (dict(temperature=1.0, top_p=-0.1), r"top_p must be None or a number in \(0, 1\], got -0.1"),
    (dict(eos_id=7), r"eos_id must be None or an int in \[0, 7\), got 7"),
    (dict(overflow="wrap"), "overflow must be 'slide' or 'stop', got 'wrap'"),
]


@pytest.mark.parametrize("kwargs, message", BAD_SETTINGS)
@pytest.mark.parametrize("package", [numpy_gpt, torch_gpt])
def test_bad_settings_raise_the_same_clear_error_in_both(package, kwargs, message):
    cfg = {"vocab_size": 7, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    model = package.GPTModel(cfg, seed=0) if package is numpy_gpt else package.GPTModel(cfg)
    idx = np.array([[1, 2]]) if package is numpy_gpt else torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match=message):
        package.generate_stream(model, idx, 3, **kwargs)  # raised at the call, not at the first step
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0, got -1"):
        package.generate(model, idx, -1)
