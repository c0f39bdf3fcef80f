"""Workloads with gradients: the train step (forward + loss + backward + AdamW), AdamW alone, and each
component's forward + backward.

``train-step``: ``numpy_gpt.loss_and_grads`` (the hand-written backward) and
``numpy_gpt.AdamW.step`` against ``torch_gpt.loss_and_grads`` (autograd) and
``torch.optim.AdamW`` (fused, as the torch trainer runs it), in fp32 and under bf16 autocast, and
against the same step written nanoGPT's way (``peers.NanoGPT``), on the same weights and batch, at GPT-2
124M with B=4, T=256 by default, in training mode with dropout off (so both sides
compute the same function). FLOPs are counted the standard way (Kaplan et al.
2020; PaLM appendix B): 6 N + 12 L T C per token, N the weights that take part in
matmuls (blocks and the output head; the embedding lookups are not matmuls).

Before timing, ``build`` compares every parameter's gradient across the two and
puts the worst relative errors into the row's params (``grad_check``). The harness
validates a fingerprint: the loss and the first entries of every gradient.

``adamw``: one optimizer step over GPT-2 124M's parameters with fixed gradients.
It reads p, g, m, v and writes p, m, v: 7 float32 streams, 28 bytes per parameter,
so the report's bandwidth fraction (against the copy ceiling of the same run) is
the distance from the memory-bandwidth bound. torch runs its default CPU path
(a loop of per-tensor kernels) and ``fused=True``.

``<component>-backward``: one forward that keeps activations plus one backward
with a fixed upstream gradient, at the component shapes (B=8, T=1024); torch runs
its forward and ``torch.autograd.grad`` w.r.t. the input and every parameter.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

import numpy_gpt
import torch_gpt
from gpt_common.checkpoint import state_shapes
from numpy_gpt.config import GPTConfig
from torch_gpt.optim import fastest_path

from . import flops, peers
from .entries import Selection, numpy_entry, torch_devices, twin_of, written_out
from .harness import Entry, Workload

__all__ = ["BACKWARD_NAMES", "TRAIN_NAMES", "train_workloads", "adamw_workloads", "backward_workloads", "goals",
           "train_step_flops"]

BACKWARD_NAMES = ["attention-mha-backward", "layernorm-backward", "gelu-backward", "feedforward-backward",
                  "block-backward"]
TRAIN_NAMES = ["train-step", "adamw"]
FINGERPRINT = 4  # leading entries of each gradient in the validated output


def train_step_flops(cfg: GPTConfig, batch: int, tokens: int) -> float:
    """(6 N + 12 L T C) per token; N = matmul weights (the blocks' and the head's)."""
    matmul_weights = cfg.n_layers * flops.block_weights(cfg) + cfg.vocab_size * cfg.emb_dim
    return float(batch * tokens * (6 * matmul_weights + 12 * cfg.n_layers * tokens * cfg.emb_dim))


def _fingerprint(loss: float, grads: dict) -> np.ndarray:
    """The loss and each gradient's first entries, one flat float32 vector (what the harness compares)."""
    parts = [np.asarray([loss], np.float32)]
    parts += [np.asarray(g.detach().cpu() if isinstance(g, torch.Tensor) else g, np.float32).ravel()[:FINGERPRINT]
              for g in grads.values()]
    return np.concatenate(parts)


def grad_check(np_grads: dict, torch_grads: dict) -> dict:
    """Per parameter, ||g_np - g_torch|| / ||g_torch|| (norm-wise) and the worst one: the float32 agreement at scale."""
    errors = {}
    for key, grad in np_grads.items():
        expected = torch_grads[key].detach().cpu().numpy().astype(np.float64)
        errors[key] = float(np.linalg.norm(grad.astype(np.float64) - expected) / max(np.linalg.norm(expected), 1e-30))
    worst = max(errors, key=errors.get)
    return {"worst_param": worst, "worst_rel_norm_error": errors[worst],
            "median_rel_norm_error": float(np.median(list(errors.values()))), "params_checked": len(errors)}


