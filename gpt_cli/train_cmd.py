"""``train``: train GPT-2 on a text file in either implementation; evaluate, sample, plot, checkpoint, resume.

    python -m gpt_cli train                                   # a small model on the bundled text, a few minutes
    python -m gpt_cli train --impl torch --config 124M --context-length 256 --batch-size 2 \\
        --epochs 10 --lr 4e-4 --weight-decay 0.1              # the book's chapter 5 run
    python -m gpt_cli train --resume runs/small               # continue where a run stopped (bit-exact)
    torchrun --nproc_per_node=2 -m gpt_cli train --impl torch # DistributedDataParallel (gloo on CPU, NCCL on CUDA)

``--out DIR`` receives ``metrics.jsonl`` (every step's loss, learning rate,
gradient norm and tokens/s), ``loss-plot.png`` and ``checkpoints/`` (weights and
AdamW moments in safetensors, a JSON manifest with the data position and every
random state). ``--resume DIR`` continues a run from its latest checkpoint, in
either implementation: a NumPy checkpoint resumes in torch and the other way round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gpt_common.config import PRESETS, as_config
from gpt_common.data_order import batches_per_epoch
from gpt_common.param_groups import DECAY_GROUPS
from gpt_common.run import RunSettings, run_training, split_tokens
from gpt_common.tokenizer import SAMPLE_TEXT_FILE

# A model that trains in minutes on two cores: GPT-2's tokenizer, 4 layers of width 128.
SMALL = {"vocab_size": 50257, "context_length": 64, "emb_dim": 128, "n_heads": 4, "n_layers": 4,
         "drop_rate": 0.1, "qkv_bias": False}
SIZES = {"small": SMALL, "124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train GPT-2 on a text file (NumPy or torch), with resume",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--impl", choices=["numpy", "torch"], default="numpy", help="which implementation trains")
    add("--data", metavar="FILE", default=str(SAMPLE_TEXT_FILE), help="UTF-8 text (default: the bundled the-verdict)")
    add("--config", default="small", metavar="NAME_OR_JSON",
        help=f"a size ({', '.join(SIZES)}), a preset ({', '.join(PRESETS)}) or a JSON config file (default: small)")
    add("--context-length", type=int, help="window length T (default: the config's)")
    add("--drop-rate", type=float, help="dropout probability (default: the config's)")
    add("--batch-size", type=int, default=8)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the training windows (default 10)")
    length.add_argument("--max-steps", type=int, help="optimizer steps in all")
    add("--lr", type=float, default=4e-4, help="peak learning rate (default 4e-4, the book's)")
    add("--min-lr", type=float, help="cosine decay's floor (default: --lr, a constant rate as in chapter 5)")
    add("--initial-lr", type=float, default=0.0, help="warmup's starting rate (appendix D)")
    add("--warmup-steps", type=int, default=0)
    add("--weight-decay", type=float, default=0.1)
    add("--decay-groups", choices=DECAY_GROUPS, default="all",
        help="all: decay every parameter (the book); matrices: only >= 2-D tensors (nanoGPT)")
    add("--grad-clip", type=float, help="clip the global gradient norm to this after warmup (appendix D: 1.0)")
    add("--accumulate", type=int, default=1, help="micro-batches per optimizer step")
    add("--eval-every", type=int, default=10, help="steps between evaluations (and checkpoints)")
    add("--eval-batches", type=int, default=5, help="batches per evaluation, of each split")
    add("--start-context", default="Every effort moves you", help="the prompt of each evaluation's sample")
    add("--seed", type=int, default=123)
    add("--out", default="runs/train", metavar="DIR", help="metrics, plot and checkpoints (default runs/train)")
    add("--resume", metavar="DIR", help="continue from this run directory's (or checkpoint's) latest state")
    add("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    add("--dtype", choices=["float32", "float64", "bf16"], default="float32",
        help="bf16: float32 weights, bf16 autocast (CUDA, or a CPU with bf16 matmuls such as AMX)")
    add("--compile", action="store_true", help="torch.compile the model (--impl torch; the first steps compile)")
    add("--threads", type=int, help="CPU threads for torch (default: torch's)")
    add("--keep", type=int, default=3, help="checkpoints kept (default 3)")
    add("--stop-after", type=int, help="stop this process after this many steps (with a checkpoint)")
    add("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _config(args):
    name = SIZES.get(args.config, args.config)
    if isinstance(name, dict):
        cfg = as_config(name)
    elif name in PRESETS:
        cfg = PRESETS[name]
    elif Path(name).is_file():
        try:
            cfg = as_config(json.loads(Path(name).read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ValueError(f"--config {name} is not valid JSON: {err}") from None
    else:
        raise ValueError(f"--config must be one of {sorted(SIZES)}, {sorted(PRESETS)} or a JSON file, got {name!r}")
    changes = {"context_length": args.context_length, "drop_rate": args.drop_rate}
    return cfg.replace(**{key: value for key, value in changes.items() if value is not None})


def _read_text(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--data {path}: no such file")
    text = file.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"--data {path} is empty")
    return text


def _settings(args, train_windows: int, context_length: int, world_size: int) -> RunSettings:
    for name in ("batch_size", "accumulate", "keep"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    per_step = args.batch_size * args.accumulate * world_size
    steps_per_epoch = batches_per_epoch(train_windows, per_step, drop_last=True, context_length=context_length)
    max_steps = args.max_steps if args.max_steps is not None else steps_per_epoch * (args.epochs or 10)
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    return RunSettings(
        batch_size=args.batch_size, accumulate=args.accumulate, max_steps=max_steps, lr=args.lr,
        min_lr=args.lr if args.min_lr is None else args.min_lr, initial_lr=args.initial_lr,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, decay=args.decay_groups,
        grad_clip=args.grad_clip, eval_every=args.eval_every, eval_batches=args.eval_batches, seed=args.seed,
        start_context=args.start_context)


def _world(args) -> tuple[int, int]:
    """(rank, world size): torchrun sets WORLD_SIZE; the process group is gloo on CPU, NCCL on CUDA."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if args.impl != "torch":
        raise ValueError("torchrun runs --impl torch only: DistributedDataParallel is PyTorch's engine")
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    if args.device == "cuda":
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return dist.get_rank(), world_size


