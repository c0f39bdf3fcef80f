"""Workload: the whole model's forward pass, (B, T) token ids -> (B, T, V) logits, per config and length.

The default is GPT-2 124M at B=1 and T in {128, 512, 1024}; ``--sizes``
adds the larger GPT-2 configs. torch runs in fp32 and under bf16 autocast (CPU and
CUDA); ``--compile`` adds ``torch.compile`` of the twin (its compile time is in the
notes). One NumPy model and its torch twin are built
per config and shared by that config's sequence lengths. Beside them, the
peers on the same weights (``peers.py``): nanoGPT's SDPA attention in our torch
model, and Hugging Face's ``GPT2LMHeadModel`` when ``transformers`` is installed.
"""

from __future__ import annotations

import functools

import numpy as np

import numpy_gpt
import torch_gpt
from gpt_common.config import GPTConfig

from . import flops, peers
from .entries import Selection, numpy_entry, torch_entries, twin_of, written_out
from .harness import Workload

__all__ = ["workloads", "models", "goals"]


@functools.lru_cache(maxsize=1)  # one config's models at a time: the 1558M pair alone needs ~13 GB
def models(cfg: GPTConfig, seed: int = 123):
    """The NumPy model (seeded weights, the head tied to the token embedding as in GPT-2) and its torch twin."""
    np_model = numpy_gpt.GPTModel(cfg, seed=seed).eval()
    np_model.out_head.weight = np_model.tok_emb.weight  # GPT-2's tied head: Hugging Face's model computes the same
    return np_model, twin_of(np_model, torch_gpt.GPTModel(cfg))


@functools.lru_cache(maxsize=1)
def hf_model(cfg: GPTConfig):
    """Hugging Face's GPT-2 on the same weights as ``models(cfg)``."""
    return peers.hf_model(models(cfg)[0])


def written_forward(model, in_idx):
    """The twin's forward on its written-out paths (tiled attention, the written LayerNorm and GELU: what the
    NumPy twin runs) instead of its defaults, torch's SDPA, F.layer_norm and F.gelu."""
    with written_out(model):
        return model(in_idx)


def peer_entries(cfg: GPTConfig, torch_model, idx, selection: Selection) -> list:
    """torch-sdpa (nanoGPT's attention) always; hf when transformers is installed; both on the torch side;
    and the twin on its written-out paths (torch-written)."""
    entries = torch_entries(torch_model, (idx,), selection, call=peers.sdpa_forward, impl="torch-sdpa")
    entries += torch_entries(torch_model, (idx,), selection, call=written_forward, impl="torch-written")
    if peers.hf_available() and any(selection.wants("torch", device) for device in selection.devices):
        entries += torch_entries(hf_model(cfg), (idx,), selection, call=peers.hf_logits, impl="hf")
    return entries


def token_ids(cfg: GPTConfig, batch: int, tokens: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, tokens))


def workloads(configs: dict[str, GPTConfig], seq_lens: list[int], batch: int, selection: Selection) -> list[Workload]:
    """One workload per (config, T), the configs in the order given; lengths beyond a context are skipped."""
    result = []
    for size, cfg in configs.items():
        for tokens in seq_lens:
            if tokens > cfg.context_length:
                continue

            def build(cfg=cfg, tokens=tokens):
                np_model, torch_model = models(cfg)
                idx = token_ids(cfg, batch, tokens)
                entries = [numpy_entry(lambda: np_model(idx), selection)]
                entries += torch_entries(torch_model, (idx,), selection, cpu_bf16=True)
                return entries + peer_entries(cfg, torch_model, idx, selection)

            weights_mb = flops.FLOAT * flops.model_weights(cfg) / 2**20
            params = {"size": size, "B": batch, "T": tokens, "weights_mb": weights_mb}
            result.append(Workload("forward", "forward", params, flops.model_forward(cfg, batch, tokens),
                                   flops.model_bytes(cfg, batch, tokens), build))
    return result


def goals(rows: list[dict]) -> list[dict]:
    """Issue 17's forward targets (124M, B=1, T=1024): torch's default no slower than torch-sdpa and Hugging Face."""
    from .bench_train import ratio_text

    def find(impl, device, precision="fp32"):
        return next((r for r in rows if r["workload"] == "forward" and r["impl"] == impl and r["device"] == device
                     and r["precision"] == precision and r["params"].get("T") == 1024 and r["params"].get("B") == 1
                     and r["params"].get("size") == "124M" and "median_s" in r), None)

    result = []
    for device in ("cpu", "cuda"):
        ours = find("torch", device)
        for peer in ("torch-sdpa", "hf"):
            other = find(peer, device)
            if ours and other:
                result.append({"goal": f"torch 124M forward (B=1, T=1024, {device}) no slower than {peer} (median)",
                               "reached": ratio_text("torch", ours, peer, other),
                               "met": ours["median_s"] <= other["median_s"]})
        bf16 = find("torch", device, "bf16")
        if ours and bf16:
            result.append({"goal": f"torch 124M forward (B=1, T=1024, {device}): bf16 autocast faster than fp32",
                           "reached": ratio_text("fp32", ours, "bf16", bf16),
                           "met": bf16["median_s"] <= ours["median_s"]})
    return result
