"""The bad-input matrix: every public entry point, each input run against BOTH packages.

A case is refused (the same exception type and the same message, exactly, in both packages) or accepted
(then its result equals the result of the same input given in the canonical dtype, and ids come back
int64: no silently wrong result). Either way no input is mutated. The rules are the README's "Bad input"
section, implemented once in ``gpt_common.validation``. Families:

- forward: id dtypes (every integer width and sign; float, bool, complex, object, str), id ranges,
  ranks and empty shapes; attention-mask dtypes (bool, integer, float), shapes and values; KV caches
  that do not fit the model (layers, heads, head width, dtype, batch, room); KVCache's own arguments.
- generate / generate_stream / generate_text_simple: the same id and mask families, NumPy scalars for
  every number, seeds, sizes past memory, overflow, and a new array returned even for 0 tokens.
- load_pretrained / save_pretrained: config.json value types (Hugging Face numbers, our manifest's booleans
  and version), float dtypes only, bf16 saved exactly, loaded weights owning their memory.
- tokenizers, train_bpe, save_ranks / load_ranks: custom special tokens, patterns, str-for-set arguments,
  lone surrogates, rank types.
- data: from_token_ids dtypes and ranges, seeds, empty drop_last loaders, NumPy-scalar sizes.
- CLIs (tokenize, generate, demo, read, python -m benchmarks): bad flags give one ``error: ...`` line and exit 2;
  a closed pipe and an ASCII-only terminal are handled quietly.

Budget: a few seconds for the in-process matrix; the CLI subprocesses add a few more.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from numpy_gpt import bpe as np_bpe
from numpy_gpt import data as np_data
from numpy_gpt import tokenizer as np_tok
from tests.twins import model_twins
from torch_gpt import bpe as torch_bpe
from torch_gpt import data as torch_data
from torch_gpt import tokenizer as torch_tok

REPO = Path(__file__).resolve().parents[1]
CFG = numpy_gpt.GPTConfig(vocab_size=300, context_length=12, emb_dim=8, n_heads=2, n_layers=2)
NP_MODEL, TORCH_MODEL = model_twins(CFG, np.float32, seed=3)
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_DTYPES = ["float16", "float32", "float64"]
IDS = np.array([[1, 2, 250, 3], [4, 5, 6, 7]])  # 250 does not fit int8; the uint8 prompt's new ids may not either
MASK = np.array([[0, 1, 1, 1], [1, 1, 1, 1]])  # left padding in row 0
MEMORY = re.compile(r".* needs [\d,.]+ GiB, more than this machine's [\d,.]+ GiB of memory")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: a second thread only waits on the first (and on a busy machine, for long)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclasses.dataclass(frozen=True)
class Twin:
    """One package: its model, modules, and how it spells a dtype and an array."""

    name: str
    pkg: Any
    model: Any
    data: Any
    tok: Any
    bpe: Any

    def dtype(self, name: str):
        return np.dtype(name) if self.name == "numpy" else getattr(torch, name)


NP = Twin("numpy", numpy_gpt, NP_MODEL, np_data, np_tok, np_bpe)
TO = Twin("torch", torch_gpt, TORCH_MODEL, torch_data, torch_tok, torch_bpe)


@dataclasses.dataclass
class Case:
    """``call(twin, env)`` with env = setup(): refused with ``error`` (str, or a regex), or equal to ``canonical``."""

    id: str
    call: Callable[[Twin, dict], Any]
    error: str | re.Pattern | None = None
    canonical: Callable[[Twin, dict], Any] | None = None
    setup: Callable[[], dict] = dict
    kind: type = ValueError


def as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [as_numpy(v) for v in value]
    return value


def assert_same(actual, expected) -> None:
    """Equal values, and equal dtypes for arrays (an int64 result must not come back int16)."""
    actual, expected = as_numpy(actual), as_numpy(expected)
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype, (actual, expected)
        np.testing.assert_array_equal(actual, expected)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    else:
        assert actual == expected


def snapshot(env: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in env.items() if isinstance(v, (np.ndarray, torch.Tensor, list, dict))}


def run_case(case: Case, twin: Twin, env: dict) -> str | None:
    """The case's message in ``twin`` (None when accepted), after checking it and that no input changed."""
    before = snapshot(env)
    if case.error is not None:
        with pytest.raises(case.kind) as info:
            case.call(twin, env)
        assert type(info.value) is case.kind
        message = str(info.value)
        if isinstance(case.error, re.Pattern):
            assert case.error.fullmatch(message), message
        else:
            assert message == (case.error.format(**env) if env else case.error), message
        outcome = message
    else:
        result = case.call(twin, env)
        if case.canonical is not None:
            assert_same(result, case.canonical(twin, env))
        outcome = None
    for key, value in before.items():
        assert_same(env[key], value)  # no input mutated
    return outcome


CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


# ------------------------------------------------------------------ forward: ids

def forward(ids, **kwargs):
    return lambda t, env: t.model(ids(t) if callable(ids) else ids, **kwargs)


def canonical_forward(t, env):
    return t.model(IDS)


for name in INT_DTYPES:
    ids = IDS.astype(name) if name not in ("int8",) else IDS.clip(0, 127).astype(name)
    expected = IDS if name != "int8" else IDS.clip(0, 127)
    add(Case(f"forward ids {name} array", forward(ids), canonical=lambda t, env, e=expected: t.model(e)))
    add(Case(f"forward ids {name} tensor/array", forward(lambda t, ids=ids: ids if t is NP else torch.from_numpy(ids)),
             canonical=lambda t, env, e=expected: t.model(e)))
add(Case("forward ids list", forward(IDS.tolist()), canonical=canonical_forward))
for name in [*FLOAT_DTYPES, "bool", "complex64"]:
    add(Case(f"forward ids {name}", forward(IDS.astype(name)), f"token ids must be integers, got dtype {name}"))
