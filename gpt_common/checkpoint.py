"""Checkpoints: GPT-2 as Hugging Face publishes it, and our own models, read and written with safetensors.

A checkpoint is a directory with ``config.json`` and ``model.safetensors``
(e.g. ``huggingface-cli download gpt2 config.json model.safetensors --local-dir gpt2``).
Two kinds are recognised by their ``config.json``:

- Hugging Face GPT-2 (``"model_type": "gpt2"``): its names map to ours in the
  one table below. GPT-2 stores its projections as ``Conv1D`` weights
  ``[in, out]``, transposed to our ``[out, in]``; it fuses the query, key and
  value projections into one ``c_attn`` of width 3C, split into thirds; its
  output head is the token embedding (tied), so ours is the same array.
- Ours (``"format": "gpt-twins"``): our own state-dict keys and config, written by
  ``save_pretrained`` of either package, read by ``load_pretrained`` of either.

Everything is checked before any weight is read: the config, every key (none
missing, none unexpected), every shape and dtype, each error naming the file and
key. Framework-neutral: both twins' ``load_pretrained`` and ``save_pretrained``
(``numpy_gpt.checkpoint``, ``torch_gpt.checkpoint``) read and write through this one table and these checks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .config import GPTConfig
from .durable import fsync_file, install, replace_durably
from .validation import check_seed, is_int, is_real

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "FORMAT", "FORMAT_VERSION", "GPT2_KEYS", "GPT2_BLOCK_KEYS",
    "Checkpoint", "state_shapes", "config_from_gpt2", "read_checkpoint", "select", "write_checkpoint",
    "check_dropout_source",
]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
FORMAT, FORMAT_VERSION = "gpt-twins", 1

# The one table. (our key, GPT-2's key, transposed from Conv1D [in, out], which third of c_attn: 0 q, 1 k, 2 v).
# GPT-2's keys may carry a "transformer." prefix; block keys are under "h.{i}." (ours "trf_blocks.{i}.").
GPT2_KEYS = (
    ("tok_emb.weight", "wte.weight", False, None),
    ("out_head.weight", "wte.weight", False, None),  # tied: the same array (GPT-2's lm_head.weight is wte.weight)
    ("pos_emb.weight", "wpe.weight", False, None),
    ("final_norm.scale", "ln_f.weight", False, None),
    ("final_norm.shift", "ln_f.bias", False, None),
)
GPT2_BLOCK_KEYS = (
    ("att.W_query.weight", "attn.c_attn.weight", True, 0),
    ("att.W_key.weight", "attn.c_attn.weight", True, 1),
    ("att.W_value.weight", "attn.c_attn.weight", True, 2),
    ("att.W_query.bias", "attn.c_attn.bias", False, 0),
    ("att.W_key.bias", "attn.c_attn.bias", False, 1),
    ("att.W_value.bias", "attn.c_attn.bias", False, 2),
    ("att.out_proj.weight", "attn.c_proj.weight", True, None),
    ("att.out_proj.bias", "attn.c_proj.bias", False, None),
    ("ff.layers.0.weight", "mlp.c_fc.weight", True, None),
    ("ff.layers.0.bias", "mlp.c_fc.bias", False, None),
    ("ff.layers.2.weight", "mlp.c_proj.weight", True, None),
    ("ff.layers.2.bias", "mlp.c_proj.bias", False, None),
    ("norm1.scale", "ln_1.weight", False, None),
    ("norm1.shift", "ln_1.bias", False, None),
    ("norm2.scale", "ln_2.weight", False, None),
    ("norm2.shift", "ln_2.bias", False, None),
)
# Causal-mask buffers some GPT-2 files carry, and the tied head: present or not, never read.
GPT2_IGNORED = re.compile(r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)|lm_head\.weight")
# GPT-2 config options that would change the computation; each must have the value we compute with.
GPT2_FIXED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
              "reorder_and_upcast_attn": False, "add_cross_attention": False, "tie_word_embeddings": True}
GPT2_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both are GPT-2's tanh approximation
# The numbers we read from a GPT-2 config, and their JSON type (float: any number; int: an integer).
GPT2_NUMBERS = {"vocab_size": int, "n_positions": int, "n_ctx": int, "n_embd": int, "n_head": int, "n_layer": int,
                "n_inner": int, "layer_norm_epsilon": float, "resid_pdrop": float}


def _check_numbers(hf: Mapping[str, Any], config_file) -> None:
    """Each number we read is a JSON integer (``int``) or any JSON number (``float``), never a bool:
    null or "1e-5" is an error naming the file and key, not a TypeError later (n_inner may be null)."""
    for key, kind in GPT2_NUMBERS.items():
        value = hf.get(key)
        if key not in hf or (key == "n_inner" and value is None):
            continue
        if not (is_int(value) if kind is int else is_real(value)):
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{config_file}: {key} must be {what}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint: its config, and for each tensor in the file the (our key, transpose, part) it becomes."""

    weights_file: Path
    kind: str  # "gpt2" (Hugging Face) or FORMAT (ours)
    cfg: GPTConfig
    tied: bool  # out_head.weight is tok_emb.weight
    plan: Mapping[str, tuple[tuple[str, bool, int | None], ...]]