def run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    text = _read_text(args.data)
    rank, world_size = _world(args)
    if args.compile and args.impl != "torch":
        raise ValueError(f"--compile needs --impl torch, got --impl {args.impl}")
    if args.impl == "torch":
        import torch

        import torch_gpt as package
        from torch_gpt.train import Trainer

        if args.threads is not None:
            torch.set_num_threads(args.threads)
    else:
        import numpy_gpt as package
        from numpy_gpt.train import Trainer
    from gpt_common.validation import check_seed

    check_seed("--seed", args.seed)
    tokenizer = package.tokenizer.get_tokenizer("gpt2")
    train, val = split_tokens(tokenizer.encode(text, allowed_special={"<|endoftext|>"}), cfg.context_length,
                              f"--data {args.data}")
    settings = _settings(args, train.num_windows, cfg.context_length, world_size)
    compiled = {"compile": True} if args.compile else {}  # torch only: NumPy has nothing to compile
    trainer = Trainer(cfg, seed=args.seed, lr=settings.lr, weight_decay=settings.weight_decay,
                      decay=settings.decay, dtype=args.dtype, device=args.device, **compiled)
    log = print if rank == 0 else (lambda line: None)
    progress = None if args.no_progress or rank != 0 else _progress_bar(settings.max_steps)
    run_training(trainer, cfg, settings, train, val, tokenizer, args.out, resume=args.resume, keep=args.keep,
                 stop_after=args.stop_after, world=(rank, world_size), log=log, progress=progress)
    return 0


def _progress_bar(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(record: dict) -> None:
        bar.n = record["step"]
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        bar.refresh()

    return update
