"""The worker pool (``numpy_gpt.layers.map_rows`` / ``map_chunks``): every result is bitwise the same for any
number of threads and any block size, forward and backward, on both attention paths, and in the AdamW step.

The blocks depend only on the arrays' shapes and each kernel works row by row, so a different number of
threads, or blocks of a few bytes (many uneven blocks, even at these tiny sizes), must not change one bit.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
from numpy_gpt import layers
from numpy_gpt.attention import tiled_causal_attention, tiled_causal_attention_backward
from numpy_gpt.layers import map_chunks, using_threads
from tests.strategies import DTYPES, configs, seeds

SETTINGS = [(1, 1 << 40), (2, 1 << 40), (2, 64), (3, 100)]  # (threads, block bytes): one block, then many


def run_model(cfg, seed, dtype, train: bool, threads: int, block_bytes: int, monkeypatch):
    """Logits, loss and every gradient of a fresh model (the same weights and dropout draws each time)."""
    monkeypatch.setattr(layers, "CHUNK_BYTES", block_bytes)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab_size, (2, cfg.context_length))
    targets = rng.integers(0, cfg.vocab_size, ids.shape)
    with using_threads(threads):
        model = numpy_gpt.GPTModel(cfg, seed=seed, dtype=dtype).train(train)
        logits = model(ids)
        model = numpy_gpt.GPTModel(cfg, seed=seed, dtype=dtype).train(train)
        loss, grads = numpy_gpt.loss_and_grads(model, ids, targets)
    return logits, loss, grads


@settings(max_examples=15)
@given(configs(drop_rates=(0.0, 0.5)), seeds, DTYPES, st.booleans())
def test_the_model_forward_and_backward_are_bitwise_the_same_for_any_threads_and_blocks(cfg, seed, dtype, train):
    with pytest.MonkeyPatch.context() as monkeypatch:
        results = [run_model(cfg, seed, dtype, train, threads, size, monkeypatch) for threads, size in SETTINGS]
    logits, loss, grads = results[0]
    assert np.isfinite(loss) and grads
    for other_logits, other_loss, other_grads in results[1:]:
        np.testing.assert_array_equal(other_logits, logits)
        assert other_loss == loss
        assert other_grads.keys() == grads.keys()
        for key, grad in grads.items():
            np.testing.assert_array_equal(other_grads[key], grad, err_msg=key)


@settings(max_examples=10)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 40), st.integers(1, 9), st.integers(1, 16), seeds)
def test_tiled_attention_is_bitwise_the_same_for_any_threads_and_blocks(batch, heads, tokens, dim, tile, seed):
    rng = np.random.default_rng(seed)
    q, k, v, d_context = (rng.standard_normal((batch, heads, tokens, dim)).astype(np.float32) for _ in range(4))
    results = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        for threads, size in SETTINGS:
            monkeypatch.setattr(layers, "CHUNK_BYTES", size)
            with using_threads(threads):
                context, lse = tiled_causal_attention(q, k, v, tile)
                results.append((context, lse, *tiled_causal_attention_backward(d_context, q, k, v, context, lse, tile)))
    for other in results[1:]:
        for got, expected in zip(other, results[0]):
            np.testing.assert_array_equal(got, expected)


def test_the_adamw_step_is_bitwise_the_same_for_any_threads():
    rng = np.random.default_rng(0)
    start = {"w": rng.standard_normal(3 * numpy_gpt.optim.CHUNK + 5).astype(np.float32)}  # four uneven chunks
    grads = [{"w": rng.standard_normal(start["w"].shape).astype(np.float32)} for _ in range(3)]
    results = []
    for threads in (1, 2, 3):
        params = {"w": start["w"].copy()}
        optimizer = numpy_gpt.AdamW(params.items(), lr=1e-2, threads=threads)
        for g in grads:
            optimizer.step(g)
        results.append(params["w"])
    assert not np.array_equal(results[0], start["w"])
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])


def test_map_chunks_covers_every_chunk_once_and_raises_a_workers_error():
    seen = np.zeros(103, int)

    def count(worker, start, stop):
        seen[start:stop] += 1

    with using_threads(3):
        map_chunks(count, 103, 10)
    np.testing.assert_array_equal(seen, 1)

    def fail(worker, start, stop):
        if start == 20:
            raise ValueError("chunk 20")

    with using_threads(2), pytest.raises(ValueError, match="chunk 20"):
        map_chunks(fail, 103, 10)
