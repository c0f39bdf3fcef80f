"""Workload: the whole model's forward pass, (B, T) token ids -> (B, T, V) logits, per config and length.

The default is GPT-2 124M at B=1 and T in {128, 512, 1024}; ``--sizes``
adds the larger GPT-2 configs. One NumPy model and its torch twin are built
per config and shared by that config's sequence lengths.
"""

from __future__ import annotations

import functools

import numpy as np

import numpy_gpt
import torch_gpt
from gpt_common.config import GPTConfig

from . import flops
from .entries import Selection, numpy_entry, torch_entries, twin_of
from .harness import Workload

__all__ = ["workloads", "models"]


@functools.lru_cache(maxsize=1)  # one config's models at a time: the 1558M pair alone needs ~13 GB
def models(cfg: GPTConfig, seed: int = 123):
    """The NumPy model (seeded weights) and its torch twin, both in eval mode."""
    np_model = numpy_gpt.GPTModel(cfg, seed=seed).eval()
    return np_model, twin_of(np_model, torch_gpt.GPTModel(cfg))


def token_ids(cfg: GPTConfig, batch: int, tokens: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, tokens))


def workloads(configs: dict[str, GPTConfig], seq_lens: list[int], batch: int, selection: Selection) -> list[Workload]:
    """One workload per (config, T), the configs in the order given; lengths beyond a context are skipped."""
    result = []
    for size, cfg in configs.items():
        for tokens in seq_lens:
            if tokens > cfg.context_length:
                continue

            def build(cfg=cfg, tokens=tokens):
                np_model, torch_model = models(cfg)
                idx = token_ids(cfg, batch, tokens)
                return [numpy_entry(lambda: np_model(idx), selection)] + torch_entries(torch_model, (idx,), selection)

            weights_mb = flops.FLOAT * flops.model_weights(cfg) / 2**20
            params = {"size": size, "B": batch, "T": tokens, "weights_mb": weights_mb}
            result.append(Workload("forward", "forward", params, flops.model_forward(cfg, batch, tokens),
                                   flops.model_bytes(cfg, batch, tokens), build))
    return result
