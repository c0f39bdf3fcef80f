"""Checkpoints, torch twin: the same directories (config.json + model.safetensors), the same table and checks.

The key table, the config mapping and every check live once, in the
framework-neutral ``gpt_common.checkpoint``; this file only reads
tensors as torch tensors and builds the ``nn.Module``. Tensors are
memory-mapped: a float32 checkpoint loaded as float32 is never copied, its
pages are shared with the operating system's file cache.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from safetensors import safe_open

from gpt_common.checkpoint import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    GPT2_BLOCK_KEYS,
    GPT2_KEYS,
    WEIGHTS_FILE,
    Checkpoint,
    config_from_gpt2,
    read_checkpoint,
    select,
    state_shapes,
    write_checkpoint,
)

from .attention import CausalAttention, causal_mask
from .model import GPTModel

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "FORMAT", "FORMAT_VERSION", "GPT2_KEYS", "GPT2_BLOCK_KEYS",
    "Checkpoint", "state_shapes", "config_from_gpt2", "read_checkpoint", "select", "write_checkpoint",
    "load_pretrained", "save_pretrained",
]


def load_pretrained(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device="cpu") -> GPTModel:
    """A GPT-2 (Hugging Face) or our own checkpoint directory as a ready ``GPTModel`` in eval mode.

    The model is built on the "meta" device (shapes only: no memory, no random init) and its
    parameters then become the checkpoint's tensors, so peak memory is the weights once.
    """
    checkpoint = read_checkpoint(path, dtypes=("F16", "BF16", "F32", "F64"))
    state = {}
    with safe_open(checkpoint.weights_file, framework="pt", device=str(device)) as f:
        for file_key, targets in checkpoint.plan.items():
            raw = f.get_tensor(file_key).to(dtype)
            state.update({key: select(raw, transpose, part) for key, transpose, part in targets})
    with torch.device("meta"):
        model = GPTModel(checkpoint.cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if checkpoint.tied:
        model.out_head.weight = model.tok_emb.weight  # the same Parameter: tied, not copied
    for module in model.modules():
        if isinstance(module, CausalAttention):  # buffers are not in the state dict: make them for real
            module.mask = causal_mask(checkpoint.cfg.context_length, device=device)
    return model.eval()


def save_pretrained(model: GPTModel, path: str | os.PathLike) -> None:
    """Write ``model`` in our format (model.safetensors + config.json), readable by either package's loader."""
    tied = model.out_head.weight is model.tok_emb.weight
    tensors = {key: np.ascontiguousarray(value.detach().cpu().numpy()) for key, value in model.state_dict().items()
               if not (tied and key == "out_head.weight")}
    write_checkpoint(path, model.cfg, tensors, tied)