def state_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Our state dict's keys and shapes for ``cfg`` (weights [out, in]), without building a model."""
    C, V = cfg.emb_dim, cfg.vocab_size
    shapes = {"tok_emb.weight": (V, C), "pos_emb.weight": (cfg.context_length, C)}
    block = {"att.W_query.weight": (C, C), "att.W_key.weight": (C, C), "att.W_value.weight": (C, C)}
    if cfg.qkv_bias:
        block.update({"att.W_query.bias": (C,), "att.W_key.bias": (C,), "att.W_value.bias": (C,)})
    block.update({"att.out_proj.weight": (C, C), "att.out_proj.bias": (C,),
                  "ff.layers.0.weight": (4 * C, C), "ff.layers.0.bias": (4 * C,),
                  "ff.layers.2.weight": (C, 4 * C), "ff.layers.2.bias": (C,),
                  "norm1.scale": (C,), "norm1.shift": (C,), "norm2.scale": (C,), "norm2.shift": (C,)})
    for i in range(cfg.n_layers):
        shapes.update({f"trf_blocks.{i}.{key}": shape for key, shape in block.items()})
    shapes.update({"final_norm.scale": (C,), "final_norm.shift": (C,), "out_head.weight": (V, C)})
    return shapes


def config_from_gpt2(hf: Mapping[str, Any], config_file: Path | str) -> GPTConfig:
    """Our config from a Hugging Face GPT2Config dict; options we do not compute are errors naming the option."""
    def get(name: str, *fallbacks: str) -> Any:
        for key in (name, *fallbacks):
            if key in hf:
                return hf[key]
        raise ValueError(f"{config_file}: GPT-2 config has no {name!r}")

    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{config_file}: model_type must be 'gpt2', got {hf.get('model_type')!r}")
    _check_numbers(hf, config_file)
    if hf.get("activation_function", "gelu_new") not in GPT2_ACTIVATIONS:
        raise ValueError(f"{config_file}: activation_function must be one of {GPT2_ACTIVATIONS}, "
                         f"got {hf['activation_function']!r}")
    if not math.isclose(hf.get("layer_norm_epsilon", 1e-5), 1e-5, rel_tol=1e-6):
        raise ValueError(f"{config_file}: layer_norm_epsilon must be 1e-05 (our LayerNorm's), "
                         f"got {hf['layer_norm_epsilon']!r}")
    for option, value in GPT2_FIXED.items():
        if hf.get(option, value) != value:
            raise ValueError(f"{config_file}: {option}={hf[option]!r} is not supported (only {value!r})")
    emb_dim = get("n_embd")
    if hf.get("n_inner") not in (None, 4 * emb_dim):
        raise ValueError(f"{config_file}: n_inner must be null or 4 * n_embd = {4 * emb_dim}, got {hf['n_inner']!r}")
    try:
        return GPTConfig(vocab_size=get("vocab_size"), context_length=get("n_positions", "n_ctx"), emb_dim=emb_dim,
                         n_heads=get("n_head"), n_layers=get("n_layer"), drop_rate=hf.get("resid_pdrop", 0.1),
                         qkv_bias=True)
    except ValueError as err:
        raise ValueError(f"{config_file}: {err}") from None


