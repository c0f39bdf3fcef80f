"""``generate``: continue a prompt with GPT-2 in either implementation, streaming the tokens as they come.

    python -m gpt_cli generate --impl numpy --weights gpt2 --prompt "Hello, I am" --max-new-tokens 40
    python -m gpt_cli generate --impl torch --weights gpt2 --temperature 0.8 --top-k 50 --seed 1

``--weights`` is a checkpoint directory (config.json + model.safetensors): GPT-2
as downloaded from the Hugging Face hub, or one written by ``save_pretrained``; or a
training run (``train --out DIR``, its latest checkpoint) or one of its checkpoints.
Without it the model has random weights, and the command says so. The text goes
to stdout as it is produced; notices and the tokens/s report go to stderr.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import sys
import time

import numpy_gpt
from gpt_cli.errors import handle_errors
from gpt_cli.models import is_training_checkpoint, load_model
from gpt_common.config import NAMED_CONFIGS, resolve_config
from gpt_common.validation import check_seed

ENDOFTEXT = "<|endoftext|>"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="continue a prompt with GPT-2 (NumPy or torch), streaming tokens",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--impl", choices=["numpy", "torch"], default="numpy", help="which implementation runs")
    parser.add_argument("--weights", metavar="PATH", help="checkpoint directory; without it the model is UNTRAINED")
    parser.add_argument("--config", default="gpt2", metavar="NAME_OR_JSON",
                        help=f"without --weights: a name ({', '.join(NAMED_CONFIGS)}) "
                             "or a JSON file with our config keys (default: gpt2)")
    parser.add_argument("--prompt", default="Hello, I am", help="text to continue (empty: start from <|endoftext|>)")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample within the nucleus of probability p")
    parser.add_argument("--seed", type=int, default=123, help="seeds the sampling (and untrained weights)")
    parser.add_argument("--stop-id", type=int, default=None, help="stop at this token id (default: <|endoftext|>)")
    parser.add_argument("--no-stop", action="store_true", help="do not stop at <|endoftext|>")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step (slow)")
    parser.add_argument("--overflow", choices=["stop", "slide"], default="stop",
                        help="at the context length: stop (default), or slide the window, recomputing it each step")
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """The flags that need no model, checked before any loading (the rest: by generate, before any step)."""
    numpy_gpt.SamplingParams(args.temperature, args.top_k, args.top_p)
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    check_seed("--seed", args.seed)
    if args.stop_id is not None and args.stop_id < 0:
        raise ValueError(f"--stop-id must be a token id >= 0, got {args.stop_id}")


@handle_errors
def run(args: argparse.Namespace) -> int:
    check_args(args)
    package = _package(args.impl)
    model = _model(args, package)
    tokenizer = importlib.import_module(f"{package.__name__}.tokenizer").get_tokenizer("gpt2")
    ids = tokenizer.encode(args.prompt, allowed_special={ENDOFTEXT}) or [tokenizer.eot_token]
    stop_id = _stop_id(args, tokenizer, model.cfg.vocab_size)
    steps = package.generate_stream(
        model, _as_batch(package, ids), args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, eos_id=stop_id, rng=args.seed, use_cache=not args.no_cache, overflow=args.overflow,
    )
    print(args.prompt, end="", flush=True)
    count, seconds = _stream(steps, tokenizer, stop_id)
    rate = f"{count / seconds:.1f} tokens/s" if seconds > 0 else "n/a"
    cache = "no cache" if args.no_cache else "KV cache"
    print(f"[{count} tokens in {seconds:.2f} s: {rate}; {args.impl}, {cache}, prefill included]", file=sys.stderr)
    return 0


def _package(impl: str):
    if impl == "torch":
        import torch_gpt  # imported only when asked for: torch is slow to import

        return torch_gpt
    return numpy_gpt


def _model(args: argparse.Namespace, package):
    """The checkpoint at --weights, or an untrained model of --config (said plainly on stderr)."""
    if args.weights is not None and is_training_checkpoint(args.weights):  # a `train --out` run or checkpoint
        model, _ = load_model(args.weights, args.impl)
        print(f"loaded {args.weights} ({_size(package, model)}) into {args.impl}", file=sys.stderr)
        return model
    if args.weights is not None:
        model = package.load_pretrained(args.weights)
        print(f"loaded {args.weights} ({_size(package, model)}) into {args.impl}", file=sys.stderr)
        return model
    cfg = resolve_config(args.config, "--config").replace(drop_rate=0.0)
    if package is numpy_gpt:
        model = numpy_gpt.GPTModel(cfg, seed=args.seed).eval()
    else:
        import torch

        torch.manual_seed(args.seed)
        model = package.GPTModel(cfg).eval()
    print(f"NOTE: no --weights given, so this model is UNTRAINED: random weights (seed {args.seed}), config "
          f"{args.config} ({_size(package, model)}). Expect gibberish; the README shows how to get GPT-2's weights.",
          file=sys.stderr)
    return model


def _size(package, model) -> str:
    return f"{package.count_parameters(model).tied / 1e6:.1f}M parameters as GPT-2 counts them"


def _stop_id(args: argparse.Namespace, tokenizer, vocab_size: int) -> int | None:
    if args.no_stop:
        return None
    if args.stop_id is not None:
        return args.stop_id  # checked by generate: an int in [0, vocab_size)
    return tokenizer.eot_token if tokenizer.eot_token < vocab_size else None


def _as_batch(package, ids: list[int]):
    if package is numpy_gpt:
        import numpy as np

        return np.array([ids], dtype=np.int64)
    import torch

    return torch.tensor([ids], dtype=torch.int64)


def _stream(steps, tokenizer, stop_id: int | None) -> tuple[int, float]:
    """Print each token as it comes (UTF-8 split across tokens is held back until complete); (count, seconds)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    count, start = 0, time.perf_counter()
    for next_ids in steps:
        token = int(next_ids[0])
        count += 1
        if token == stop_id:
            break
        sys.stdout.write(decoder.decode(tokenizer.decode_bytes([token])))
        sys.stdout.flush()
    seconds = time.perf_counter() - start
    sys.stdout.write(decoder.decode(b"", final=True) + "\n")
    sys.stdout.flush()
    return count, seconds