def _torch_step_entries(torch_model, idx, targets, selection: Selection) -> list[Entry]:
    """torch's train step on every selected device (autograd on: not under inference mode), with the trainer's
    AdamW (fused where torch has it); where torch is timed, also under bf16 autocast, nanoGPT's way
    (``peers.NanoGPT``) and, with ``--compile``, ``torch.compile`` of the twin."""
    entries = []
    for device, timed in torch_devices(selection):
        model = torch_model if device == "cpu" else _on(device, torch_model)
        idx_d, targets_d = torch.from_numpy(idx).to(device), torch.from_numpy(targets).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1, **fastest_path(device))
        step = lambda m=model, o=optimizer, i=idx_d, t=targets_d: _torch_step(m, o, i, t)
        entries.append(Entry("torch", device, "fp32", step, timed))
        if not timed:
            continue
        if device == "cpu" or torch.cuda.is_bf16_supported():
            entries.append(Entry("torch", device, "bf16", lambda s=step, d=device: _bf16(s, d), True))
        entries.append(_nanogpt_entry(model, device, idx_d, targets_d))
        entries.append(_own_copy_entry("torch-written", model, device, idx_d, targets_d, written=True))
        if selection.compile:
            entries.append(_own_copy_entry("torch-compile", model, device, idx_d, targets_d, compiled=True))
    return entries


def _own_copy_entry(impl: str, model, device: str, idx, targets, *, compiled: bool = False,
                    written: bool = False) -> Entry:
    """The twin's step on a copy of its weights with an optimizer of its own, so the other entries' steps never
    move what it validates: under ``torch.compile`` (``compiled``), or on its written-out paths (``written``:
    tiled attention, the written LayerNorm and GELU)."""
    copy = _on(device, model)
    optimizer = torch.optim.AdamW(copy.parameters(), lr=LR, weight_decay=0.1, **fastest_path(device))
    run = torch.compile(copy) if compiled else copy

    def step():
        with written_out(copy) if written else contextlib.nullcontext():
            return _torch_step(run, optimizer, idx, targets)
    return Entry(impl, device, "fp32", step, True)


def _bf16(step, device: str):
    with torch.autocast(device, dtype=torch.bfloat16):
        return step()


def _nanogpt_entry(model, device: str, idx, targets) -> Entry:
    """The same step written nanoGPT's way, on a copy of the twin's weights, with fused AdamW."""
    nano = peers.NanoGPT(model).to(device).train()
    optimizer = torch.optim.AdamW([p for p in nano.parameters() if p.requires_grad], lr=LR, weight_decay=0.1,
                                  **fastest_path(device))
    return Entry("nanogpt", device, "fp32", lambda: peers.nanogpt_step(nano, optimizer, idx, targets, _fingerprint),
                 True)


LR = 1e-6  # small: the timed repetitions keep stepping the same weights


def _torch_step(model, optimizer, idx, targets) -> np.ndarray:
    """Forward, backward and AdamW; the fingerprint is taken from the gradients, before the update."""
    optimizer.zero_grad()
    loss = torch_gpt.cross_entropy(model(idx), targets)
    loss.backward()
    fingerprint = _fingerprint(loss.item(), {name: p.grad for name, p in model.named_parameters()})
    optimizer.step()
    return fingerprint


def _numpy_step(model, optimizer, idx, targets) -> np.ndarray:
    loss, grads = numpy_gpt.loss_and_grads(model, idx, targets)
    fingerprint = _fingerprint(loss, grads)
    optimizer.step(grads)
    return fingerprint


def _on(device: str, torch_model):
    import copy

    return copy.deepcopy(torch_model).to(device)


