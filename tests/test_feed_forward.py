"""FeedForward: NumPy vs the torch twin, with its C -> 4C -> C shape."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from tests.strategies import DTYPES, activations, configs, seeds
from tests.twins import run_torch, twins


@given(st.data(), configs(), DTYPES, seeds)
def test_feed_forward_matches_torch(data, cfg, dtype, seed):
    np_ff, torch_ff = twins(numpy_gpt.FeedForward, torch_gpt.FeedForward, (cfg,), dtype, seed)
    x = data.draw(activations(cfg.emb_dim, dtype))
    out = np_ff(x)
    assert out.dtype == dtype
    reference = tol.feed_forward_budget(np_ff, x, 0.0)
    assert_matches_reference(reference, dtype, out, run_torch(torch_ff, x))
    assert np_ff.layers[0].weight.shape == (4 * cfg.emb_dim, cfg.emb_dim)


def test_feed_forward_is_the_composition_it_claims():
    cfg = {"vocab_size": 5, "context_length": 3, "emb_dim": 4, "n_heads": 2, "n_layers": 1}
    ff = numpy_gpt.FeedForward(cfg, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((1, 3, 4))
    first, second = ff.layers[0], ff.layers[2]
    hidden = x @ first.weight.T + first.bias
    gelu = 0.5 * hidden * (1 + np.tanh(np.sqrt(2 / np.pi) * (hidden + 0.044715 * hidden**3)))
    _, budget = tol.feed_forward_budget(ff, x, 0.0)
    tol.assert_within_budget(ff(x), gelu @ second.weight.T + second.bias, budget, np.float64)
