"""Checkpoints, torch twin: the same directories (config.json + model.safetensors), the same table and checks.

The key table, the config mapping and every check live once, in the
framework-neutral ``gpt_common.checkpoint``; this file only reads
tensors as torch tensors and builds the ``nn.Module``. The weights are the
model's own memory: changing or truncating the file later does not touch them.
``mmap=True`` shares the file's pages instead (no copy, but then the file must
stay as it is while the model lives: a truncated file kills the process with SIGBUS).
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
    check_dropout_source,
    config_from_gpt2,
    read_checkpoint,
    select,
    state_shapes,
    write_checkpoint,
)

from .attention import CausalAttention, causal_mask
from .layers import Dropout
from .model import GPTModel
from .validation import check_float_dtype

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "FORMAT", "FORMAT_VERSION", "GPT2_KEYS", "GPT2_BLOCK_KEYS",
    "Checkpoint", "state_shapes", "config_from_gpt2", "read_checkpoint", "select", "write_checkpoint",
    "load_pretrained", "save_pretrained",
]


def load_pretrained(
    path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device="cpu", mmap: bool = False,
    seed: int | None = None, generator: torch.Generator | None = None,
) -> GPTModel:
    """A GPT-2 (Hugging Face) or our own checkpoint directory as a ready ``GPTModel`` in eval mode.

    Its dropout (in training mode) draws from ``generator``, or from a generator on ``device`` seeded
    with ``seed``; with neither, from torch's global generator, as every ``nn.Dropout`` does. The
    model is built on the "meta" device (shapes only: no memory, no random init) and its
    parameters then become the checkpoint's tensors, copied into memory the model owns; with
    ``mmap=True`` a tensor already in ``dtype`` stays the file's memory-mapped pages (see above).
    """
    is_float = isinstance(dtype, torch.dtype) and dtype.is_floating_point
    check_float_dtype("dtype", str(dtype).removeprefix("torch."), is_float)
    check_dropout_source(seed, "generator", generator, "torch.Generator", isinstance(generator, torch.Generator))
    if generator is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device}, but the model goes to {device}: they must match")
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    checkpoint = read_checkpoint(path, dtypes=("F16", "BF16", "F32", "F64"))
    state = {}
    with safe_open(checkpoint.weights_file, framework="pt", device=str(device)) as f:
        for file_key, targets in checkpoint.plan.items():
            raw = f.get_tensor(file_key).to(dtype, copy=not mmap)  # copy: never the file's pages, unless asked
            state.update({key: select(raw, transpose, part) for key, transpose, part in targets})
    with torch.device("meta"):
        model = GPTModel(checkpoint.cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if checkpoint.tied:
        model.out_head.weight = model.tok_emb.weight  # the same Parameter: tied, not copied
    for module in model.modules():
        if isinstance(module, CausalAttention):  # buffers are not in the state dict: make them for real
            module.mask = causal_mask(checkpoint.cfg.context_length, device=device)
        if isinstance(module, Dropout):
            module.generator = generator
    return model.eval()


def save_pretrained(model: GPTModel, path: str | os.PathLike) -> None:
    """Write ``model`` in our format (model.safetensors + config.json), readable by either package's loader.

    bfloat16 has no NumPy dtype, so a bf16 model is written as float32, which holds every bf16 value exactly.
    """
    tied = model.out_head.weight is model.tok_emb.weight
    tensors = {key: np.ascontiguousarray(_numpy(value)) for key, value in model.state_dict().items()
               if not (tied and key == "out_head.weight")}
    write_checkpoint(path, model.cfg, tensors, tied)


def _numpy(value: torch.Tensor) -> np.ndarray:
    """A parameter as a NumPy array; bfloat16 widened to float32 (exactly)."""
    value = value.detach().cpu()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