def train_workloads(cfg: GPTConfig, size: str, batch: int, tokens: int, selection: Selection) -> list[Workload]:
    """The train step at one shape (dropout off, training mode)."""
    tokens = min(tokens, cfg.context_length)

    def build():
        np_model = numpy_gpt.GPTModel(cfg, seed=123).train()
        torch_model = twin_of(np_model, torch_gpt.GPTModel(cfg)).train()
        rng = np.random.default_rng(0)
        idx = rng.integers(0, cfg.vocab_size, (batch, tokens))
        targets = rng.integers(0, cfg.vocab_size, (batch, tokens))
        _, np_grads = numpy_gpt.loss_and_grads(np_model, idx, targets)
        _, torch_grads = torch_gpt.loss_and_grads(torch_model, idx, targets)
        params["grad_check"] = grad_check(np_grads, torch_grads)
        del np_grads, torch_grads
        optimizer = numpy_gpt.AdamW(np_model.named_parameters(), lr=LR, weight_decay=0.1)
        numpy_run = numpy_entry(lambda: _numpy_step(np_model, optimizer, idx, targets), selection)
        return [numpy_run] + _torch_step_entries(torch_model, idx, targets, selection)

    params = {"size": size, "B": batch, "T": tokens}
    weights = flops.model_weights(cfg)
    # weights in, grads out, logits, and AdamW's 7 streams
    byte_count = flops.FLOAT * (3 * weights + 2 * batch * tokens * cfg.vocab_size + 7 * weights)
    step_flops = train_step_flops(cfg, batch, tokens) + ADAMW_FLOPS * weights
    return [Workload("train", "train-step", params, step_flops, byte_count, build)]


ADAMW_FLOPS = 16  # per parameter: decay 1, moments 5, sqrt / scale / eps 3, divide and update 3, bias terms ~4


def adamw_workloads(cfg: GPTConfig, size: str, selection: Selection) -> list[Workload]:
    """One AdamW step over every parameter of ``cfg``, gradients fixed (all ones / 1000)."""

    def build():
        np_model = numpy_gpt.GPTModel(cfg, seed=123)
        grads = {name: np.full(p.shape, 1e-3, p.dtype) for name, p in np_model.named_parameters()}
        np_opt = numpy_gpt.AdamW(np_model.named_parameters(), lr=LR, weight_decay=0.1)
        torch_model = twin_of(np_model, torch_gpt.GPTModel(cfg))
        entries = [numpy_entry(lambda: _numpy_adamw(np_model, np_opt, grads), selection)]
        if selection.wants("torch", "cpu"):
            for fused in (False, True):
                model = torch_model if not fused else _on("cpu", torch_model)
                for name, p in model.named_parameters():
                    p.grad = torch.from_numpy(grads[name].copy())
                opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1, fused=fused)
                entries.append(Entry("torch-fused" if fused else "torch", "cpu", "fp32",
                                     lambda m=model, o=opt: _torch_adamw(m, o), True))
        return entries

    weights = sum(int(np.prod(shape)) for shape in state_shapes(cfg).values())
    return [Workload("train", "adamw", {"size": size, "params": weights}, ADAMW_FLOPS * weights,
                     7 * flops.FLOAT * weights, build)]


def _numpy_adamw(model, optimizer, grads) -> np.ndarray:
    optimizer.step(grads)
    return np.asarray(model.tok_emb.weight[0, :FINGERPRINT], np.float32)


def _torch_adamw(model, optimizer) -> np.ndarray:
    optimizer.step()
    return model.tok_emb.weight[0, :FINGERPRINT].detach().numpy().astype(np.float32)


def _backward_entries(np_module, torch_module, x: np.ndarray, dout: np.ndarray, selection: Selection):
    def numpy_run():
        np_module.zero_grad()
        with np_module.keeping_activations():
            np_module(x)
        dx = np_module.backward(dout)
        np_module.zero_grad()
        return dx

    def torch_run(module, x_t, dout_t):
        x_t = x_t.detach().requires_grad_(True)
        grads = torch.autograd.grad(module(x_t), [x_t, *module.parameters()], dout_t)
        return grads[0]

    entries = [numpy_entry(numpy_run, selection)]
    for device, timed in torch_devices(selection):
        module = torch_module if device == "cpu" else _on(device, torch_module)
        x_t, dout_t = torch.from_numpy(x).to(device), torch.from_numpy(dout).to(device)
        entries.append(Entry("torch", device, "fp32", lambda m=module, a=x_t, d=dout_t: torch_run(m, a, d), timed))
    return entries


