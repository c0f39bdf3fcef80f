"""Workloads: each component alone at GPT-2 124M shapes (B=8, T=1024, C=768, H=12 by default).

Attention three ways: the wrapper of single-head modules, the fused
multi-head module, and (torch side only) the same module's projections
around ``F.scaled_dot_product_attention``. Then LayerNorm, GELU on the
feed-forward's (B, T, 4C) hidden activations, the feed-forward network,
and one transformer block.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import numpy_gpt
import torch_gpt
from gpt_common.config import GPTConfig

from . import flops
from .entries import Selection, numpy_entry, torch_entries, twin_of
from .harness import Workload

__all__ = ["NAMES", "workloads", "sdpa_attention"]

NAMES = ["attention-wrapper", "attention-mha", "layernorm", "gelu", "feedforward", "block"]


def sdpa_attention(att: torch_gpt.MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """``att``'s projections around torch's fused causal attention kernel instead of its own softmax(QK^T)V."""
    batch, num_tokens, _ = x.shape
    queries = att.split_heads(att.W_query(x))  # (B, T, C) -> (B, H, T, D)
    keys = att.split_heads(att.W_key(x))
    values = att.split_heads(att.W_value(x))
    context_vec = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)  # (B, H, T, D)
    return att.out_proj(context_vec.transpose(1, 2).reshape(batch, num_tokens, att.d_out))


def _inputs(shape: tuple, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _module_workload(name: str, params: dict, flop_count: float, byte_count: float, make_numpy, make_torch,
                     shape: tuple, selection: Selection, sdpa: bool = False) -> Workload:
    """A workload that runs ``module(x)`` for a NumPy module and its torch twin (plus SDPA if asked)."""

    def build():
        np_module = make_numpy().eval()
        x = _inputs(shape)
        torch_module = twin_of(np_module, make_torch())
        entries = [numpy_entry(lambda: np_module(x), selection)]
        entries += torch_entries(torch_module, (x,), selection)
        if sdpa:
            entries += torch_entries(torch_module, (x,), selection, call=sdpa_attention, impl="torch-sdpa")
        return entries

    return Workload("components", name, params, flop_count, byte_count, build)


def workloads(cfg: GPTConfig, batch: int, tokens: int, selection: Selection, names=NAMES) -> list[Workload]:
    """One workload per component name, at (batch, tokens) with ``cfg``'s width and heads."""
    c, h = cfg.emb_dim, cfg.n_heads
    rows, shape, hidden = batch * tokens, (batch, tokens, cfg.emb_dim), (batch, tokens, 4 * cfg.emb_dim)
    params = {"B": batch, "T": tokens, "C": c, "H": h}
    act = flops.FLOAT * rows * c  # bytes of one (B, T, C) activation
    seed = 0  # the same weights in every run
    specs = {
        "attention-wrapper": lambda: _module_workload(
            "attention-wrapper", {**params, "d_out": c // h},
            flops.attention_wrapper(batch, tokens, c, c // h, h), 2 * act + flops.FLOAT * 3 * c * c,
            lambda: numpy_gpt.MultiHeadAttentionWrapper(c, c // h, cfg.context_length, 0.0, h, rng=seed),
            lambda: torch_gpt.MultiHeadAttentionWrapper(c, c // h, cfg.context_length, 0.0, h), shape, selection),
        "attention-mha": lambda: _module_workload(
            "attention-mha", params,
            flops.multi_head_attention(batch, tokens, c, h), 2 * act + flops.FLOAT * (4 * c * c + c),
            lambda: numpy_gpt.MultiHeadAttention(c, c, cfg.context_length, 0.0, h, rng=seed),
            lambda: torch_gpt.MultiHeadAttention(c, c, cfg.context_length, 0.0, h), shape, selection, sdpa=True),
        "layernorm": lambda: _module_workload(
            "layernorm", params, flops.layer_norm(rows, c), 2 * act + flops.FLOAT * 2 * c,
            lambda: numpy_gpt.LayerNorm(c), lambda: torch_gpt.LayerNorm(c), shape, selection),
        "gelu": lambda: _module_workload(
            "gelu", {**params, "width": 4 * c}, flops.gelu(rows * 4 * c), 2 * 4 * act,
            numpy_gpt.GELU, torch_gpt.GELU, hidden, selection),
        "feedforward": lambda: _module_workload(
            "feedforward", params, flops.feed_forward(rows, c), 2 * act + flops.FLOAT * (8 * c * c + 5 * c),
            lambda: numpy_gpt.FeedForward(cfg, rng=seed), lambda: torch_gpt.FeedForward(cfg), shape, selection),
        "block": lambda: _module_workload(
            "block", params, flops.block(cfg, batch, tokens), 2 * act + flops.FLOAT * flops.block_weights(cfg),
            lambda: numpy_gpt.TransformerBlock(cfg, rng=seed), lambda: torch_gpt.TransformerBlock(cfg), shape,
            selection),
    }
    return [specs[name]() for name in names]