add(
    Case("forward ids None inside", forward([[1, None]]), "token ids must be integers, got dtype object"),
    Case("forward ids str", forward([["a", "b"]]), "token ids must be integers, got dtype <U1"),
    Case("forward ids 1-D", forward(np.array([1, 2])), "token ids must have shape (B, T), got shape (2,)"),
    Case("forward ids 0-D", forward(np.array(1)), "token ids must have shape (B, T), got shape ()"),
    Case("forward ids 3-D", forward(np.ones((1, 2, 2), int)), "token ids must have shape (B, T), got shape (1, 2, 2)"),
    Case("forward ids (1, 0)", forward(np.zeros((1, 0), int)), "token ids must be non-empty, got shape (1, 0)"),
    Case("forward ids (0, 2)", forward(np.zeros((0, 2), int)), "token ids must be non-empty, got shape (0, 2)"),
    Case("forward ids too long", forward(np.zeros((1, 13), int)), "sequence length 13 exceeds context_length 12"),
    Case("forward id = V", forward([[1, 300]]), "token ids must be in [0, 300), got min 1 and max 300"),
    Case("forward id -1", forward([[-1, 3]]), "token ids must be in [0, 300), got min -1 and max 3"),
    Case("forward int16 id -1", forward(np.array([[-1]], np.int16)),
         "token ids must be in [0, 300), got min -1 and max -1"),
    Case("forward uint64 2**64-1", forward(np.array([[2**64 - 1]], np.uint64)),
         f"token ids must be in [0, 300), got min {2**64 - 1} and max {2**64 - 1}"),
    Case("forward uint64 2**63", forward(np.array([[0, 2**63]], np.uint64)),
         f"token ids must be in [0, 300), got min 0 and max {2**63}"),
    Case("forward uint8 255 is a valid id", forward(np.array([[255]], np.uint8)),
         canonical=lambda t, env: t.model(np.array([[255]]))),
)

# ------------------------------------------------------------------ forward: masks

def masked(mask):
    return lambda t, env: t.model(IDS, attention_mask=mask(t) if callable(mask) else mask)


def canonical_masked(t, env):
    return t.model(IDS, attention_mask=MASK)


for name in ["bool", *INT_DTYPES, *FLOAT_DTYPES]:
    add(Case(f"forward mask {name}", masked(MASK.astype(name)), canonical=canonical_masked))
    add(Case(f"forward mask {name} tensor/array", masked(lambda t, n=name: MASK.astype(n) if t is NP
                                                          else torch.from_numpy(MASK.astype(n))),
             canonical=canonical_masked))
add(Case("forward mask list", masked(MASK.tolist()), canonical=canonical_masked))
SHAPE = "attention_mask must have shape (B, cached + new tokens) = (2, 4), got {}"
VALUES = "attention_mask must hold only 0 (padding) and 1 (token)"
MASK_DTYPE = "attention_mask must hold 0 and 1 as bool, integer or float, got dtype {}"
add(
    Case("forward mask 1-D", masked(np.ones(4)), SHAPE.format("(4,)")),
    Case("forward mask 0-D", masked(np.array(1)), SHAPE.format("()")),
    Case("forward mask (2, 0)", masked(np.ones((2, 0))), SHAPE.format("(2, 0)")),
    Case("forward mask (1, 4)", masked(np.ones((1, 4))), SHAPE.format("(1, 4)")),
    Case("forward mask 3-D", masked(np.ones((2, 4, 1))), SHAPE.format("(2, 4, 1)")),
    Case("forward mask None inside", masked([[1, None, 1, 1]] * 2), MASK_DTYPE.format("object")),
    Case("forward mask str", masked([["1"] * 4] * 2), MASK_DTYPE.format("<U1")),
    Case("forward mask complex", masked(MASK.astype(np.complex64)), MASK_DTYPE.format("complex64")),
    Case("forward mask 2", masked(MASK * 2), VALUES),
    Case("forward mask -1", masked(-MASK), VALUES),
    Case("forward mask 0.5", masked(MASK * 0.5), VALUES),
    Case("forward mask NaN", masked(np.where(MASK == 1, 1.0, np.nan)), VALUES),
)

# ------------------------------------------------------------------ forward: KV caches

def with_cache(cfg=None, batch=2, max_len=None, dtype="float32", ids=IDS):
    def call(t, env):
        cache = t.pkg.KVCache(dict(CFG, **(cfg or {})), batch, max_len, dtype=t.dtype(dtype))
        return t.model(ids, cache=cache)
    return call


def layout(layers=2, heads=2, width=4, dtype="float32"):
    return f"{layers} layers of {heads} heads x {width} ({dtype} on cpu)"


FITS = "the KV cache does not fit the model: it holds {}, the model needs " + layout()
add(
    Case("cache fits", with_cache(), canonical=canonical_forward),
    Case("cache of 1 layer", with_cache({"n_layers": 1}), FITS.format(layout(layers=1))),
    Case("cache of 3 layers", with_cache({"n_layers": 3}), FITS.format(layout(layers=3))),
    Case("cache of 4 heads", with_cache({"n_heads": 4}), FITS.format(layout(heads=4, width=2))),
    Case("cache of 1 head", with_cache({"n_heads": 1}), FITS.format(layout(heads=1, width=8))),
    Case("cache of width 16", with_cache({"emb_dim": 32}), FITS.format(layout(width=16))),
    Case("cache float64", with_cache(dtype="float64"), FITS.format(layout(dtype="float64"))),
    Case("cache float16", with_cache(dtype="float16"), FITS.format(layout(dtype="float16"))),
    Case("cache of 1 row", with_cache(batch=1), "the KV cache holds 1 rows, got a batch of 2"),
    Case("cache too short", with_cache(max_len=3), "the KV cache has room for 3 tokens, got 0 cached + 4 new"),
)


