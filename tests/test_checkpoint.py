"""Checkpoints: tiny random Hugging Face GPT-2s load into both packages and match ``transformers`` (logits and
greedy tokens); our own format round-trips between the packages; every kind of bad checkpoint is a clear
error raised before anything is built or read."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file
from transformers import GPT2Config, GPT2LMHeadModel

import numpy_gpt
import torch_gpt
from gpt_common import tolerances as tol
from gpt_common.tolerances import assert_matches_reference
from numpy_gpt import checkpoint as np_checkpoint
from tests.strategies import configs, seeds
from tests.twins import copy_weights, randomise, run_torch
from torch_gpt import checkpoint as torch_checkpoint

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


@st.composite
def gpt2_configs(draw):
    """Tiny GPT2Configs, odd head widths included."""
    n_head = draw(st.integers(1, 3))
    return GPT2Config(
        vocab_size=draw(st.integers(5, 40)), n_positions=draw(st.integers(4, 12)),
        n_embd=n_head * draw(st.integers(1, 5)), n_layer=draw(st.integers(1, 2)), n_head=n_head,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )


def random_gpt2(config: GPT2Config, seed: int) -> GPT2LMHeadModel:
    """A GPT2LMHeadModel with weights large enough that its tokens differ (the default init is near zero)."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0, 0.3)
    return model


def hf_logits(model, ids, mask=None):
    with torch.no_grad():
        mask = None if mask is None else torch.from_numpy(mask)
        return model(torch.from_numpy(ids), attention_mask=mask).logits.numpy()


@settings(max_examples=20)
@given(gpt2_configs(), seeds, st.data())
def test_hugging_face_gpt2_loads_into_both_packages_with_its_logits(config, seed, data):
    hf = random_gpt2(config, seed)
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, (2, data.draw(st.integers(1, config.n_positions))))
    with tempfile.TemporaryDirectory() as path:
        hf.save_pretrained(path)
        np32, np64 = numpy_gpt.load_pretrained(path), numpy_gpt.load_pretrained(path, dtype=np.float64)
        t32, t64 = torch_gpt.load_pretrained(path), torch_gpt.load_pretrained(path, dtype=torch.float64)
    assert np32.cfg == t32.cfg == {"vocab_size": config.vocab_size, "context_length": config.n_positions,
                                   "emb_dim": config.n_embd, "n_heads": config.n_head, "n_layers": config.n_layer,
                                   "drop_rate": 0.1, "qkv_bias": True}
    assert not np32.training and not t32.training
    # Hugging Face's float32 and float64 logits are one more implementation of the same budget.
    expected32 = hf_logits(hf, ids)
    assert_matches_reference(tol.model_budget(np32, ids), np.float32, np32(ids), run_torch(t32, ids), expected32)
    expected64 = hf_logits(hf.double(), ids)
    assert_matches_reference(tol.model_budget(np64, ids), np.float64, np64(ids), run_torch(t64, ids), expected64)


@settings(max_examples=20)
@given(gpt2_configs(), seeds, st.data())
def test_greedy_tokens_equal_hugging_face_generate(config, seed, data):
    hf = random_gpt2(config, seed).double()
    prompt_len = data.draw(st.integers(1, config.n_positions - 1))
    max_new_tokens = config.n_positions - prompt_len  # HF's positions end at n_positions
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, (1, prompt_len))
    with tempfile.TemporaryDirectory() as path:
        hf.save_pretrained(path)
        np_model = numpy_gpt.load_pretrained(path, dtype=np.float64)
        torch_model = torch_gpt.load_pretrained(path, dtype=torch.float64)
    with torch.no_grad():
        expected = hf.generate(torch.from_numpy(ids), attention_mask=torch.ones_like(torch.from_numpy(ids)),
                               max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0).numpy()
    np.testing.assert_array_equal(numpy_gpt.generate(np_model, ids, max_new_tokens), expected)
    torch_out = torch_gpt.generate(torch_model, torch.from_numpy(ids), max_new_tokens)
    np.testing.assert_array_equal(torch_out.numpy(), expected)


