"""The config: the book's dict works unchanged, presets are GPT-2's shapes, bad values are rejected."""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpy_gpt
import torch_gpt
from gpt_common.config import GPT_CONFIG_124M, NAMED_CONFIGS, PRESETS, GPTConfig, as_config, resolve_config
from tests.strategies import configs

BOOK_DICT = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def test_124m_preset_is_the_book_dict_key_for_key():
    assert GPT_CONFIG_124M == BOOK_DICT
    assert dict(GPT_CONFIG_124M) == BOOK_DICT
    assert {**GPT_CONFIG_124M} == BOOK_DICT
    assert GPT_CONFIG_124M["emb_dim"] == 768
    assert as_config(BOOK_DICT) == GPT_CONFIG_124M


@pytest.mark.parametrize(
    "name, emb_dim, n_layers, n_heads",
    [("gpt2", 768, 12, 12), ("gpt2-medium", 1024, 24, 16), ("gpt2-large", 1280, 36, 20), ("gpt2-xl", 1600, 48, 25)],
)
def test_presets_have_gpt2_shapes(name, emb_dim, n_layers, n_heads):
    cfg = PRESETS[name]
    assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads) == (emb_dim, n_layers, n_heads)
    assert (cfg.vocab_size, cfg.context_length) == (50257, 1024)


def test_torch_package_shares_the_same_config_objects():
    assert torch_gpt.GPT_CONFIG_124M is numpy_gpt.GPT_CONFIG_124M
    assert torch_gpt.GPTConfig is numpy_gpt.GPTConfig


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GPT_CONFIG_124M.emb_dim = 10
    with pytest.raises(TypeError):
        PRESETS["gpt2"] = None


def test_replace_validates_again():
    assert GPT_CONFIG_124M.replace(drop_rate=0.0).drop_rate == 0.0
    with pytest.raises(ValueError, match="n_heads"):
        GPT_CONFIG_124M.replace(n_heads=7)


def test_models_accept_the_plain_dict():
    small = {**BOOK_DICT, "vocab_size": 11, "context_length": 4, "emb_dim": 6, "n_heads": 2, "n_layers": 1}
    assert numpy_gpt.GPTModel(small, seed=0).cfg == small
    assert torch_gpt.GPTModel(small).cfg == small


@given(configs())
def test_round_trip_through_the_dict(cfg):
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.head_dim * cfg.n_heads == cfg.emb_dim


BAD_VALUES = [
    ({"unknown_key": 1}, "unknown config keys \\['unknown_key'\\]"),
    ({"emb_dim": 770}, "emb_dim=770, n_heads=12"),
    ({"n_layers": 0}, "n_layers must be an int >= 1, got 0"),
    ({"vocab_size": -5}, "vocab_size must be an int >= 1, got -5"),
    ({"context_length": 3.0}, "context_length must be an int >= 1, got 3.0"),
    ({"n_heads": True}, "n_heads must be an int >= 1, got True"),
    ({"emb_dim": np.float64(768)}, "emb_dim must be an int >= 1, got np.float64\\(768.0\\)"),
    ({"drop_rate": 1.0}, "drop_rate must be a number in \\[0, 1\\), got 1.0"),
    ({"drop_rate": -0.1}, "got -0.1"),
    ({"drop_rate": "0.1"}, "got '0.1'"),
    ({"qkv_bias": 1}, "qkv_bias must be a bool, got 1"),
]


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    cfg = as_config({**BOOK_DICT, "emb_dim": np.int64(768), "n_layers": np.int32(12), "drop_rate": np.float64(0.1)})
    assert cfg == GPT_CONFIG_124M
    assert type(cfg.emb_dim) is int and type(cfg.n_layers) is int and type(cfg.drop_rate) is float
    assert json.loads(json.dumps(cfg.to_dict())) == BOOK_DICT


def test_one_resolver_knows_every_name_and_reads_json(tmp_path):
    assert resolve_config("gpt2") is resolve_config("124M") is GPT_CONFIG_124M
    assert {resolve_config(name) for name in PRESETS} == set(PRESETS.values())
    assert resolve_config("small").emb_dim == 128 and resolve_config("tiny").vocab_size == 512
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**BOOK_DICT, "n_layers": 2}))
    assert resolve_config(str(path)) == {**BOOK_DICT, "n_layers": 2}
    assert resolve_config(BOOK_DICT) == GPT_CONFIG_124M
    names = ", ".join(NAMED_CONFIGS)
    with pytest.raises(ValueError, match=f"^--sizes must be one of {names} or a JSON file, got 'gpt3'$"):
        resolve_config("gpt3", "--sizes")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object of config keys, got list"):
        resolve_config(str(path), "--config")
    path.write_text("{")
    with pytest.raises(ValueError, match=f"^--config {path} is not valid JSON"):
        resolve_config(str(path), "--config")


@pytest.mark.parametrize("change, message", BAD_VALUES)
def test_invalid_configs_name_the_value(change, message):
    with pytest.raises(ValueError, match=message):
        as_config({**BOOK_DICT, **change})


def test_missing_keys_are_an_error():
    partial = {k: v for k, v in BOOK_DICT.items() if k != "n_layers"}
    with pytest.raises(ValueError, match="missing config keys \\['n_layers'\\]"):
        as_config(partial)


@pytest.mark.parametrize("module", [numpy_gpt, torch_gpt])
def test_both_packages_reject_invalid_configs_alike(module):
    with pytest.raises(ValueError, match="emb_dim must be divisible by n_heads"):
        module.GPTModel({**BOOK_DICT, "n_heads": 5})
    with pytest.raises(ValueError, match="config must be a GPTConfig or a dict, got list"):
        module.GPTModel([1, 2])


@st.composite
def uneven_heads(draw):
    """(d_out, num_heads) with num_heads >= 2 not dividing d_out: a multiple of num_heads plus 1 .. num_heads - 1."""
    num_heads = draw(st.integers(2, 6))
    return num_heads * draw(st.integers(0, 4)) + draw(st.integers(1, num_heads - 1)), num_heads


@given(uneven_heads())
def test_multi_head_attention_rejects_uneven_heads(pair):
    d_out, num_heads = pair
    assert d_out % num_heads != 0
    for module in (numpy_gpt, torch_gpt):
        with pytest.raises(ValueError, match=f"d_out={d_out}, num_heads={num_heads}"):
            module.MultiHeadAttention(4, d_out, 4, 0.0, num_heads)
