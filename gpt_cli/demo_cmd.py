"""``demo``: the 124M model built in both implementations on the same random weights, compared and timed."""

from __future__ import annotations

import argparse
import time

import numpy as np

import numpy_gpt
from gpt_cli.errors import handle_errors
from gpt_common.validation import check_seed

ENDOFTEXT = "<|endoftext|>"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build GPT-2 124M in NumPy and torch, compare, time, generate")
    parser.add_argument("--prompt", default="Hello, I am",
                        help="text to continue greedily (empty: start from <|endoftext|>)")
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens in the comparison batch")
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--seed", type=int, default=123)
    parser.set_defaults(func=run)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def check_args(args: argparse.Namespace, cfg, tokenizer) -> list[int]:
    """Every flag, checked before the two 124M models are built; returns the prompt's token ids."""
    limit = cfg.context_length
    if not 1 <= args.seq_len <= limit:
        raise ValueError(f"--seq-len must be in [1, {limit}] (the model's context_length), got {args.seq_len}")
    if not 0 <= args.max_new_tokens <= limit:
        raise ValueError(f"--max-new-tokens must be in [0, {limit}], got {args.max_new_tokens}")
    check_seed("--seed", args.seed)
    return tokenizer.encode(args.prompt, allowed_special={ENDOFTEXT}) or [tokenizer.eot_token]


@handle_errors
def run(args: argparse.Namespace) -> int:
    import torch  # here, not at the top: every command's parser imports this module, and torch is slow to load

    import torch_gpt
    from numpy_gpt.tokenizer import get_tokenizer

    cfg = numpy_gpt.GPT_CONFIG_124M
    tokenizer = get_tokenizer("gpt2")
    prompt = np.array([check_args(args, cfg, tokenizer)])
    np_model = numpy_gpt.GPTModel(cfg, seed=args.seed).eval()
    torch_model = torch_gpt.GPTModel(cfg).eval()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()}, strict=True)
    counts = numpy_gpt.count_parameters(np_model)
    print(f"GPT-2 124M config: {dict(cfg)}")
    print(f"parameters, numpy: {counts.untied:,} (output head separate), {counts.tied:,} (tied to the token embedding)")
    counts = torch_gpt.count_parameters(torch_model)
    print(f"parameters, torch: {counts.untied:,} (output head separate), {counts.tied:,} (tied to the token embedding)")

    idx = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, (1, args.seq_len))
    np_logits, np_time = timed(np_model, idx)
    with torch.no_grad():
        torch_logits, torch_time = timed(torch_model, torch.from_numpy(idx))
    diff = float(np.abs(np_logits - torch_logits.numpy()).max())
    print(f"forward (1, {args.seq_len}) float32: numpy {np_time:.3f} s, torch {torch_time:.3f} s (one call each)")
    print(f"max |numpy - torch| logits: {diff:.3g}")

    out = numpy_gpt.generate_text_simple(np_model, prompt, args.max_new_tokens, cfg.context_length)
    out_t = torch_gpt.generate_text_simple(
        torch_model, torch.from_numpy(prompt), args.max_new_tokens, cfg.context_length
    )
    print("greedy continuation (UNTRAINED random weights, so expect gibberish):")
    print(f"  numpy: {tokenizer.decode(out[0].tolist())!r}")
    print(f"  torch: {tokenizer.decode(out_t[0].tolist())!r}")
    print(f"  same tokens: {bool(np.array_equal(out, out_t.numpy()))}")
    return 0