def test_left_padded_batches_and_end_ids_match_hugging_face_generate(tmp_path):
    config = GPT2Config(vocab_size=23, n_positions=12, n_embd=10, n_layer=2, n_head=2, bos_token_id=None,
                        eos_token_id=None, pad_token_id=None)
    hf = random_gpt2(config, 7).double()
    hf.save_pretrained(tmp_path)
    model = numpy_gpt.load_pretrained(tmp_path, dtype=np.float64)
    ids = np.array([[0, 0, 0, 5, 6], [1, 2, 3, 4, 5], [0, 9, 8, 7, 6]])
    mask = np.array([[0, 0, 0, 1, 1], [1] * 5, [0, 1, 1, 1, 1]])
    with torch.no_grad():
        expected = hf.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=7,
                               do_sample=False, pad_token_id=0).numpy()
    np.testing.assert_array_equal(numpy_gpt.generate(model, ids, 7, attention_mask=mask), expected)
    eos_id = int(expected[1, 7])  # row 1's third new token: HF pads a finished row with pad_token_id
    with torch.no_grad():
        expected = hf.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=7,
                               do_sample=False, pad_token_id=eos_id, eos_token_id=eos_id).numpy()
    np.testing.assert_array_equal(numpy_gpt.generate(model, ids, 7, attention_mask=mask, eos_id=eos_id), expected)


def rewrite(path: Path, change) -> None:
    """Apply ``change`` to the file's {key: array} and write it back (safetensors, never pickle)."""
    with safe_open(path / "model.safetensors", framework="numpy") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    save_file(change(tensors), path / "model.safetensors")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    random_gpt2(GPT2Config(vocab_size=17, n_positions=8, n_embd=6, n_layer=2, n_head=2), 0).save_pretrained(path)
    return path


def copy_of(source: Path, target: Path) -> Path:
    target.mkdir(exist_ok=True)
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def test_keys_without_the_transformer_prefix_and_with_mask_buffers_and_lm_head_load_the_same(gpt2_dir, tmp_path):
    path = copy_of(gpt2_dir, tmp_path / "original-layout")

    def original_layout(tensors):  # as in the hub's gpt2 file: no prefix, causal-mask buffers, maybe lm_head
        renamed = {key.removeprefix("transformer."): value for key, value in tensors.items()}
        renamed.update({f"h.{i}.attn.bias": np.tril(np.ones((1, 1, 8, 8), np.float32)) for i in range(2)})
        return {**renamed, "lm_head.weight": renamed["wte.weight"].copy()}

    rewrite(path, original_layout)
    ids = np.array([[1, 2, 3, 4]])
    original = numpy_gpt.load_pretrained(gpt2_dir)
    np.testing.assert_array_equal(numpy_gpt.load_pretrained(path)(ids), original(ids))  # the same weights, bit for bit
    torch_logits = run_torch(torch_gpt.load_pretrained(path), ids)
    assert_matches_reference(tol.model_budget(original, ids), np.float32, torch_logits)


