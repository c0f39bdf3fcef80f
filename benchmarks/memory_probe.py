"""Peak memory of one forward pass, measured in a fresh process that holds nothing else.

``python -m benchmarks.memory_probe --impl numpy --size 124M --seq-len 1024`` builds
one model, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs
one forward pass and prints JSON: the process's peak resident memory during
the forward and the weights' size. The NumPy probe never imports torch, so
the figure is the reference implementation's own footprint.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys

import numpy as np

from .procfs import reset_peak_rss, status_kib

__all__ = ["main"]


def _status_mb(field_name: str) -> float:
    kib = status_kib(field_name)
    if kib is None:
        raise RuntimeError(f"{field_name} not in /proc/self/status")
    return kib / 1024


def _model(impl: str, cfg):
    if impl == "numpy":
        import numpy_gpt

        model = numpy_gpt.GPTModel(cfg, seed=0).eval()
        return model, sum(p.nbytes for p in model.parameters()), model
    import torch

    import torch_gpt

    torch.set_grad_enabled(False)
    model = torch_gpt.GPTModel(cfg).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return model, weights, lambda idx: model(torch.from_numpy(idx))


def measure(impl: str, cfg, batch: int, tokens: int) -> dict:
    interpreter_mb = _status_mb("VmRSS")
    model, weight_bytes, forward = _model(impl, cfg)
    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, tokens))
    gc.collect()
    resettable = reset_peak_rss()  # construction temporaries (float64 init draws) are not the forward's
    before_mb = _status_mb("VmRSS")
    logits = forward(idx)
    peak_mb = _status_mb("VmHWM")
    return {
        "impl": impl, "B": batch, "T": tokens,
        "weights_mb": weight_bytes / 2**20,
        "logits_mb": logits.nbytes / 2**20 if hasattr(logits, "nbytes") else logits.numel() * 4 / 2**20,
        "interpreter_mb": interpreter_mb,
        "rss_before_forward_mb": before_mb,
        "peak_rss_mb": peak_mb,
        "peak_resettable": resettable,
        "numpy_only_process": "torch" not in sys.modules,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["numpy", "torch"], required=True)
    parser.add_argument("--size", default="124M", help="a GPT-2 preset name, or 'tiny'")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    from .configs import config_for

    print(json.dumps(measure(args.impl, config_for(args.size), args.batch, args.seq_len)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