def kv_cache(*args, dtype="float32", **kwargs):
    return lambda t, env: t.pkg.KVCache(CFG, *args, dtype=t.dtype(dtype), **kwargs).max_len


for dtype in ["int8", "int64", "bool"]:
    add(Case(f"KVCache dtype {dtype}", kv_cache(1, dtype=dtype),
             f"KVCache dtype must be a floating-point dtype (e.g. float32), got {dtype}"))
for value, shown in [(0, "0"), (True, "True"), (1.5, "1.5"), ("2", "'2'"), (None, "None")]:
    add(Case(f"KVCache batch_size {shown}", kv_cache(value), f"batch_size must be an int >= 1, got {shown}"))
add(
    Case("KVCache max_len 0", kv_cache(1, 0), "max_len must be an int >= 1, got 0"),
    Case("KVCache np.int64 sizes", kv_cache(np.int64(2), np.int32(5)), canonical=lambda t, env: 5),
    Case("KVCache past memory", kv_cache(10**12), MEMORY),
)

# ------------------------------------------------------------------ generation

def gen(ids=IDS, n=4, stream=False, **kwargs):
    def call(t, env):
        prompt = ids(t) if callable(ids) else ids
        if stream:
            return [step for step in t.pkg.generate_stream(t.model, prompt, n, **kwargs)]
        return t.pkg.generate(t.model, prompt, n, **kwargs)
    return call


def canonical_gen(n=4, **kwargs):
    return lambda t, env: t.pkg.generate(t.model, IDS, n, **kwargs)


SAMPLE = {"temperature": 0.8, "rng": 5}
for name in INT_DTYPES[1:]:  # int8 cannot hold the prompt's 250
    add(Case(f"generate prompt {name}", gen(IDS.astype(name), 6), canonical=canonical_gen(6)))
    add(Case(f"generate prompt {name} tensor/array", gen(lambda t, n=name: IDS.astype(n) if t is NP
                                                         else torch.from_numpy(IDS.astype(n)), 6),
             canonical=canonical_gen(6)))
for name in ["bool", *INT_DTYPES, *FLOAT_DTYPES]:
    add(Case(f"generate mask {name}", gen(attention_mask=MASK.astype(name)),
             canonical=canonical_gen(attention_mask=MASK)))