def test_loading_ties_the_head_and_splits_c_attn_into_views_not_copies(gpt2_dir):
    np_model, torch_model = numpy_gpt.load_pretrained(gpt2_dir), torch_gpt.load_pretrained(gpt2_dir)
    assert np_model.out_head.weight is np_model.tok_emb.weight
    assert torch_model.out_head.weight is torch_model.tok_emb.weight
    assert numpy_gpt.count_parameters(np_model) == torch_gpt.count_parameters(torch_model)
    att = np_model.trf_blocks[0].att
    assert att.W_query.weight.base is att.W_key.weight.base is att.W_value.weight.base  # one c_attn array
    att = torch_model.trf_blocks[0].att
    storage = att.W_query.weight.untyped_storage().data_ptr()
    assert att.W_key.weight.untyped_storage().data_ptr() == storage == att.W_value.weight.untyped_storage().data_ptr()
    with safe_open(gpt2_dir / "model.safetensors", framework="numpy") as f:
        c_attn = f.get_tensor("transformer.h.0.attn.c_attn.weight")  # [C, 3C], Conv1D's [in, out]
    np.testing.assert_array_equal(np_model.trf_blocks[0].att.W_value.weight, c_attn[:, 12:].T)
    np.testing.assert_array_equal(att.W_value.weight.detach().numpy(), c_attn[:, 12:].T)
    np_model.to(np.float64)  # a cast keeps the head tied in both packages
    torch_model.to(torch.float64)
    assert np_model.out_head.weight is np_model.tok_emb.weight and np_model.tok_emb.weight.dtype == np.float64
    assert torch_model.out_head.weight is torch_model.tok_emb.weight


def dropout_logits(model, ids, package):
    """Two training-mode forwards in a row (each draws fresh masks), as one array."""
    model.train()
    if package == "numpy":
        return np.stack([model(ids), model(ids)])
    return np.stack([run_torch(model, ids), run_torch(model, ids)])


@pytest.mark.parametrize("package", ["numpy", "torch"])
def test_a_loaded_models_dropout_draws_from_the_callers_generator_or_seed(package, gpt2_dir, tmp_path):
    path = tmp_path / "dropout"
    torch_gpt.save_pretrained(torch_gpt.GPTModel({**torch_gpt.load_pretrained(gpt2_dir).cfg.to_dict(),
                                                  "drop_rate": 0.5}), path)
    ids = np.array([[1, 2, 3, 4]])
    load, make = ((numpy_gpt.load_pretrained, lambda: {"rng": np.random.default_rng(7)}) if package == "numpy"
                  else (torch_gpt.load_pretrained, lambda: {"generator": torch.Generator().manual_seed(7)}))
    by_seed = dropout_logits(load(path, seed=7), ids, package)
    np.testing.assert_array_equal(dropout_logits(load(path, seed=7), ids, package), by_seed)  # a seed repeats
    by_generator = dropout_logits(load(path, **make()), ids, package)
    np.testing.assert_array_equal(dropout_logits(load(path, **make()), ids, package), by_generator)
    np.testing.assert_array_equal(by_generator, by_seed)  # seed=7 means a generator seeded with 7
    assert not np.array_equal(by_seed[0], by_seed[1])  # the masks move on from call to call
    assert not np.array_equal(dropout_logits(load(path, seed=8), ids, package), by_seed)


@pytest.mark.parametrize("package, name", [("numpy", "rng"), ("torch", "generator")])
def test_a_dropout_source_of_the_wrong_kind_or_two_of_them_are_errors(package, name, gpt2_dir):
    load = numpy_gpt.load_pretrained if package == "numpy" else torch_gpt.load_pretrained
    generator = np.random.default_rng(0) if package == "numpy" else torch.Generator()
    with pytest.raises(ValueError, match=rf"^pass {name} or seed, not both: dropout draws from one generator$"):
        load(gpt2_dir, seed=1, **{name: generator})
    with pytest.raises(ValueError, match=rf"^{name} must be a .*Generator or None, got int$"):
        load(gpt2_dir, **{name: 3})
    with pytest.raises(ValueError, match=r"^seed must be None or an int in \[0, 2\*\*64\), got -1$"):
        load(gpt2_dir, seed=-1)