def backward_workloads(cfg: GPTConfig, batch: int, tokens: int, selection: Selection, names=BACKWARD_NAMES):
    """Forward + backward of each component; FLOPs 3x the forward's (the backward's two matmuls per forward one)."""
    c, h = cfg.emb_dim, cfg.n_heads
    rows, shape, hidden = batch * tokens, (batch, tokens, c), (batch, tokens, 4 * c)
    params = {"B": batch, "T": tokens, "C": c, "H": h}
    act = flops.FLOAT * rows * c
    specs = {
        "attention-mha-backward": (lambda: numpy_gpt.MultiHeadAttention(c, c, cfg.context_length, 0.0, h, rng=0),
                                   lambda: torch_gpt.MultiHeadAttention(c, c, cfg.context_length, 0.0, h), shape,
                                   flops.multi_head_attention(batch, tokens, c, h), 4 * c * c),
        "layernorm-backward": (lambda: numpy_gpt.LayerNorm(c), lambda: torch_gpt.LayerNorm(c), shape,
                               flops.layer_norm(rows, c), 2 * c),
        "gelu-backward": (numpy_gpt.GELU, torch_gpt.GELU, hidden, flops.gelu(rows * 4 * c), 0),
        "feedforward-backward": (lambda: numpy_gpt.FeedForward(cfg, rng=0), lambda: torch_gpt.FeedForward(cfg),
                                 shape, flops.feed_forward(rows, c), 8 * c * c),
        "block-backward": (lambda: numpy_gpt.TransformerBlock(cfg, rng=0), lambda: torch_gpt.TransformerBlock(cfg),
                           shape, flops.block(cfg, batch, tokens), flops.block_weights(cfg)),
    }
    result = []
    for name in names:
        make_numpy, make_torch, in_shape, forward_flops, weights = specs[name]

        def build(make_numpy=make_numpy, make_torch=make_torch, in_shape=in_shape):
            np_module = make_numpy().eval()
            torch_module = twin_of(np_module, make_torch())
            rng = np.random.default_rng(0)
            x = rng.standard_normal(in_shape, dtype=np.float32)
            dout = rng.standard_normal(in_shape, dtype=np.float32)
            return _backward_entries(np_module, torch_module, x, dout, selection)

        byte_count = 3 * act * (4 if name == "gelu-backward" else 1) + 2 * flops.FLOAT * weights
        result.append(Workload("backward", name, params, 3.0 * forward_flops, byte_count, build))
    return result


def _find(rows, workload, impl, device="cpu", precision="fp32"):
    wanted = (workload, impl, device, precision)
    return next((r for r in rows if (r["workload"], r["impl"], r["device"], r["precision"]) == wanted
                 and "median_s" in r), None)


def goals(rows: list[dict]) -> list[dict]:
    """The backward issue's targets: speed and memory against torch CPU, ceiling fraction, gradient agreement."""
    numpy_row, torch_row = _find(rows, "train-step", "numpy"), _find(rows, "train-step", "torch")
    if not numpy_row or not torch_row:
        return speed_goals(rows)
    shape = f"{numpy_row['params']['size']}, B={numpy_row['params']['B']}, T={numpy_row['params']['T']}"
    ratio = numpy_row["median_s"] / torch_row["median_s"]
    result = [{
        "goal": f"NumPy train step ({shape}) at most 1.3x torch CPU, same run (median)",
        "reached": f"numpy {numpy_row['median_s']:.2f} s (min {numpy_row['min_s']:.2f}), "
                   f"torch {torch_row['median_s']:.2f} s (min {torch_row['min_s']:.2f}): numpy/torch = {ratio:.2f} "
                   f"(min/min {numpy_row['min_s'] / torch_row['min_s']:.2f})",
        "met": ratio <= 1.3,
    }]
    if "flop_fraction" in numpy_row:
        result.append({
            "goal": f"NumPy train step ({shape}) at >= 55% of the NumPy matmul ceiling (median)",
            "reached": f"{numpy_row['gflops_per_s']:.0f} GFLOP/s = {100 * numpy_row['flop_fraction']:.0f}% of "
                       f"{numpy_row['ceiling']} ({numpy_row['flops'] / 1e9:.0f} GFLOP per step)",
            "met": numpy_row["flop_fraction"] >= 0.55,
        })
    memory = [row.get("memory", {}).get("delta_mb") for row in (numpy_row, torch_row)]
    if None not in memory and memory[1] > 0:
        result.append({
            "goal": f"NumPy train step ({shape}) peak memory within 1.5x torch's (RSS high-water above resident)",
            "reached": f"numpy +{memory[0]:.0f} MB, torch +{memory[1]:.0f} MB: {memory[0] / memory[1]:.2f}x",
            "met": memory[0] <= 1.5 * memory[1],
        })
    result += _adamw_goals(rows) + speed_goals(rows)
    check = numpy_row["params"].get("grad_check")
    if check:
        result.append({
            "goal": f"float32 gradients ({shape}) agree with torch's: worst per-parameter relative error (norm-wise)",
            "reached": f"worst {check['worst_rel_norm_error']:.2e} ({check['worst_param']}), median "
                       f"{check['median_rel_norm_error']:.2e} over {check['params_checked']} parameters",
            "met": check["worst_rel_norm_error"] < 1e-4,
        })
    return result