add(
    Case("generate prompt list", gen(IDS.tolist()), canonical=canonical_gen()),
    Case("generate_stream prompt uint16", gen(IDS.astype(np.uint16), stream=True),
         canonical=lambda t, env: list(t.pkg.generate_stream(t.model, IDS, 4))),
    Case("generate prompt float", gen(IDS.astype(float)), "token ids must be integers, got dtype float64"),
    Case("generate prompt None inside", gen([[1, None]]), "token ids must be integers, got dtype object"),
    Case("generate prompt 1-D", gen(np.array([1, 2])), "token ids must have shape (B, T), got shape (2,)"),
    Case("generate prompt too long", gen(np.zeros((1, 13), int)),
         "the prompt has 13 tokens, more than context_length 12"),
    Case("generate prompt id V", gen([[300]]), "token ids must be in [0, 300), got min 300 and max 300"),
    Case("generate 0 new tokens", gen(IDS.astype(np.uint16), 0),
         canonical=lambda t, env: t.pkg.generate(t.model, IDS, 0)),
    Case("generate np.int64 max_new_tokens", gen(n=np.int64(3)), canonical=canonical_gen(3)),
    Case("generate temperature np.float32", gen(temperature=np.float32(0.8), rng=5),
         canonical=canonical_gen(temperature=float(np.float32(0.8)), rng=5)),
    Case("generate top_k np.int64", gen(top_k=np.int64(5), **SAMPLE), canonical=canonical_gen(top_k=5, **SAMPLE)),
    Case("generate top_p np.float32", gen(top_p=np.float32(0.5), **SAMPLE),
         canonical=canonical_gen(top_p=float(np.float32(0.5)), **SAMPLE)),
    Case("generate eos_id np.int64", gen(eos_id=np.int64(7), n=6), canonical=canonical_gen(eos_id=7, n=6)),
    Case("generate context_size np.int32", gen(context_size=np.int32(5), n=9, overflow="slide"),
         canonical=canonical_gen(context_size=5, n=9, overflow="slide")),
    Case("generate rng np.int64", gen(temperature=1.0, rng=np.int64(9)),
         canonical=canonical_gen(temperature=1.0, rng=9)),
    Case("generate rng 2**64 - 1", gen(temperature=1.0, rng=2**64 - 1),
         canonical=lambda t, env: t.pkg.generate(t.model, IDS, 4, temperature=1.0,
                                                 rng=np.random.default_rng(2**64 - 1))),
    Case("generate 10**12 tokens, stop", gen(n=10**12, overflow="stop"), canonical=canonical_gen(8)),
    Case("generate 10**12 tokens, slide", gen(n=10**12, overflow="slide"),
         re.compile(r"max_new_tokens=1000000000000 \(the \(B, T \+ n\) int64 token ids\)" + MEMORY.pattern[2:])),
    Case("generate_stream 10**12 tokens, slide", gen(n=10**12, overflow="slide", stream=True),
         re.compile(r"max_new_tokens=1000000000000 .*" + MEMORY.pattern[2:])),
)
for kwargs, message in [
    ({"n": -1}, "max_new_tokens must be an int >= 0, got -1"),
    ({"n": 1.5}, "max_new_tokens must be an int >= 0, got 1.5"),
    ({"n": True}, "max_new_tokens must be an int >= 0, got True"),
    ({"n": "3"}, "max_new_tokens must be an int >= 0, got '3'"),
    ({"temperature": -1.0}, "temperature must be a finite number >= 0 (0 means greedy), got -1.0"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0 (0 means greedy), got nan"),
    ({"temperature": np.float32("inf")},
     "temperature must be a finite number >= 0 (0 means greedy), got np.float32(inf)"),
    ({"temperature": "0.8"}, "temperature must be a finite number >= 0 (0 means greedy), got '0.8'"),
    ({"temperature": True}, "temperature must be a finite number >= 0 (0 means greedy), got True"),
    ({"top_k": 0}, "top_k must be None or an int >= 1, got 0"),
    ({"top_k": 2.0}, "top_k must be None or an int >= 1, got 2.0"),
    ({"top_k": np.bool_(True)}, "top_k must be None or an int >= 1, got np.True_"),
    ({"top_p": 0.0}, "top_p must be None or a number in (0, 1], got 0.0"),
    ({"top_p": 1.5}, "top_p must be None or a number in (0, 1], got 1.5"),
    ({"top_p": "0.9"}, "top_p must be None or a number in (0, 1], got '0.9'"),
    ({"eos_id": -1}, "eos_id must be None or an int in [0, 300), got -1"),
    ({"eos_id": 300}, "eos_id must be None or an int in [0, 300), got 300"),
    ({"eos_id": 1.0}, "eos_id must be None or an int in [0, 300), got 1.0"),
    ({"eos_id": True}, "eos_id must be None or an int in [0, 300), got True"),
    ({"overflow": "wrap"}, "overflow must be 'slide' or 'stop', got 'wrap'"),
    ({"context_size": 0}, "context_size must be an int >= 1, got 0"),
    ({"context_size": 2.5}, "context_size must be an int >= 1, got 2.5"),
    ({"rng": -1, "temperature": 1.0}, "rng must be None or an int in [0, 2**64), got -1"),
    ({"rng": 2**64, "temperature": 1.0}, f"rng must be None or an int in [0, 2**64), got {2**64}"),
    ({"rng": 1.5}, "rng must be None or an int in [0, 2**64), got 1.5"),
    ({"rng": "seed"}, "rng must be None or an int in [0, 2**64), got 'seed'"),
    ({"attention_mask": np.ones(4)}, "attention_mask must have the prompt's shape (2, 4), got (4,)"),
    ({"attention_mask": np.array(1)}, "attention_mask must have the prompt's shape (2, 4), got ()"),
    ({"attention_mask": np.ones((2, 0))}, "attention_mask must have the prompt's shape (2, 4), got (2, 0)"),
    ({"attention_mask": [[1, None, 1, 1]] * 2}, MASK_DTYPE.format("object")),
    ({"attention_mask": [["a"] * 4] * 2}, MASK_DTYPE.format("<U1")),
    ({"attention_mask": MASK * 0.5}, VALUES),
    ({"attention_mask": MASK[:, ::-1].copy()},
     "attention_mask must be left padding: each row 0s then 1s, ending in at least one 1"),
    ({"attention_mask": np.zeros((2, 4))},
     "attention_mask must be left padding: each row 0s then 1s, ending in at least one 1"),
]:
    label = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    add(Case(f"generate {label}", gen(**kwargs), message))
    add(Case(f"generate_stream {label}", gen(stream=True, **kwargs), message))


def simple(ids, n, context_size=12):
    return lambda t, env: t.pkg.generate_text_simple(t.model, ids(t, env) if callable(ids) else ids, n, context_size)


def fresh_result(t, env):
    """generate_text_simple(..., 0, ...) hands back a new array: writing to it leaves the prompt alone."""
    out = t.pkg.generate_text_simple(t.model, env["prompt"], 0, 12)
    out[0, 0] = 99
    return out


add(
    Case("generate_text_simple 0 tokens: a new array", fresh_result, setup=lambda: {"prompt": IDS.copy()},
         canonical=lambda t, env: np.where(np.arange(IDS.size).reshape(IDS.shape) == 0, 99, IDS)),
    Case("generate_text_simple 0 tokens (torch prompt)", lambda t, env: t.pkg.generate_text_simple(
        t.model, IDS if t is NP else torch.from_numpy(IDS), 0, 12), canonical=lambda t, env: IDS),
    Case("generate_text_simple -1", simple(IDS, -1), "max_new_tokens must be an int >= 0, got -1"),
    Case("generate_text_simple context_size 0", simple(IDS, 2, 0), "context_size must be an int >= 1, got 0"),
    Case("generate_text_simple float ids", simple(IDS.astype(float), 2),
         "token ids must be integers, got dtype float64"),
    Case("generate_text_simple past memory", simple(IDS, 10**12), re.compile(r"max_new_tokens=1000000000000 .*")),
    Case("generate_text_simple np.int64", simple(IDS, np.int64(3), np.int64(12)),
         canonical=lambda t, env: t.pkg.generate_text_simple(t.model, IDS, 3, 12)),
)
for name in INT_DTYPES[1:]:
    add(Case(f"generate_text_simple {name}", simple(IDS.astype(name), 6),
             canonical=lambda t, env: t.pkg.generate_text_simple(t.model, IDS, 6, 12)))


# ------------------------------------------------------------------ checkpoints

# Every case's files live under one directory, removed when the interpreter exits (TemporaryDirectory's
# finalizer), so the suite leaves no bad-input-* directories behind.
SCRATCH = tempfile.TemporaryDirectory(prefix="bad-input-")

@cache
def saved_weights() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="bad-input-ckpt-", dir=SCRATCH.name))
    numpy_gpt.save_pretrained(NP_MODEL, directory)
    return directory