def read_checkpoint(path: str | os.PathLike, dtypes: tuple[str, ...] = ("F16", "F32", "F64")) -> Checkpoint:
    """Find and check a checkpoint directory: config, and the file's keys, shapes and safetensors dtypes."""
    directory = Path(path)
    if not directory.is_dir():
        what = "is a file, not a directory" if directory.exists() else "does not exist"
        raise FileNotFoundError(f"checkpoint {directory} {what}; expected a directory with {CONFIG_FILE} "
                                f"and {WEIGHTS_FILE}")
    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint {directory} has no {file.name} ({file} not found)")
    kind, cfg, tied = _read_config(config_file)
    expected = _expected_tensors(kind, cfg, tied)  # file key (unprefixed) -> (shape, targets)
    header = _read_header(weights_file)
    prefix = "transformer." if kind == "gpt2" and "transformer.wte.weight" in header else ""
    expected = {prefix + key: value for key, value in expected.items()}
    _check_header(weights_file, header, expected, dtypes, ignored=GPT2_IGNORED if kind == "gpt2" else None)
    return Checkpoint(weights_file, kind, cfg, tied, {key: targets for key, (_, targets) in expected.items()})


def _read_config(config_file: Path) -> tuple[str, GPTConfig, bool]:
    """(kind, config, tied) from config.json: ours has "format", Hugging Face's has "model_type"."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} must hold a JSON object, got {type(config).__name__}")
    if "format" in config:
        return FORMAT, *_read_manifest(config, config_file)
    if "model_type" in config:
        return "gpt2", config_from_gpt2(config, config_file), True
    raise ValueError(f"{config_file} is neither a GPT-2 config (no 'model_type') nor ours (no 'format')")


def _read_manifest(config: dict, config_file: Path) -> tuple[GPTConfig, bool]:
    """Our config.json: format and version (an int, not true), the model config, tied_output_head (a real bool)."""
    version = config.get("format_version")
    if config["format"] != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(f"{config_file}: unknown format {config['format']!r} version "
                         f"{version!r}; expected {FORMAT!r} version {FORMAT_VERSION}")
    values = config.get("config", {})
    if not isinstance(values, dict):
        raise ValueError(f"{config_file}: bad config: must be a JSON object, got {values!r:.60}")
    try:
        cfg = GPTConfig.from_dict(values)
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{config_file}: bad config: {err}") from None
    tied = config.get("tied_output_head")
    if not isinstance(tied, bool):  # "no" is truthy: only JSON true or false says what the file holds
        raise ValueError(f"{config_file}: tied_output_head must be true or false, got {tied!r}")
    return cfg, tied


def _expected_tensors(kind: str, cfg: GPTConfig, tied: bool) -> dict[str, tuple[tuple[int, ...], tuple]]:
    """File key -> (its shape, the (our key, transpose, part) it becomes), from our shapes through the table."""
    shapes = state_shapes(cfg)
    if kind == FORMAT:
        expected = {key: (shape, ((key, False, None),)) for key, shape in shapes.items()}
        if tied:  # the head is the token embedding's array, stored once
            del expected["out_head.weight"]
            expected["tok_emb.weight"] = (shapes["tok_emb.weight"], (("tok_emb.weight", False, None),
                                                                     ("out_head.weight", False, None)))
        return expected
    rows = list(GPT2_KEYS) + [(f"trf_blocks.{i}.{ours}", f"h.{i}.{theirs}", transpose, part)
                              for i in range(cfg.n_layers) for ours, theirs, transpose, part in GPT2_BLOCK_KEYS]
    expected: dict[str, tuple[tuple[int, ...], tuple]] = {}
    for ours, theirs, transpose, part in rows:
        shape = shapes[ours][::-1] if transpose else shapes[ours]
        if part is not None:
            shape = (*shape[:-1], 3 * shape[-1])  # c_attn holds q, k, v side by side
        _, targets = expected.get(theirs, (shape, ()))
        expected[theirs] = (shape, (*targets, (ours, transpose, part)))
    return expected


def _read_header(weights_file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (shape, safetensors dtype) from the file's header; reads no tensor data."""
    try:
        with safe_open(weights_file, framework="numpy") as f:
            return {key: (tuple(f.get_slice(key).get_shape()), f.get_slice(key).get_dtype()) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights_file} is not a readable safetensors file: {err}") from None


