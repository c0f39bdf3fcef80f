"""The book's chapter 5 run (section 5.2), in both implementations on this machine: printout, loss plot, time.

    python -m benchmarks.book_ch05 [--impl torch,numpy] [--out benchmarks/results/book-ch05]

torch: the book's seeds, loaders and ``torch.optim.AdamW(lr=0.0004, weight_decay=0.1)`` with the project's
``train_model_simple``: it prints the book's lines. NumPy: the same recipe with its own random numbers
(``GPTModel(cfg, seed=123)``, the NumPy loaders with ``seed=123``), so its lines differ from the book's
and its end state is judged by the book's band (train loss below 1, val loss below 7). Each run's printout,
plot and wall time go to ``--out``. The wall time goes through the harness's one timing loop: one call, no
warm-up, and no retake of a run of minutes (the share of the CPUs other processes used is recorded instead).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BOOK_CONFIG = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
               "drop_rate": 0.1, "qkv_bias": False}
RECIPE = {"num_epochs": 10, "eval_freq": 5, "eval_iter": 5, "start_context": "Every effort moves you"}


def _split():
    from gpt_common.tokenizer import SAMPLE_TEXT_FILE

    text = SAMPLE_TEXT_FILE.read_text(encoding="utf-8")
    split_idx = int(0.90 * len(text))
    return text[:split_idx], text[split_idx:]


def run_torch(log):
    import torch

    import torch_gpt
    from torch_gpt.data import create_dataloader_v1
    from torch_gpt.train import train_model_simple

    train_text, val_text = _split()
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(train_text, batch_size=2, max_length=256, stride=256, drop_last=True,
                                        shuffle=True, num_workers=0)
    val_loader = create_dataloader_v1(val_text, batch_size=2, max_length=256, stride=256, drop_last=False,
                                      shuffle=False, num_workers=0)
    torch.manual_seed(123)
    model = torch_gpt.GPTModel(BOOK_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    return train_model_simple(model, train_loader, val_loader, optimizer, "cpu", **RECIPE,
                              tokenizer=torch_gpt.tokenizer.get_tokenizer("gpt2"), log=log)


def run_numpy(log):
    import numpy_gpt
    from numpy_gpt.data import create_dataloader_v1
    from numpy_gpt.train import train_model_simple

    train_text, val_text = _split()
    train_loader = create_dataloader_v1(train_text, batch_size=2, max_length=256, stride=256, drop_last=True,
                                        shuffle=True, num_workers=0, seed=123)
    val_loader = create_dataloader_v1(val_text, batch_size=2, max_length=256, stride=256, drop_last=False,
                                      shuffle=False, num_workers=0)
    model = numpy_gpt.GPTModel(BOOK_CONFIG, seed=123)
    optimizer = numpy_gpt.AdamW(model.named_parameters(), lr=0.0004, weight_decay=0.1)
    return train_model_simple(model, train_loader, val_loader, optimizer, "cpu", **RECIPE,
                              tokenizer=numpy_gpt.tokenizer.get_tokenizer("gpt2"), log=log)


def _timed_run(impl: str) -> tuple[list[str], tuple, dict]:
    """One whole run of ``impl``, timed by the harness: (printed lines, the losses, the timing summary)."""
    from .harness import Entry, Plan, time_entries

    lines, result = [], {}
    run = (run_torch if impl == "torch" else run_numpy)
    entry = Entry(impl, "cpu", "fp32", lambda: result.update(losses=run(lines.append)))
    plan = Plan(warmup=0, max_retakes=0, measure_memory=False)
    timing = time_entries([entry], 1, plan, "book ch05")[entry.key]
    return lines, result["losses"], timing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.book_ch05", description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="torch,numpy")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "book-ch05")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from gpt_common.training.plot import plot_losses

    for impl in args.impl.split(","):
        lines, (train_losses, val_losses, tokens_seen), timing = _timed_run(impl)
        (args.out / f"{impl}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        epochs = [10 * i / (len(train_losses) - 1) for i in range(len(train_losses))]
        plot_losses(epochs, tokens_seen, train_losses, val_losses, args.out / f"{impl}-loss-plot.png")
        summary = {"impl": impl, "seconds": timing["min_s"], "others_cpu_fraction": timing["others_cpu_fraction"],
                   "final_train_loss": train_losses[-1], "final_val_loss": val_losses[-1],
                   "tokens_seen": tokens_seen[-1]}
        (args.out / f"{impl}.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