def checkpoint(config: dict | Callable[[dict], dict]) -> Callable[[], dict]:
    """A fresh directory holding our weights and a config.json made from ours by ``config``."""
    def setup() -> dict:
        directory = Path(tempfile.mkdtemp(prefix="bad-input-", dir=SCRATCH.name))
        source = saved_weights()
        (directory / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
        ours = json.loads((source / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps(config(ours) if callable(config) else config))
        return {"dir": str(directory), "config": str(directory / "config.json")}
    return setup


def load(t, env, **kwargs):
    return [as_numpy(value) for value in t.pkg.load_pretrained(env["dir"], **kwargs).state_dict().values()]


def hf(**changes) -> dict:
    base = {"model_type": "gpt2", "vocab_size": 300, "n_positions": 12, "n_embd": 8, "n_head": 2, "n_layer": 2,
            "layer_norm_epsilon": 1e-5}
    return {k: v for k, v in {**base, **changes}.items() if v is not ...}


for key, value, kind in [("n_embd", None, "an integer"), ("n_embd", "8", "an integer"), ("n_embd", 8.0, "an integer"),
                         ("n_embd", True, "an integer"), ("vocab_size", None, "an integer"),
                         ("n_layer", "2", "an integer"), ("n_head", [2], "an integer"),
                         ("n_positions", None, "an integer"), ("n_inner", "32", "an integer"),
                         ("layer_norm_epsilon", "1e-5", "a number"), ("layer_norm_epsilon", None, "a number"),
                         ("resid_pdrop", "0.1", "a number"), ("resid_pdrop", False, "a number")]:
    add(Case(f"HF config {key}={value!r}", load, "{config}: " + f"{key} must be {kind}, got {value!r}",
             setup=checkpoint(hf(**{key: value}))))


def manifest(**changes):
    return lambda ours: {k: v for k, v in {**ours, **changes}.items() if v is not ...}


for value in ["no", 0, 1, None, ..., "true"]:
    shown = "None" if value is ... else repr(value)
    add(Case(f"manifest tied_output_head={shown}", load,
             "{config}: tied_output_head must be true or false, got " + shown, setup=checkpoint(manifest(
                 tied_output_head=value))))
for value in [True, "1", 1.0, None]:
    add(Case(f"manifest format_version={value!r}", load, "{config}: unknown format 'gpt-twins' version "
             f"{value!r}; expected 'gpt-twins' version 1", setup=checkpoint(manifest(format_version=value))))
add(
    Case("manifest config a list", load, "{config}: bad config: must be a JSON object, got [1, 2]",
         setup=checkpoint(manifest(config=[1, 2]))),
    Case("manifest as saved", load, setup=checkpoint(manifest()), canonical=lambda t, env: load(t, {
        "dir": str(saved_weights())})),
)
for name in ["int32", "int64", "bool", "uint8"]:
    add(Case(f"load_pretrained dtype {name}", lambda t, env, n=name: load(t, env, dtype=t.dtype(n)),
             f"dtype must be a floating-point dtype (e.g. float32), got {name}", setup=checkpoint(manifest())))
add(Case("GPTModel past memory", lambda t, env: t.pkg.GPTModel(CFG.replace(vocab_size=10**9, emb_dim=10**4, n_heads=1)),
         re.compile("GPTModel's weights" + MEMORY.pattern[2:])))


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.bool_, np.complex64])
def test_numpy_gpt_model_refuses_a_non_float_dtype(dtype):  # torch's GPTModel takes no dtype: .to() it
    with pytest.raises(ValueError, match=re.escape(f"dtype must be a floating-point dtype (e.g. float32), got "
                                                   f"{np.dtype(dtype)}")):
        numpy_gpt.GPTModel(CFG, dtype=dtype)


def test_torch_save_pretrained_of_bf16_is_exact_and_loads_in_both(tmp_path):
    bf16 = copy.deepcopy(TORCH_MODEL).to(torch.bfloat16)
    torch_gpt.save_pretrained(bf16, tmp_path)
    back = torch_gpt.load_pretrained(tmp_path, dtype=torch.bfloat16).state_dict()
    for key, value in bf16.state_dict().items():
        assert back[key].dtype == torch.bfloat16 and torch.equal(back[key], value)
        np.testing.assert_array_equal(numpy_gpt.load_pretrained(tmp_path).state_dict()[key], value.float().numpy())


@pytest.mark.parametrize("mmap", [False, True])
def test_torch_loaded_weights_own_their_memory_unless_mmap_is_asked_for(tmp_path, mmap):
    torch_gpt.save_pretrained(TORCH_MODEL, tmp_path)
    model = torch_gpt.load_pretrained(tmp_path, mmap=mmap)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = tmp_path / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:  # overwrite every tensor's bytes in place (the same file, the same pages)
        header = 8 + int.from_bytes(f.read(8), "little")
        f.seek(header)
        f.write(b"\0" * (size - header))
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert bool(changed) == mmap  # owned: untouched; mmap=True really shares the file's pages


# ------------------------------------------------------------------ tokenizers

def small_ranks() -> dict[bytes, int]:
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"abc": 257})
    return ranks


def bpe_tokenizer(special=None, pattern=None):
    def call(t, env):
        kwargs = {} if pattern is None else {"pattern": pattern}
        return t.tok.BPETokenizer(small_ranks(), special, **kwargs).n_vocab
    return call


def encode(text, special=None, **kwargs):
    def call(t, env):
        tok = t.tok.BPETokenizer(small_ranks(), special or {"<|endoftext|>": 258})
        return tok.encode(text, **kwargs)
    return call