def _adamw_goals(rows: list[dict]) -> list[dict]:
    """The training issue's optimizer target: NumPy's AdamW step within 1.5x of the memory-bandwidth bound."""
    row = _find(rows, "adamw", "numpy")
    if not row or "bandwidth_fraction" not in row:
        return []
    torch_row, fused = _find(rows, "adamw", "torch"), _find(rows, "adamw", "torch-fused")
    others = "".join(f", {name} {r['median_s']:.3f} s" for name, r in (("torch", torch_row), ("torch fused", fused))
                     if r)
    bound_s = row["bytes"] / (row["gbytes_per_s"] / row["bandwidth_fraction"] * 1e9)
    return [{
        "goal": f"NumPy AdamW step ({row['params']['params'] / 1e6:.0f}M parameters) within 1.5x of the "
                "memory-bandwidth bound (7 float32 streams per parameter, the same run's copy ceiling)",
        "reached": f"numpy {row['median_s']:.3f} s (min {row['min_s']:.3f}) against a bound of {bound_s:.3f} s: "
                   f"{row['median_s'] / bound_s:.2f}x{others}",
        "met": row["median_s"] <= 1.5 * bound_s,
    }]


def ratio_text(name: str, row: dict, other_name: str, other: dict) -> str:
    """'name a s (min b), other c s (min d): name/other = median ratio (min/min ratio)': the issue's figures."""
    return (f"{name} {row['median_s']:.3f} s (min {row['min_s']:.3f}), {other_name} {other['median_s']:.3f} s "
            f"(min {other['min_s']:.3f}): {name}/{other_name} = {row['median_s'] / other['median_s']:.2f} "
            f"(min/min {row['min_s'] / other['min_s']:.2f})")


def speed_goals(rows: list[dict]) -> list[dict]:
    """Issue 17's train-step targets: torch's default no slower than nanoGPT's way; bf16 autocast >= 2x fp32."""
    result = []
    for device in ("cpu", "cuda"):
        torch_row = _find(rows, "train-step", "torch", device)
        params = torch_row["params"] if torch_row else {}
        shape = f"{params.get('size')}, B={params.get('B')}, T={params.get('T')}"
        nano, bf16 = _find(rows, "train-step", "nanogpt", device), _find(rows, "train-step", "torch", device, "bf16")
        if torch_row and nano:
            result.append({"goal": f"torch train step ({shape}, {device}) no slower than nanoGPT's way (median)",
                           "reached": ratio_text("torch", torch_row, "nanogpt", nano),
                           "met": torch_row["median_s"] <= nano["median_s"]})
        if torch_row and bf16:
            result.append({"goal": f"torch bf16-autocast train step ({shape}, {device}) >= 2x faster than fp32",
                           "reached": ratio_text("fp32", torch_row, "bf16", bf16),
                           "met": torch_row["median_s"] >= 2 * bf16["median_s"]})
    return result
