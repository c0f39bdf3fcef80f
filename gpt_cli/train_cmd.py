"""``train``: train GPT-2 on a text file in either implementation; evaluate, sample, plot, checkpoint, resume.

    python -m gpt_cli train                                   # a small model on the bundled text, a few minutes
    python -m gpt_cli train --impl torch --config 124M --context-length 256 --batch-size 2 \\
        --epochs 10 --lr 4e-4 --weight-decay 0.1 --out runs/ch05   # the book's chapter 5 run
    python -m gpt_cli train --resume runs/ch05                # continue where that run stopped (bit-exact)
    torchrun --nproc_per_node=2 -m gpt_cli train --impl torch # DistributedDataParallel (gloo on CPU, NCCL on CUDA)
    python -m gpt_cli prepare corpus.txt --out data/corpus && python -m gpt_cli train --data data/corpus
                                                              # a large corpus: tokenized once, memory-mapped

``--out DIR`` (default runs/train) receives ``metrics.jsonl`` (every step's loss, learning rate,
gradient norm and tokens/s), ``loss-plot.png`` and ``checkpoints/`` (weights and AdamW moments in
safetensors, a JSON manifest with the data position and every random state). A fresh run refuses a
directory that already holds a run: resume it, choose another --out, or pass --overwrite.

``--resume DIR`` continues a run from its latest checkpoint, writing into DIR (unless --out says
otherwise). Every flag that decides the numbers (--impl, --dtype, --config, --data, --lr, ...)
defaults to the run's own; one that differs is refused. What only decides the cadence (--max-steps,
--eval-every, --eval-batches, --start-context, --keep) may change. A checkpoint resumes in the other
implementation too (--impl), with one line saying dropout is reseeded. Ctrl-C stops after the current
step with a checkpoint (status 130); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path

from gpt_common.config import NAMED_CONFIGS, as_config, resolve_config, weights_bytes
from gpt_common.tokenizer import SAMPLE_TEXT_FILE
from gpt_common.training.data_order import batches_per_epoch
from gpt_common.training.param_groups import DECAY_GROUPS
from gpt_common.training.run import read_resume_manifest, run_training
from gpt_common.training.run_dir import claim_out_dir, run_dir_of
from gpt_common.training.settings import DTYPES, Cadence, RunSettings, flag, resolve
from gpt_common.training.token_data import data_tokens
from gpt_common.validation import check_seed, physical_memory

DEFAULT_OUT, DEFAULT_EPOCHS = "runs/train", 10
LARGE_TEXT = 20_000_000  # bytes of --data text above which train points to prepare (~5M tokens held in memory)
SETTINGS, CADENCE = RunSettings(), Cadence()  # the one source of every default shown below


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train GPT-2 on a text file (NumPy or torch), with resume",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--impl", choices=["numpy", "torch"], help="which implementation trains (default numpy, or the run's)")
    add("--data", metavar="FILE_OR_DIR",
        help="a corpus prepared by `gpt_cli prepare` (memory-mapped: any size), or a small UTF-8 text, tokenized "
             "in memory (default: the bundled the-verdict, or the run's)")
    add("--config", metavar="NAME_OR_JSON",
        help=f"a name ({', '.join(NAMED_CONFIGS)}) or a JSON config file (default: small)")
    add("--context-length", type=int, help="window length T (default: the config's)")
    add("--drop-rate", type=float, help="dropout probability (default: the config's)")
    add("--batch-size", type=int, help=f"windows per micro-batch (default {SETTINGS.batch_size})")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help=f"passes over the training windows (default {DEFAULT_EPOCHS})")
    length.add_argument("--max-steps", type=int, help="optimizer steps in all (on resume: where to stop)")
    add("--lr", type=float, help=f"peak learning rate (default {SETTINGS.lr}, the book's)")
    add("--min-lr", type=float, help="cosine decay's floor (default: --lr, a constant rate as in chapter 5)")
    add("--initial-lr", type=float, help=f"warmup's starting rate (appendix D; default {SETTINGS.initial_lr})")
    add("--warmup-steps", type=int, help=f"(default {SETTINGS.warmup_steps})")
    add("--weight-decay", type=float, help=f"(default {SETTINGS.weight_decay})")
    add("--decay-groups", dest="decay", choices=DECAY_GROUPS,
        help="all: decay every parameter (the book, the default); matrices: only >= 2-D tensors (nanoGPT)")
    add("--grad-clip", type=float, help="clip the global gradient norm to this after warmup (appendix D: 1.0)")
    add("--accumulate", type=int, help=f"micro-batches per optimizer step (default {SETTINGS.accumulate})")
    add("--eval-every", type=int, help=f"steps between evaluations and checkpoints (default {CADENCE.eval_every})")
    add("--eval-batches", type=int, help=f"batches per evaluation, of each split (default {CADENCE.eval_batches})")
    add("--start-context", help=f"the prompt of each evaluation's sample (default {CADENCE.start_context!r})")
    add("--seed", type=int, help=f"(default {SETTINGS.seed})")
    add("--out", metavar="DIR", help=f"metrics, plot and checkpoints (default {DEFAULT_OUT}, or --resume's DIR)")
    add("--overwrite", action="store_true", help="replace the run that --out already holds")
    add("--resume", metavar="DIR", help="continue from this run directory's (or checkpoint's) latest state")
    add("--device", help="torch device: cpu (default), cuda, cuda:1 ...")
    add("--dtype", choices=DTYPES, help="float32 (default), float64, or bf16 (torch: float32 weights, bf16 autocast "
        "on CUDA or a CPU with bf16 matmuls such as AMX)")
    add("--compile", action="store_true", help="torch.compile the model (--impl torch; the first steps compile)")
    add("--threads", type=int, help="CPU threads (torch's intra-op threads; NumPy AdamW's workers)")
    add("--keep", type=int, help=f"checkpoints kept (default {CADENCE.keep})")
    add("--stop-after", type=int, help="stop this process after this many steps (with a checkpoint)")
    add("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    manifest = read_resume_manifest(args.resume) if args.resume is not None else None
    impl = args.impl or (manifest["impl"] if manifest else "numpy")
    _check_flags(args, impl)
    cfg = _config(args, manifest)
    rank, world_size = _world(args, impl)
    package = _package(impl, args, manifest)
    tokenizer = package.tokenizer.get_tokenizer("gpt2")
    if cfg.vocab_size < tokenizer.n_vocab:
        raise ValueError(f"--config {args.config or 'of the run'}: vocab_size {cfg.vocab_size} is smaller than "
                         f"the gpt2 tokenizer's {tokenizer.n_vocab}")
    _check_memory(cfg, args, manifest)
    data = args.data or (manifest["data"]["path"] if manifest else str(SAMPLE_TEXT_FILE))
    train, val, identity = data_tokens(data, tokenizer, cfg.context_length, cfg.vocab_size)
    if rank == 0 and identity["kind"] == "text" and identity["bytes"] > LARGE_TEXT:
        _note(f"--data {data}: {identity['bytes'] / 1e6:.0f} MB of text, tokenized in memory; for a large corpus, "
              f"run `python -m gpt_cli prepare {data} --out DIR` once and train with --data DIR (memory-mapped)")
    settings, cadence = _settings(args, manifest, train.num_windows, cfg.context_length, world_size)
    if impl == "numpy" and settings.dtype == "bf16":
        raise ValueError("--dtype bf16 needs --impl torch: NumPy has no bfloat16 (the run was trained in bf16)")
    out = Path(args.out or (run_dir_of(args.resume) if args.resume else DEFAULT_OUT))
    if rank == 0:
        claim_out_dir(out, run_dir_of(args.resume) if args.resume else None, args.overwrite)
    trainer = package.trainer.Trainer(cfg, seed=settings.seed, weight_decay=settings.weight_decay,
                                      decay=settings.decay, dtype=settings.dtype, device=args.device or "cpu",
                                      threads=args.threads, **({"compile": True} if args.compile else {}))
    facts = {"data": identity, "threads": _threads_in_use(impl)}
    log = _Log() if rank == 0 else (lambda line: None)
    progress = None if args.no_progress or rank != 0 else _progress_bar(cadence.max_steps or settings.total_steps)
    with _stop_on_first_ctrl_c() as stop_requested:
        run_training(trainer, cfg, settings, cadence, train, val, tokenizer, out, facts=facts, resume=args.resume,
                     world=(rank, world_size), log=log, note=_note if rank == 0 else log, progress=progress,
                     stop_requested=stop_requested)
    return 0


def _check_flags(args, impl: str) -> None:
    """What can be refused from the flags alone, before any file is read or model built."""
    for name in ("threads", "epochs", "stop_after"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{flag(name)} must be >= 1, got {value}")
    check_seed("--seed", args.seed)
    if impl == "numpy" and args.dtype == "bf16":
        raise ValueError("--dtype bf16 needs --impl torch: NumPy has no bfloat16")
    if impl == "numpy" and args.compile:
        raise ValueError("--compile needs --impl torch: NumPy has nothing to compile")
    if impl == "numpy" and args.device not in (None, "cpu"):
        raise ValueError(f"--device {args.device}: the NumPy implementation runs on the CPU only")
    if impl == "torch" and args.device is not None:
        _check_torch_device(args.device)


def _check_torch_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device: cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: training runs on cpu or cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _package(impl: str, args, manifest):
    """The twin that trains; torch's thread count set here (the run's own, on a resume in torch)."""
    if impl == "numpy":
        import numpy_gpt.tokenizer
        import numpy_gpt.trainer

        return numpy_gpt
    import torch

    import torch_gpt.tokenizer
    import torch_gpt.trainer

    if args.threads is None and manifest and manifest["impl"] == "torch" and manifest.get("threads"):
        args.threads = manifest["threads"]  # the run's own: torch's sums depend on the thread count
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return torch_gpt


def _threads_in_use(impl: str) -> int | None:
    """torch's intra-op thread count (its sums' order depends on it); None for NumPy, whose results do not."""
    if impl != "torch":
        return None
    import torch

    return torch.get_num_threads()


def _config(args, manifest):
    """The model's config: --config (a size, a preset, a JSON file), or the run's own on a resume."""
    if args.config is None and manifest is not None:
        cfg = as_config(manifest["config"])
    else:
        cfg = resolve_config(args.config or "small", "--config")
    changes = {"context_length": args.context_length, "drop_rate": args.drop_rate}
    return cfg.replace(**{key: value for key, value in changes.items() if value is not None})


def _settings(args, manifest, train_windows: int, context_length: int, world_size: int):
    """(RunSettings, Cadence): the given flags over the run's saved settings (a resume) or the defaults."""
    given = vars(args)
    saved = manifest["settings"] if manifest else dataclasses.asdict(SETTINGS)
    batch_size, accumulate = (given[name] or saved[name] for name in ("batch_size", "accumulate"))
    per_step = batch_size * accumulate * world_size
    if train_windows < per_step:
        world = f" x {world_size} processes" if world_size > 1 else ""
        raise ValueError(f"--batch-size {batch_size} x --accumulate {accumulate}{world} = {per_step} windows per "
                         f"step, more than the data's {train_windows} training windows of {context_length} tokens")
    steps_per_epoch = batches_per_epoch(train_windows, per_step, drop_last=True, context_length=context_length)
    epochs_steps = steps_per_epoch * args.epochs if args.epochs is not None else None
    if manifest is None:
        total = args.max_steps or epochs_steps or steps_per_epoch * DEFAULT_EPOCHS
        settings = resolve(RunSettings, {**given, "total_steps": total}, None)
    else:
        settings = resolve(RunSettings, {**given, "total_steps": None}, manifest["settings"],
                           f"--resume {args.resume}")
    cadence = resolve(Cadence, {**given, "max_steps": args.max_steps or epochs_steps}, None)
    return settings, cadence


