"""Checkpoints, the NumPy loader: GPT-2 as Hugging Face publishes it, and our own models, through safetensors.

The directory layout (``config.json`` + ``model.safetensors``), the one key table
and every check live in ``gpt_common.checkpoint``, shared with ``torch_gpt.checkpoint``;
this file only reads tensors as NumPy arrays and builds the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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

from .model import GPTModel

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "FORMAT", "FORMAT_VERSION", "GPT2_KEYS", "GPT2_BLOCK_KEYS",
    "Checkpoint", "state_shapes", "config_from_gpt2", "read_checkpoint", "select", "write_checkpoint",
    "load_pretrained", "save_pretrained",
]


class _Zeros(np.random.Generator):
    """A generator that hands out zeros as initial weights, which the checkpoint then replaces: building the
    model draws no random numbers. (Dropout keeps it; its ``random``, used in training, is the usual one.)"""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.zeros(size, dtype=np.float32)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return np.zeros(size, dtype=np.float32)


def _open_for_reading(weights_file: Path):
    """``safe_open`` reading with pread(2) (safetensors >= 0.8); older versions only memory-map, then copy."""
    try:
        return safe_open(weights_file, framework="numpy", backend="pread")
    except TypeError:  # no ``backend`` argument
        return safe_open(weights_file, framework="numpy")


def load_pretrained(path: str | os.PathLike, *, dtype=np.float32) -> GPTModel:
    """A GPT-2 (Hugging Face) or our own checkpoint directory as a ready ``GPTModel`` in eval mode.

    The model is built with zeros for weights, and each tensor read (``pread``: no page-cache
    pages mapped into the process) replaces its placeholders, which go first. A tied head gets
    the token embedding's very array. Peak memory: the weights plus the untied head's placeholder.
    """
    checkpoint = read_checkpoint(path)
    model = GPTModel(checkpoint.cfg, rng=_Zeros(np.random.PCG64()), dtype=dtype)
    with _open_for_reading(checkpoint.weights_file) as f:
        for file_key, targets in checkpoint.plan.items():
            model._assign({key: None for key, _, _ in targets})  # free the placeholders before reading
            raw = f.get_tensor(file_key).astype(dtype, copy=False)
            model._assign({key: select(raw, transpose, part) for key, transpose, part in targets})
    return model.eval()


def save_pretrained(model: GPTModel, path: str | os.PathLike) -> None:
    """Write ``model`` in our format (model.safetensors + config.json), readable by either package's loader."""
    tied = model.out_head.weight is model.tok_emb.weight
    tensors = {key: np.ascontiguousarray(value) for key, value in model.state_dict().items()
               if not (tied and key == "out_head.weight")}
    write_checkpoint(path, model.cfg, tensors, tied)