def _check_header(weights_file, header, expected, dtypes, ignored) -> None:
    """Every expected key present with its shape and a float dtype; nothing else (bar ``ignored``) present."""
    missing = [key for key in expected if key not in header]
    if missing:
        raise ValueError(f"{weights_file} is missing {len(missing)} tensor(s): {missing[:5]}")
    unexpected = [key for key in header if key not in expected and not (ignored and ignored.fullmatch(key))]
    if unexpected:
        raise ValueError(f"{weights_file} has {len(unexpected)} unexpected tensor(s): {unexpected[:5]}")
    for key, (shape, _) in expected.items():
        got_shape, got_dtype = header[key]
        if got_shape != shape:
            raise ValueError(f"{weights_file}: tensor {key!r} has shape {got_shape}, expected {shape}")
        if got_dtype not in dtypes:
            raise ValueError(f"{weights_file}: tensor {key!r} has dtype {got_dtype}, expected one of {dtypes}")


def select(raw, transpose: bool, part: int | None):
    """The part of a file tensor (NumPy array or torch tensor) that is one of ours: a view, never a copy."""
    if part is not None:
        width = raw.shape[-1] // 3
        raw = raw[..., part * width : (part + 1) * width]  # the query, key or value third of c_attn
    return raw.T if transpose else raw  # Conv1D [in, out] -> [out, in]


def write_checkpoint(path: str | os.PathLike, cfg: GPTConfig, tensors: Mapping[str, np.ndarray], tied: bool) -> None:
    """Our format: ``tensors`` (our keys; out_head.weight left out when tied) and config.json, each written whole."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": cfg.to_dict(), "tied_output_head": tied}
    # Each file is written under a temporary name, fsynced and renamed, so a reader never sees half a file. The
    # names are fixed (not tmp_name's random ones), so what a killed save left is overwritten by the next save.
    partial = directory / f"{WEIGHTS_FILE}.partial"
    try:
        save_file(dict(tensors), partial, metadata={"format": FORMAT})
        fsync_file(partial)
        install(partial, directory / WEIGHTS_FILE)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    replace_durably(directory / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode("utf-8"),
                    directory / f"{CONFIG_FILE}.partial")


def check_dropout_source(seed: object, name: str, generator: object, kind: str, is_generator: bool) -> None:
    """A loaded model's dropout draws from the caller's generator (``name``, of type ``kind``) or from ``seed``:
    at most one of the two, each of the right type. Both loaders raise the same text."""
    check_seed("seed", seed)
    if generator is not None and not is_generator:
        raise ValueError(f"{name} must be a {kind} or None, got {type(generator).__name__}")
    if generator is not None and seed is not None:
        raise ValueError(f"pass {name} or seed, not both: dropout draws from one generator")
