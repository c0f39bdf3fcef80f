"""``eval``: a model's mean loss, perplexity and bits per byte on a held-out text or prepared corpus.

    python -m gpt_cli eval --model runs/shakespeare --data data/shakespeare            # its val split
    python -m gpt_cli eval --model gpt2 --data data/shakespeare --context-length 1024 --stride 512 --impl torch
    python -m gpt_cli eval --model runs/small --data held-out.txt --out eval.json

``--model`` is a training run or checkpoint directory (``train --out``), a ``save_pretrained``
directory, or GPT-2 as downloaded from Hugging Face (config.json + model.safetensors).
``--data`` is a UTF-8 text file (encoded with GPT-2's tokenizer) or a ``prepare`` directory (its
``--split``). With ``--stride`` below the context length, windows overlap and every token is predicted
with at least context - stride tokens before it (Hugging Face's perplexity guide); the window
arithmetic is ``gpt_common.evaluation``, the loss each twin's own ``cross_entropy``. The JSON
record goes to stdout (and to ``--out``); a one-line summary to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gpt_cli.models import load_model
from gpt_common import shards
from gpt_common.durable import replace_durably
from gpt_common.evaluation import evaluate_tokens, gpt2_byte_lengths


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="loss, perplexity and bits per byte of a model on a text",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--model", required=True, metavar="DIR", help="training run/checkpoint, save_pretrained or GPT-2 directory")
    add("--data", required=True, metavar="FILE_OR_DIR", help="a UTF-8 text file or a prepared corpus directory")
    add("--split", choices=["val", "train"], default="val", help="which split of a prepared corpus (default val)")
    add("--impl", choices=["numpy", "torch"], default="numpy", help="which implementation runs")
    add("--context-length", type=int, help="window length T (default: the model's)")
    add("--stride", type=int, help="tokens between window starts, <= T (default: T, disjoint windows)")
    add("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    add("--max-tokens", type=int, help="evaluate only the first this many tokens")
    add("--device", default="cpu", help="torch device: cpu, cuda, ...")
    add("--dtype", choices=["float32", "float64"], default="float32", help="the weights' and activations' dtype")
    add("--out", metavar="FILE", help="also write the JSON record here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    model, cfg = load_model(args.model, args.impl, args.device, args.dtype)
    context = args.context_length or cfg.context_length
    if not 1 <= context <= cfg.context_length:
        raise ValueError(f"--context-length must be in [1, {cfg.context_length}] (the model's), got {context}")
    ids = read_tokens(args.data, args.split, cfg.vocab_size)
    if args.max_tokens is not None:
        ids = ids[: args.max_tokens]
    lengths = gpt2_byte_lengths()
    lengths = np.pad(lengths, (0, max(0, cfg.vocab_size - len(lengths))))  # a padded vocabulary's extra ids: 0
    result = evaluate_tokens(ids, context, args.stride or context, batch_loss(args.impl, model, args.device),
                             lengths, args.batch_size)
    record = {"model": str(args.model), "data": str(args.data), "impl": args.impl, "dtype": args.dtype,
              "context_length": context, "stride": args.stride or context, **result.to_dict()}
    text = json.dumps(record)
    if args.out:
        replace_durably(Path(args.out), (text + "\n").encode("utf-8"))
    print(text)
    print(f"loss {result.loss:.4f}, perplexity {result.perplexity:.2f}, {result.bits_per_byte:.4f} bits/byte over "
          f"{result.tokens:,} tokens ({result.tokens_per_s:,.0f} tokens/s, {args.impl})", file=sys.stderr)
    return 0


def _check_args(args) -> None:
    for name in ("context_length", "stride", "batch_size", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "max_tokens" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {2 if name == 'max_tokens' else 1}, got {value}")
    if args.stride is not None and args.context_length is not None and args.stride > args.context_length:
        raise ValueError(f"--stride {args.stride} is larger than --context-length {args.context_length}")


def read_tokens(data: str, split: str, vocab_size: int):
    """A prepared corpus' split (memory-mapped, checked) or a text file's GPT-2 ids, each below ``vocab_size``."""
    path = Path(data)
    if path.is_dir():
        corpus = shards.open_shards(path)
        shards.check_gpt2(corpus, "--data")
        shards.check_vocab(corpus, vocab_size, "--data")
        return corpus.split(split)
    if not path.is_file():
        raise ValueError(f"--data {data}: no such file or directory")
    from gpt_cli.prepare_cmd import make_encoder

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"--data {data} is not UTF-8 text: {error}") from None
    ids = np.asarray(make_encoder("gpt2", 1).encode_one(text), dtype=np.int64)
    if ids.size and ids.max() >= vocab_size:
        raise ValueError(f"--data {data}: holds token id {ids.max()}, at or above the model's vocab_size {vocab_size}")
    return ids


def batch_loss(impl: str, model, device: str):
    """(inputs, targets) -> the mean loss over the counted targets, by the implementation's own cross_entropy."""
    if impl == "numpy":
        import numpy_gpt

        return lambda inputs, targets: float(numpy_gpt.cross_entropy(model(inputs), targets))
    import torch

    import torch_gpt

    def loss(inputs, targets) -> float:
        with torch.inference_mode():
            inputs, targets = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)
            return torch_gpt.cross_entropy(model(inputs), targets).item()

    return loss