def _check_memory(cfg, args, manifest) -> None:
    """Refuse a run that cannot fit: weights, gradients and AdamW's two moments (4 copies of the weights),
    plus one micro-batch's activations, the logits (B T V: logits, probabilities, their gradient) included."""
    dtype, B = (getattr(args, name) or (manifest["settings"].get(name) if manifest else None) or getattr(SETTINGS, name)
                for name in ("dtype", "batch_size"))
    itemsize, device = (8 if dtype == "float64" else 4), args.device or "cpu"
    weights = weights_bytes(cfg, itemsize)
    T, C, H = cfg.context_length, cfg.emb_dim, cfg.n_heads
    per_layer = B * T * (16 * C + 2 * H * T)  # LayerNorms, q k v, context, projection, 4C MLP twice; scores
    activations = itemsize * (cfg.n_layers * per_layer + 3 * B * T * cfg.vocab_size)
    total, available = 4 * weights + activations, _memory_of(device)
    if available is not None and total > available:
        gib = 2**30
        raise ValueError(f"training this config at --batch-size {B}, T {T} ({dtype}) needs about "
                         f"{total / gib:,.1f} GiB (weights, gradients and 2 AdamW moments {4 * weights / gib:,.1f}, "
                         f"activations {activations / gib:,.1f}), more than the {available / gib:,.1f} GiB of "
                         f"--device {device}")