add(
    Case("special token ''", bpe_tokenizer({"": 258}), "special tokens must be non-empty strs, got ''"),
    Case("special token 5", bpe_tokenizer({5: 258}), "special tokens must be non-empty strs, got 5"),
    Case("special tokens overlap", bpe_tokenizer({"<a>": 258, "<a>b": 259}),
         "special token '<a>' is a prefix of '<a>b'; special tokens must not be prefixes of one another"),
    Case("special ids bool", bpe_tokenizer({"<a>": True}), "special token ids must be ints, got [True]"),
    Case("special ids gap", bpe_tokenizer({"<a>": 259}),
         "special token ids must be 258..258 (right after the 258 ranks), got [259]"),
    Case("special tokens a list", bpe_tokenizer(["<a>"]), "special_tokens must be a dict {token: id}, got ['<a>']"),
    Case("special tokens that merely share characters", bpe_tokenizer({"<a>": 258, "b<a>": 259, "<b>": 260}),
         canonical=lambda t, env: 261),
    Case("pattern ''", bpe_tokenizer(pattern=""), "pattern must be a non-empty regular expression, got ''"),
    Case("pattern None", lambda t, env: t.tok.BPETokenizer(small_ranks(), pattern=None),
         "pattern must be a non-empty regular expression, got None"),
    Case("pattern matching ''", bpe_tokenizer(pattern="a*"),
         "pattern 'a*' matches the empty string, so it cannot cut text into pieces"),
    Case("pattern invalid", bpe_tokenizer(pattern="("),
         re.compile(r"pattern '\(' is not a valid regular expression: .*")),
    Case("disallowed_special as a str", encode("x<|endoftext|>", disallowed_special="<|endoftext|>"),
         "text contains the special token '<|endoftext|>', which is disallowed: pass "
         "allowed_special={'<|endoftext|>'} to encode it as one special token, or disallowed_special=() "
         "to encode it as ordinary text"),
    Case("allowed_special as a str", encode("ab<|endoftext|>c", allowed_special="<|endoftext|>"),
         canonical=lambda t, env: [256, 258, 99]),
    Case("lone surrogate", encode("ab\ud800c"), canonical=lambda t, env: encode("ab\ufffdc")(t, env)),
    Case("surrogate pair", encode("\ud83d\ude00"), canonical=lambda t, env: encode("\U0001f600")(t, env)),
    Case("encode bytes", encode(b"ab"), "text must be a str, got bytes: b'ab'"),
    Case("encode None", encode(None), "text must be a str, got NoneType: None"),
    Case("decode np.int64 ids", lambda t, env: t.tok.BPETokenizer(small_ranks()).decode(np.array([97, 256])),
         canonical=lambda t, env: "aab"),
    Case("decode id V", lambda t, env: t.tok.BPETokenizer(small_ranks()).decode([259]),
         "token id 259 is outside the vocabulary [0, 259) (1 such ids)"),
    Case("decode float ids", lambda t, env: t.tok.BPETokenizer(small_ranks()).decode([1.0]),
         "token ids must be a sequence of ints, got [1.0]"),
)


VOCAB = "vocab_size must be an int >= 256 (one token per byte), got {}"


def train(text="abab abc abc", **kwargs):
    return lambda t, env: t.bpe.train_bpe(text, **{"vocab_size": 260, **kwargs})


add(
    Case("train_bpe lone surrogate", train("ab\ud800ab \ud800"), canonical=lambda t, env: t.bpe.train_bpe(
        "ab\ufffdab \ufffd", 260)),
    Case("train_bpe special str", train("ab<|endoftext|>ab", special_tokens="<|endoftext|>"),
         canonical=lambda t, env: t.bpe.train_bpe("ab<|endoftext|>ab", 260, special_tokens=("<|endoftext|>",))),
    Case("train_bpe special ''", train(special_tokens=("",)), "special tokens must be non-empty strs, got ''"),
    Case("train_bpe pattern ''", train(pattern=""), "pattern must be a non-empty regular expression, got ''"),
    Case("train_bpe vocab 255", train(vocab_size=255), VOCAB.format(255)),
    Case("train_bpe vocab True", train(vocab_size=True), VOCAB.format(True)),
    Case("train_bpe vocab np.int64", train(vocab_size=np.int64(258)), canonical=lambda t, env: t.bpe.train_bpe(
        "abab abc abc", 258)),
    Case("train_bpe text bytes", train(b"ab"), "text must be a str, got bytes: b'ab'"),
)


def save_ranks(change):
    def call(t, env):
        ranks = change(small_ranks())
        return t.bpe.save_ranks(ranks, Path(tempfile.mkdtemp(dir=SCRATCH.name)) / "r.tiktoken")
    return call


add(
    Case("save_ranks bool rank", save_ranks(lambda r: {**{k: v for k, v in r.items() if v != 1}, b"\x01": True}),
         "ranks: each token must be non-empty bytes with an int rank, got b'\\x01' -> True"),
    Case("save_ranks str token", save_ranks(lambda r: {**r, "x": 258}),
         "ranks: each token must be non-empty bytes with an int rank, got 'x' -> 258"),
    Case("save_ranks empty token", save_ranks(lambda r: {**r, b"": 258}),
         "ranks: each token must be non-empty bytes with an int rank, got b'' -> 258"),
    Case("save_ranks then load_ranks", lambda t, env: t.tok.BPETokenizer.from_ranks_file(
        save_ranks_file()).encode("abc"), canonical=lambda t, env: [257]),
)


@cache
def save_ranks_file() -> Path:
    path = Path(tempfile.mkdtemp(dir=SCRATCH.name)) / "r.tiktoken"
    np_bpe.save_ranks(small_ranks(), path)
    return path


# ------------------------------------------------------------------ data

def windows(ids, max_length=2, stride=1):
    return lambda t, env: [pair for pair in t.data.GPTDatasetV1.from_token_ids(ids, max_length, stride)]