def test_loading_builds_placeholders_then_assigns_the_files_arrays(gpt2_dir):
    """``init=False`` parameters take no memory and cannot be trained by mistake; ``assign=True`` keeps arrays."""
    cfg = numpy_gpt.load_pretrained(gpt2_dir).cfg
    empty = numpy_gpt.GPTModel(cfg, init=False)
    placeholders = [p for key, p in empty.named_parameters() if "norm" not in key]  # LayerNorm's are 1s and 0s
    assert len(placeholders) > len(cfg.to_dict())
    assert all(not p.flags.writeable and p.strides == (0,) * p.ndim for p in placeholders)
    state = {key: np.full(value.shape, 0.5, np.float32) for key, value in empty.state_dict().items()}
    empty.load_state_dict(state, assign=True)
    assert all(empty.state_dict()[key] is value for key, value in state.items())


@given(configs(), seeds)
def test_state_shapes_are_the_models_state_dict_shapes(cfg, seed):
    expected = {key: value.shape for key, value in numpy_gpt.GPTModel(cfg, seed=seed).state_dict().items()}
    assert np_checkpoint.state_shapes(cfg) == expected
    assert {key: tuple(v.shape) for key, v in torch_gpt.GPTModel(cfg).state_dict().items()} == expected


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("writer", ["numpy", "torch"])
def test_our_format_round_trips_between_the_packages(writer, tie, tmp_path):
    cfg = numpy_gpt.GPTConfig(vocab_size=13, context_length=6, emb_dim=6, n_heads=3, n_layers=2, qkv_bias=True)
    np_model = numpy_gpt.GPTModel(cfg, seed=1, dtype=np.float64)
    randomise(np_model, 2)
    if tie:
        np_model.out_head.weight = np_model.tok_emb.weight
    torch_model = copy_weights(np_model, torch_gpt.GPTModel(cfg))
    if tie:
        torch_model.out_head.weight = torch_model.tok_emb.weight
    if writer == "numpy":
        numpy_gpt.save_pretrained(np_model, tmp_path)
    else:
        torch_gpt.save_pretrained(torch_model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]  # no partial files
    with safe_open(tmp_path / "model.safetensors", framework="numpy") as f:
        assert ("out_head.weight" in f.keys()) is not tie
    np_loaded = numpy_gpt.load_pretrained(tmp_path, dtype=np.float64)
    torch_loaded = torch_gpt.load_pretrained(tmp_path, dtype=torch.float64)
    assert np_loaded.cfg == cfg and torch_loaded.cfg == cfg
    for key, value in np_model.state_dict().items():
        np.testing.assert_array_equal(np_loaded.state_dict()[key], value)
        np.testing.assert_array_equal(torch_loaded.state_dict()[key].numpy(), value)
    assert (np_loaded.out_head.weight is np_loaded.tok_emb.weight) is tie
    assert (torch_loaded.out_head.weight is torch_loaded.tok_emb.weight) is tie


# ---- bad checkpoints: each a clear error naming the file, key or value, raised before anything is built or read


@pytest.fixture(params=["numpy", "torch"])
def load(request, monkeypatch):
    """Each package's loader, made to fail the test if it builds a model before every check has passed."""
    def too_early(*args, **kwargs):
        raise AssertionError("built a model or read tensors before the checks passed")

    if request.param == "numpy":
        monkeypatch.setattr(np_checkpoint, "GPTModel", too_early)
        return numpy_gpt.load_pretrained
    monkeypatch.setattr(torch_checkpoint, "safe_open", too_early)
    return torch_gpt.load_pretrained