def _memory_of(device: str) -> int | None:
    if not device.startswith("cuda"):
        return physical_memory()
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory


def _world(args, impl: str) -> tuple[int, int]:
    """(rank, world size): torchrun sets WORLD_SIZE; the process group is gloo on CPU, NCCL on CUDA."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if impl != "torch":
        raise ValueError("torchrun runs --impl torch only: DistributedDataParallel is PyTorch's engine")
    import torch.distributed as dist

    device = args.device or "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device == "cuda":
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return dist.get_rank(), world_size


class _Log:
    """Print a line; once stdout is closed (``| head``, a dead ``tee``), say so on stderr and keep training."""

    def __init__(self):
        self.open = True

    def __call__(self, line: str) -> None:
        if not self.open:
            return
        try:
            print(line, flush=True)
        except (BrokenPipeError, ValueError):  # ValueError: stdout itself was closed
            self.open = False
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            _note("note: stdout was closed: training goes on without printing (metrics.jsonl has every step)")


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stop_on_first_ctrl_c():
    """The first Ctrl-C asks the run to stop after the current step (with a checkpoint); the second
    interrupts at once. Only in the main thread, where Python delivers signals."""
    requested = []

    def handler(signum, frame):
        requested.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _note("note: Ctrl-C: stopping after this step, with a checkpoint (press again to stop at once)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield lambda: False
        return
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress_bar(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(record: dict) -> None:
        bar.n = record["step"]
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        bar.refresh()

    return update

