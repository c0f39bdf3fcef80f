"""The ``generate`` command: both implementations stream the tokens ``generate`` makes, report tokens/s,
say plainly when the model is untrained, and turn bad arguments into one clear error line."""

import argparse
import json
import re

import numpy as np
import pytest

import numpy_gpt
from gpt_cli import generate_cmd
from numpy_gpt.tokenizer import get_tokenizer

# The real vocabulary, so any prompt tokenizes into the model's range; everything else tiny.
CFG = {"vocab_size": 50257, "context_length": 24, "emb_dim": 8, "n_heads": 2, "n_layers": 2}


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    generate_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    model = numpy_gpt.GPTModel(CFG, seed=3)
    model.out_head.weight = model.tok_emb.weight
    numpy_gpt.save_pretrained(model, path)
    return path


@pytest.mark.parametrize("sampling", [[], ["--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "5"]])
def test_both_implementations_stream_the_same_text_as_generate(weights, capsys, sampling):
    outputs = []
    for impl in ("numpy", "torch"):
        assert run("--impl", impl, "--weights", str(weights), "--prompt", "The cat", "--max-new-tokens", "12",
                   "--no-stop", *sampling) == 0
        captured = capsys.readouterr()
        outputs.append(captured.out)
        assert f"loaded {weights}" in captured.err
        assert "12 tokens in" in captured.err and "tokens/s" in captured.err and impl in captured.err
    tokenizer = get_tokenizer("gpt2")
    model = numpy_gpt.load_pretrained(weights)
    kwargs = {"temperature": 0.9, "top_k": 40, "top_p": 0.95, "rng": 5} if sampling else {}
    ids = numpy_gpt.generate(model, np.array([tokenizer.encode("The cat")]), 12, **kwargs)[0]
    assert outputs[0] == outputs[1] == tokenizer.decode(ids.tolist()) + "\n"


def test_without_weights_it_says_the_model_is_untrained(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(CFG))
    assert run("--config", str(config), "--prompt", "Hi", "--max-new-tokens", "3", "--no-stop") == 0
    captured = capsys.readouterr()
    assert "UNTRAINED" in captured.err and "random weights" in captured.err
    assert captured.out.startswith("Hi") and "3 tokens in" in captured.err


def test_it_stops_at_end_of_text_and_with_no_cache_gives_the_same_text(weights, capsys):
    assert run("--weights", str(weights), "--prompt", "One", "--max-new-tokens", "6", "--no-stop") == 0
    free = capsys.readouterr().out
    assert run("--weights", str(weights), "--prompt", "One", "--max-new-tokens", "6", "--no-stop", "--no-cache") == 0
    assert capsys.readouterr().out == free
    tokenizer = get_tokenizer("gpt2")
    stop = tokenizer.encode(free.removeprefix("One").rstrip("\n"))[2]  # the third new token (its text tokenizes back)
    assert run("--weights", str(weights), "--prompt", "One", "--max-new-tokens", "6", "--stop-id", str(stop)) == 0
    captured = capsys.readouterr()
    assert len(tokenizer.encode(captured.out.removeprefix("One").rstrip("\n"))) < 6


@pytest.mark.parametrize("argv, message", [
    (["--top-p", "0"], r"top_p must be None or a number in \(0, 1\], got 0.0"),
    (["--top-p", "1.2"], r"top_p must be None or a number in \(0, 1\], got 1.2"),
    (["--top-k", "0"], "top_k must be None or an int >= 1, got 0"),
    (["--temperature", "-1"], "temperature must be a finite number >= 0"),
    (["--prompt", " ".join(["word"] * 30)], "the prompt has 30 tokens, more than context_length 24"),
    (["--stop-id", "60000"], r"eos_id must be None or an int in \[0, 50257\), got 60000"),
])
@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_bad_arguments_are_one_clear_error_line(weights, capsys, impl, argv, message):
    assert run("--impl", impl, "--weights", str(weights), *argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing generated
    last_line = captured.err.splitlines()[-1]
    assert last_line.startswith("error: ") and re.search(message, last_line), captured.err


def test_missing_weights_name_the_path(tmp_path, capsys):
    assert run("--weights", str(tmp_path / "nowhere")) == 2
    assert f"error: checkpoint {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