def test_missing_paths_and_files(load, gpt2_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint {tmp_path / 'nowhere'} does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is a file, not a directory"):
        load(gpt2_dir / "config.json")
    no_config = copy_of(gpt2_dir, tmp_path / "no-config")
    (no_config / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"has no config.json \\({no_config / 'config.json'} not found\\)"):
        load(no_config)
    no_weights = copy_of(gpt2_dir, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        load(no_weights)


CONFIG_CHANGES = [
    ({"activation_function": "relu"}, "activation_function must be one of"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon must be 1e-05"),
    ({"n_inner": 7}, "n_inner must be null or 4 \\* n_embd = 24, got 7"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True is not supported"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=True is not supported"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings=False is not supported"),
    ({"model_type": "gpt_neo"}, "model_type must be 'gpt2', got 'gpt_neo'"),
    ({"n_embd": None}, "GPT-2 config has no 'n_embd'"),
    ({"n_head": 4}, "emb_dim must be divisible by n_heads, got emb_dim=6, n_heads=4"),
]


@pytest.mark.parametrize("change, message", CONFIG_CHANGES)
def test_gpt2_configs_we_do_not_compute_are_errors_naming_the_option(load, gpt2_dir, tmp_path, change, message):
    path = copy_of(gpt2_dir, tmp_path / "config")
    config = json.loads((path / "config.json").read_text())
    config.update(change)
    config = {key: value for key, value in config.items() if value is not None}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"{path / 'config.json'}: .*{message}"):
        load(path)


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object, got list"),
    ('{"hello": 1}', "is neither a GPT-2 config"),
    ('{"format": "gpt-twins", "format_version": 2}', "unknown format 'gpt-twins' version 2"),
    ('{"format": "gpt-twins", "format_version": 1, "config": {"vocab_size": 3}}', "missing config keys"),
])
def test_unreadable_configs(load, gpt2_dir, tmp_path, text, message):
    path = copy_of(gpt2_dir, tmp_path / "config")
    (path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        load(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_truncated_or_corrupted_safetensors_files(load, gpt2_dir, tmp_path, damage):
    path = copy_of(gpt2_dir, tmp_path / damage)
    data = (path / "model.safetensors").read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"\x07" * 100, "empty": b""}[damage]
    (path / "model.safetensors").write_bytes(broken)
    with pytest.raises(ValueError, match=f"{path / 'model.safetensors'} is not a readable safetensors file"):
        load(path)


TENSOR_CHANGES = [
    (lambda t: {k: v for k, v in t.items() if k != "transformer.h.1.ln_2.bias"},
     r"is missing 1 tensor\(s\): \['transformer.h.1.ln_2.bias'\]"),
    (lambda t: {**t, "transformer.h.0.extra": np.zeros(3, np.float32)},
     r"has 1 unexpected tensor\(s\): \['transformer.h.0.extra'\]"),
    (lambda t: {**t, "transformer.wpe.weight": np.zeros((9, 6), np.float32)},
     r"tensor 'transformer.wpe.weight' has shape \(9, 6\), expected \(8, 6\)"),
    (lambda t: {**t, "transformer.h.0.attn.c_attn.weight": np.zeros((18, 6), np.float32)},
     r"tensor 'transformer.h.0.attn.c_attn.weight' has shape \(18, 6\), expected \(6, 18\)"),
    (lambda t: {**t, "transformer.h.0.mlp.c_fc.bias": np.zeros(24, np.int64)},
     r"tensor 'transformer.h.0.mlp.c_fc.bias' has dtype I64, expected one of"),
]


@pytest.mark.parametrize("change, message", TENSOR_CHANGES)
def test_missing_unexpected_misshapen_or_mistyped_tensors(load, gpt2_dir, tmp_path, change, message):
    path = copy_of(gpt2_dir, tmp_path / "tensors")
    rewrite(path, change)
    with pytest.raises(ValueError, match=f"{path / 'model.safetensors'}: .*{message}|{message}"):
        load(path)


def test_our_format_without_an_untied_head_is_missing_a_key(load, tmp_path):
    cfg = {"vocab_size": 5, "context_length": 3, "emb_dim": 2, "n_heads": 1, "n_layers": 1}
    numpy_gpt.save_pretrained(numpy_gpt.GPTModel(cfg, seed=0), tmp_path)
    rewrite(tmp_path, lambda t: {k: v for k, v in t.items() if k != "out_head.weight"})
    with pytest.raises(ValueError, match=r"is missing 1 tensor\(s\): \['out_head.weight'\]"):
        load(tmp_path)
