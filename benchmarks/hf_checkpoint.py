"""Our weights as Hugging Face saves GPT-2, so that both packages' ``load_pretrained`` and ``transformers`` load
the very weights the benchmarks time (``bench_generate``) and compare with (``peers``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import numpy_gpt
from gpt_common.checkpoint import CONFIG_FILE, GPT2_BLOCK_KEYS, GPT2_KEYS, WEIGHTS_FILE

__all__ = ["write_gpt2_checkpoint"]


def write_gpt2_checkpoint(model: numpy_gpt.GPTModel, path: Path) -> None:
    """``model`` as Hugging Face saves GPT-2: our table read backwards (transpose back, concatenate q, k, v)."""
    from safetensors.numpy import save_file

    state, cfg = model.state_dict(), model.cfg
    zeros = np.zeros(cfg.emb_dim, dtype=state["tok_emb.weight"].dtype)
    for name in ("W_query", "W_key", "W_value"):  # GPT-2 always has q, k, v biases: zeros compute the same
        for i in range(cfg.n_layers):
            state.setdefault(f"trf_blocks.{i}.att.{name}.bias", zeros)
    rows = list(GPT2_KEYS) + [(f"trf_blocks.{i}.{ours}", f"h.{i}.{theirs}", transpose, part)
                              for i in range(cfg.n_layers) for ours, theirs, transpose, part in GPT2_BLOCK_KEYS]
    parts: dict[str, list] = {}
    for ours, theirs, transpose, part in rows:
        value = state[ours].T if transpose else state[ours]
        if part is None:
            parts.setdefault(f"transformer.{theirs}", [value])  # the tied head's row repeats wte: written once
        else:
            parts.setdefault(f"transformer.{theirs}", []).append(value)  # q, k, v side by side
    save_file({key: np.ascontiguousarray(np.concatenate(p, axis=-1)) for key, p in parts.items()}, path / WEIGHTS_FILE)
    config = {"model_type": "gpt2", "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length,
              "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0,
              "bos_token_id": cfg.vocab_size - 1, "eos_token_id": cfg.vocab_size - 1}
    (path / CONFIG_FILE).write_text(json.dumps(config))