TOKENS = np.arange(10)
for name in INT_DTYPES:
    add(Case(f"from_token_ids {name}", windows(TOKENS.astype(name)), canonical=lambda t, env: windows(TOKENS)(t, env)))
add(
    Case("from_token_ids uint64 2**64-1", windows(np.array([0, 1, 2**64 - 1], np.uint64)),
         f"token ids must be in [0, 2**63), got min 0 and max {2**64 - 1}"),
    Case("from_token_ids -1", windows([0, -1, 2]), "token ids must be in [0, 2**63), got min -1 and max 2"),
    Case("from_token_ids float", windows(TOKENS.astype(float)), "token ids must be integers, got dtype float64"),
    Case("from_token_ids 2-D", windows(np.ones((2, 5), int)), "token ids must be 1-D, got shape (2, 5)"),
    Case("from_token_ids max_length 0", windows(TOKENS, 0), "max_length must be an int >= 1, got 0"),
    Case("from_token_ids stride True", windows(TOKENS, 2, True), "stride must be an int >= 1, got True"),
    Case("from_token_ids np.int64 sizes", windows(TOKENS, np.int64(2), np.int64(3)),
         canonical=lambda t, env: windows(TOKENS, 2, 3)(t, env)),
)
TEXT = "In the sunlit terraces of the city, the painter worked all day."  # 15 GPT-2 tokens


def loader(**kwargs):
    def call(t, env):
        tok = t.tok.BPETokenizer(small_ranks())
        return [batch for batch in t.data.create_dataloader_v1(TEXT, tokenizer=tok, **{
            "batch_size": 2, "max_length": 4, "stride": 4, "shuffle": False, **kwargs})]
    return call


