"""The ``tokenize`` sub-command: ids, token texts, files, the three tokenizers, clear errors."""

import argparse

import pytest

from gpt_cli import tokenize_cmd
from numpy_gpt.tokenizer import SAMPLE_TEXT_FILE


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="test")
    tokenize_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tokenize", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("tokenizer", ["tiktoken", "bpe"])
def test_prints_gpt2_ids(capsys, tokenizer):
    assert run_cli(capsys, "Hello, world<|endoftext|>", "--tokenizer", tokenizer) == (0, "15496 11 995 50256\n", "")


def test_default_tokenizer_is_tiktoken_and_show_tokens_prints_each_token(capsys):
    code, out, _ = run_cli(capsys, "Hello, world’", "--show-tokens")
    assert code == 0
    # "’" is 3 bytes split over two tokens that are not UTF-8 alone, so they print as bytes
    assert out.splitlines() == ["15496\t'Hello'", "11\t','", "995\t' world'", "447\tb'\\xe2\\x80'", "247\tb'\\x99'"]


def test_reads_a_file(capsys, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("I HAD always thought", encoding="utf-8")
    assert run_cli(capsys, "--file", str(path), "--tokenizer", "bpe") == (0, "40 367 2885 1464 1807\n", "")
    code, out, _ = run_cli(capsys, "--file", str(SAMPLE_TEXT_FILE))
    assert code == 0 and len(out.split()) == 5145


def test_simple_tokenizer_uses_the_sample_vocabulary(capsys):
    code, out, _ = run_cli(capsys, "It's the last he painted, zebra", "--tokenizer", "simple", "--show-tokens")
    assert code == 0
    assert out.splitlines() == ["56\t'It'", "2\t\"'\"", "850\t's'", "988\t'the'", "602\t'last'", "533\t'he'",
                                "746\t'painted'", "5\t','", "1131\t'<|unk|>'"]


@pytest.mark.parametrize("argv, message", [
    (["text", "--file", "x.txt"], "give either a text or --file"),
    ([], "give either a text or --file"),
    (["--file", "/nonexistent/file.txt"], "No such file or directory"),
])
def test_bad_input_is_an_error_message_and_exit_code_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err


def test_registered_in_the_main_cli(capsys):
    from gpt_cli.__main__ import main

    assert main(["tokenize", "Hello", "--tokenizer", "bpe"]) == 0
    assert capsys.readouterr().out == "15496\n"
