"""Hypothesis strategies shared by the test modules: tiny valid configs, dtypes, seeds, token batches.

Array contents come from a NumPy generator seeded by a drawn integer rather
than from hypothesis' own array strategy: it is much faster for float arrays
and still lets hypothesis shrink to a failing seed.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from gpt_common.config import GPTConfig

DTYPES = st.sampled_from([np.float32, np.float64])
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def configs(draw, max_layers: int = 2, drop_rates=(0.0, 0.1, 0.5)) -> GPTConfig:
    """Small configs, including odd head widths and a single head or layer."""
    n_heads = draw(st.integers(1, 4))
    head_dim = draw(st.integers(1, 7))
    return GPTConfig(
        vocab_size=draw(st.integers(2, 61)),
        context_length=draw(st.integers(1, 12)),
        emb_dim=n_heads * head_dim,
        n_heads=n_heads,
        n_layers=draw(st.integers(1, max_layers)),
        drop_rate=draw(st.sampled_from(drop_rates)),
        qkv_bias=draw(st.booleans()),
    )


@st.composite
def token_batches(draw, cfg: GPTConfig, max_batch: int = 3) -> np.ndarray:
    """A (B, T) int64 array of valid ids with 1 <= T <= context_length."""
    batch = draw(st.integers(1, max_batch))
    seq_len = draw(st.integers(1, cfg.context_length))
    rng = np.random.default_rng(draw(seeds))
    return rng.integers(0, cfg.vocab_size, (batch, seq_len))


@st.composite
def activations(
    draw, width: int, dtype, max_batch: int = 3, max_tokens: int = 9, scales=(0.1, 1.0, 10.0)
) -> np.ndarray:
    """A (B, T, width) array of N(0, scale^2) values, scale drawn from ``scales``."""
    batch = draw(st.integers(1, max_batch))
    tokens = draw(st.integers(1, max_tokens))
    scale = draw(st.sampled_from(scales))
    rng = np.random.default_rng(draw(seeds))
    return (scale * rng.standard_normal((batch, tokens, width))).astype(dtype)