add(
    Case("loader empty with drop_last", loader(batch_size=64),
         "batch_size 64 with drop_last=True gives no batches: the text has only 15 window(s) of max_length tokens; "
         "lower batch_size or pass drop_last=False"),
    Case("loader batch_size np.int64", loader(batch_size=np.int64(2)), canonical=lambda t, env: loader()(t, env)),
    Case("loader batch_size 0", loader(batch_size=0), "batch_size must be an int >= 1, got 0"),
    Case("loader seed -1", loader(seed=-1), "seed must be None or an int in [0, 2**64), got -1"),
    Case("loader seed 2**64", loader(seed=2**64), f"seed must be None or an int in [0, 2**64), got {2**64}"),
    Case("loader seed 1.0", loader(seed=1.0), "seed must be None or an int in [0, 2**64), got 1.0"),
    Case("loader seed np.int64", loader(seed=np.int64(4), shuffle=True),
         canonical=lambda t, env: loader(seed=4, shuffle=True)(t, env)),
    Case("loader seed 2**64 - 1", loader(seed=2**64 - 1, shuffle=True),
         canonical=lambda t, env: loader(seed=2**64 - 1, shuffle=True)(t, env)),
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_matrix(case):
    """The same outcome in both packages: the same message, or a result equal to the canonical input's."""
    env = case.setup()  # one set of files for both packages, so their messages can be compared whole
    outcomes = [run_case(case, twin, env) for twin in (NP, TO)]
    assert outcomes[0] == outcomes[1]


def test_the_matrix_is_several_hundred_cases():
    assert len(CASES) >= 300, len(CASES)


# ------------------------------------------------------------------ hypothesis: dtype and shape families

@settings(max_examples=10)
@given(st.sampled_from(INT_DTYPES), st.integers(1, 3), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_any_integer_dtype_gives_the_int64_logits(dtype, batch, seq_len, seed):
    high = min(CFG.vocab_size, np.iinfo(dtype).max + 1)
    ids = np.random.default_rng(seed).integers(0, high, (batch, seq_len))
    for twin in (NP, TO):
        assert_same(twin.model(ids.astype(dtype)), twin.model(ids))


@given(st.lists(st.integers(0, 3), min_size=0, max_size=4), st.sampled_from(["int64", "float32", "bool"]))
def test_ids_of_any_other_rank_or_an_empty_shape_get_one_message(shape, dtype):
    ids = np.zeros(shape, dtype=dtype)
    if len(shape) == 2 and 0 < shape[1] <= 12 and shape[0] > 0 and dtype == "int64":
        return  # a valid input
    messages = []
    for twin in (NP, TO):
        with pytest.raises(ValueError) as info:
            twin.model(ids)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and messages[0].startswith("token ids must")


# ------------------------------------------------------------------ CLIs

def cli(*argv, env=None, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, input=stdin)


CLI_CASES = [
    (["tokenize", "x", "--file", "y"], "error: give either a text or --file, not both and not neither"),
    (["tokenize", "--file", "/nonexistent.txt"], "error: [Errno 2] No such file or directory: '/nonexistent.txt'"),
    (["tokenize", "--file", "{latin1}"], re.compile(r"error: --file .* is not UTF-8 text: .*")),
    (["generate", "--max-new-tokens", "-1"], "error: --max-new-tokens must be >= 0, got -1"),
    (["generate", "--seed", "-1"], "error: --seed must be None or an int in [0, 2**64), got -1"),
    (["generate", "--stop-id", "-5"], "error: --stop-id must be a token id >= 0, got -5"),
    (["generate", "--top-p", "2"], "error: top_p must be None or a number in (0, 1], got 2.0"),
    (["generate", "--config", "bogus"],
     "error: --config must be one of ['gpt2', 'gpt2-large', 'gpt2-medium', 'gpt2-xl'] or a JSON file, got 'bogus'"),
    (["generate", "--config", "{huge}"], re.compile("error: GPTModel's weights" + MEMORY.pattern[2:])),
    (["generate", "--weights", "{null_config}"],
     "error: {null_config}/config.json: n_embd must be an integer, got None"),
    (["generate", "--config", "{tiny}", "--max-new-tokens", "1000000000000", "--overflow", "slide"],
     re.compile(r"error: max_new_tokens=1000000000000 .*")),
    (["demo", "--seq-len", "0"], "error: --seq-len must be in [1, 1024] (the model's context_length), got 0"),
    (["demo", "--max-new-tokens", "-1"], "error: --max-new-tokens must be in [0, 1024], got -1"),
    (["demo", "--seed", "-1"], "error: --seed must be None or an int in [0, 2**64), got -1"),
    (["read", "--root", "/nonexistent", "--no-proofs"],
     "error: --root /nonexistent must be a checkout holding numpy_gpt/ and torch_gpt/"),
    (["read", "--out", "{latin1}", "--no-proofs"], "error: --out {latin1} exists and is not a folder"),
]
BENCH_CASES = [
    (["--sizes", "bogus"], "error: --sizes 'bogus' is unknown; choose from "
     "124M,355M,774M,1558M,tiny,gpt2,gpt2-medium,gpt2-large,gpt2-xl"),
    (["--workloads", "bogus"], re.compile(r"error: --workloads 'bogus' is unknown; choose from components,.*")),
    (["--seq-lens", "5000"], "error: --seq-lens 5000 is outside [1, 1024], the context of 124M"),
    (["--seq-lens", "0", "--quick"], "error: --seq-lens 0 is outside [1, 64], the context of tiny"),
    (["--batch", "0"], "error: --batch must be >= 1, got 0"),
    (["--new-tokens", "0"], "error: --new-tokens must be >= 1, got 0"),
    (["--device", "tpu"], "error: --device 'tpu' is unknown; choose from cpu,cuda"),
    (["--impl", "jax"], "error: --impl 'jax' is unknown; choose from numpy,torch"),
    (["--compare", "/nonexistent.json"], re.compile(r"error: --compare /nonexistent.json is not a readable .*")),
    (["--batch", "1000000"], re.compile(r"error: --batch 1000000 at T=1024 on 124M" + MEMORY.pattern[2:])),
]


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cli")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "huge.json").write_text(json.dumps({**CFG.to_dict(), "vocab_size": 10**9, "emb_dim": 10**4, "n_heads": 1}))
    (root / "tiny.json").write_text(json.dumps({**CFG.to_dict(), "vocab_size": 50257}))  # GPT-2 ids, 8 wide
    null = root / "null"
    null.mkdir()
    (null / "config.json").write_text(json.dumps(hf(n_embd=None)))
    (null / "model.safetensors").write_bytes((saved_weights() / "model.safetensors").read_bytes())
    return {"latin1": str(root / "latin1.txt"), "huge": str(root / "huge.json"), "tiny": str(root / "tiny.json"),
            "null_config": str(null)}


def run_in_one_process(module: str, cases, files: dict) -> list[dict]:
    """Every case's (exit status, stdout, stderr) from ONE interpreter (torch is imported once, not per case)."""
    script = (
        "import contextlib, io, json, sys\n"
        f"from {module} import main\n"
        "results = []\n"
        "for argv in json.loads(sys.stdin.read()):\n"
        "    out, err = io.StringIO(), io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "        try:\n"
        "            code = main(argv)\n"
        "        except SystemExit as exit:\n"
        "            code = exit.code\n"
        "    results.append({'code': code, 'out': out.getvalue(), 'err': err.getvalue()})\n"
        "print(json.dumps(results))\n"
    )
    argvs = [[arg.format(**files) for arg in argv] for argv, _ in cases]
    done = cli("-c", script, stdin=json.dumps(argvs))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module, cases", [("gpt_cli.__main__", CLI_CASES), ("benchmarks.__main__", BENCH_CASES)])
def test_cli_user_errors_are_one_line_and_exit_2(module, cases, cli_files):
    for (argv, expected), result in zip(cases, run_in_one_process(module, cases, cli_files)):
        lines = result["err"].strip().splitlines()  # a NOTE may come first; the error is the last line
        assert result["code"] == 2 and lines and "Traceback" not in result["err"], (argv, result)
        assert result["out"] == "" and all(line.startswith("NOTE") for line in lines[:-1]), (argv, result)
        if isinstance(expected, re.Pattern):
            assert expected.fullmatch(lines[-1]), (argv, lines[-1])
        else:
            assert lines[-1] == expected.format(**cli_files), (argv, lines[-1])


def test_cli_closed_pipe_and_an_ascii_terminal_are_quiet(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("café naïve " * 2000, encoding="utf-8")
    command = [sys.executable, "-m", "gpt_cli", "tokenize", "--file", str(text), "--tokenizer", "bpe", "--show-tokens"]
    reader = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = reader.stdout.readline()
    reader.stdout.close()  # `| head -1`
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 0 and err == "" and first.startswith(b"66\t"), (first, err)
    ascii_run = cli("-m", "gpt_cli", "tokenize", "café", "--tokenizer", "bpe", "--show-tokens",
                    env={"PYTHONIOENCODING": "ascii"})
    assert ascii_run.returncode == 0 and ascii_run.stderr == "", ascii_run.stderr
    assert ascii_run.stdout.splitlines() == ["66\t'c'", "1878\t'af'", "2634\t'\\xe9'"]


@pytest.mark.cuda
def test_on_cuda_a_cache_on_the_cpu_is_refused_and_narrow_ids_still_work():
    model = copy.deepcopy(TORCH_MODEL).cuda()
    needs = layout().replace("on cpu", "on cuda:0")
    with pytest.raises(ValueError, match=re.escape(f"it holds {layout()}, the model needs {needs}")):
        model(IDS, cache=torch_gpt.KVCache(CFG, 2))
    assert_same(model(torch.from_numpy(IDS.astype(np.int16)).cuda()), model(IDS))
