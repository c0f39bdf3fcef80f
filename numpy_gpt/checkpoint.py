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
    check_dropout_source,
    config_from_gpt2,
    read_checkpoint,
    select,
    state_shapes,
    write_checkpoint,
)

from .model import GPTModel
from .validation import check_float_dtype

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "FORMAT", "FORMAT_VERSION", "GPT2_KEYS", "GPT2_BLOCK_KEYS",
    "Checkpoint", "state_shapes", "config_from_gpt2", "read_checkpoint", "select", "write_checkpoint",
    "load_pretrained", "save_pretrained",
]


def _open_for_reading(weights_file: Path):
    """``safe_open`` reading with pread(2) (safetensors >= 0.8); older versions only memory-map, then copy."""
    try:
        return safe_open(weights_file, framework="numpy", backend="pread")
    except TypeError:  # no ``backend`` argument
        return safe_open(weights_file, framework="numpy")


def load_pretrained(
    path: str | os.PathLike, *, dtype=np.float32, seed: int | None = None, rng: np.random.Generator | None = None
) -> GPTModel:
    """A GPT-2 (Hugging Face) or our own checkpoint directory as a ready ``GPTModel`` in eval mode.

    Its dropout (in training mode) draws from ``rng``, or from ``np.random.default_rng(seed)``; with
    neither, from fresh OS entropy, as ``GPTModel(cfg)`` does. The model is built with placeholders
    for weights (``init=False``: no memory, nothing drawn) and the tensors read (``pread``: no
    page-cache pages mapped into the process) become its parameters. A tied head gets the token
    embedding's very array. Peak memory: the weights.
    """
    check_float_dtype("dtype", str(np.dtype(dtype)), np.issubdtype(dtype, np.floating))
    check_dropout_source(seed, "rng", rng, "numpy.random.Generator", isinstance(rng, np.random.Generator))
    checkpoint = read_checkpoint(path)
    model = GPTModel(checkpoint.cfg, seed, rng=rng, dtype=dtype, init=False)
    state = {}
    with _open_for_reading(checkpoint.weights_file) as f:
        for file_key, targets in checkpoint.plan.items():
            raw = f.get_tensor(file_key).astype(dtype, copy=False)
            state.update({key: select(raw, transpose, part) for key, transpose, part in targets})
    model.load_state_dict(state, strict=True, assign=True)
    if checkpoint.tied:
        model.out_head.weight = model.tok_emb.weight  # the same array: tied, not copied
    return model.eval()


def save_pretrained(model: GPTModel, path: str | os.PathLike) -> None:
    """Write ``model`` in our format (model.safetensors + config.json), readable by either package's loader."""
    tied = model.out_head.weight is model.tok_emb.weight
    tensors = {key: np.ascontiguousarray(value) for key, value in model.state_dict().items()
               if not (tied and key == "out_head.weight")}
    write_checkpoint(path, model.cfg, tensors, tied)
