"""The peers users compare us with, on the same weights: Hugging Face's ``GPT2LMHeadModel`` and nanoGPT's attention.

- ``hf``: ``transformers``' GPT-2, loaded with ``from_pretrained`` from a Hugging Face-layout
  checkpoint the harness writes from the NumPy model (``hf_checkpoint.write_gpt2_checkpoint``),
  offline. Skipped when ``transformers`` is not installed.
- ``torch-sdpa``: our torch model with each block's attention swapped for
  ``F.scaled_dot_product_attention(is_causal=True)`` (nanoGPT's ``model.py`` computation): the same
  modules and weights, only the softmax(Q K^T) V step differs.
- ``nanogpt``: the train step written nanoGPT's way (Karpathy's ``model.py`` and ``train.py``): one fused
  ``c_attn`` projection, ``nn.LayerNorm``, ``F.scaled_dot_product_attention``, ``F.cross_entropy`` and
  ``torch.optim.AdamW(fused=True)``, on the twin's weights (GELU in GPT-2's tanh form, which nanoGPT's
  ``nn.GELU()`` is not, so that it computes the same function).

Both are validated against the NumPy reference like every other entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .bench_components import sdpa_attention
from .hf_checkpoint import write_gpt2_checkpoint

__all__ = ["hf_available", "hf_model", "hf_logits", "hf_generate", "sdpa_forward", "NanoGPT", "nanogpt_step"]


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def hf_model(np_model):
    """``transformers.GPT2LMHeadModel`` with ``np_model``'s weights (through a real GPT-2 checkpoint), in eval mode."""
    from transformers import GPT2LMHeadModel

    with tempfile.TemporaryDirectory() as directory:
        write_gpt2_checkpoint(np_model, Path(directory))
        model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True)
    return model.eval()


def hf_logits(model, idx: torch.Tensor) -> torch.Tensor:
    return model(idx, use_cache=False).logits


def hf_generate(model, prompt, new_tokens: int, use_cache: bool):
    """Greedy ``generate`` of exactly ``new_tokens`` tokens, as our generation workloads run; ids as NumPy."""
    with torch.inference_mode():
        ids = torch.from_numpy(prompt)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, use_cache=use_cache, pad_token_id=0)
    return out.numpy()


def sdpa_forward(model, in_idx: torch.Tensor) -> torch.Tensor:
    """``torch_gpt.GPTModel.forward`` with ``F.scaled_dot_product_attention`` in every block (eval mode: no dropout)."""
    positions = torch.arange(in_idx.shape[1], device=in_idx.device)
    x = model.tok_emb(in_idx) + model.pos_emb(positions)  # (B, T, C)
    for block in model.trf_blocks:
        x = x + sdpa_attention(block.att, block.norm1(x))
        x = x + block.ff(block.norm2(x))
    return model.out_head(model.final_norm(x))  # (B, T, V)


class NanoBlock(nn.Module):
    """nanoGPT's ``Block``: x + attn(ln_1(x)), then x + mlp(ln_2(x)), q, k, v from one (C, 3C) matmul."""

    def __init__(self, emb_dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1, self.ln_2 = nn.LayerNorm(emb_dim), nn.LayerNorm(emb_dim)
        self.c_attn, self.c_proj = nn.Linear(emb_dim, 3 * emb_dim), nn.Linear(emb_dim, emb_dim)
        self.c_fc, self.mlp_proj = nn.Linear(emb_dim, 4 * emb_dim), nn.Linear(4 * emb_dim, emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(channels, dim=2)
        q, k, v = (t.view(batch, tokens, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(batch, tokens, channels)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class NanoGPT(nn.Module):
    """nanoGPT's ``GPT`` holding a ``torch_gpt.GPTModel``'s weights (an untied head, as the twin's)."""

    def __init__(self, twin):
        super().__init__()
        cfg = twin.cfg
        self.wte, self.wpe = nn.Embedding(cfg.vocab_size, cfg.emb_dim), nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.h = nn.ModuleList(NanoBlock(cfg.emb_dim, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.emb_dim)
        self.lm_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        table = self.names(twin)
        self.twin_names = {name: table[name] for name, _ in twin.named_parameters()}  # in the twin's order
        with torch.no_grad():
            for ours, theirs in self.twin_names.items():
                self.get_parameter(theirs[0])[theirs[1]].copy_(twin.get_parameter(ours))
            for block in self.h:
                if not cfg.qkv_bias:
                    block.c_attn.bias.zero_().requires_grad_(False)  # the twin has none: zeros compute the same

    def names(self, twin) -> dict[str, tuple[str, slice]]:
        """The twin's parameter name -> (this model's parameter, the slice of it that holds the same values)."""
        c, whole = twin.cfg.emb_dim, slice(None)
        table = {"tok_emb.weight": ("wte.weight", whole), "pos_emb.weight": ("wpe.weight", whole),
                 "final_norm.scale": ("ln_f.weight", whole), "final_norm.shift": ("ln_f.bias", whole),
                 "out_head.weight": ("lm_head.weight", whole)}
        block = {"norm1.scale": "ln_1.weight", "norm1.shift": "ln_1.bias", "norm2.scale": "ln_2.weight",
                 "norm2.shift": "ln_2.bias", "att.out_proj.weight": "c_proj.weight", "att.out_proj.bias": "c_proj.bias",
                 "ff.layers.0.weight": "c_fc.weight", "ff.layers.0.bias": "c_fc.bias",
                 "ff.layers.2.weight": "mlp_proj.weight", "ff.layers.2.bias": "mlp_proj.bias"}
        for i in range(twin.cfg.n_layers):
            table.update({f"trf_blocks.{i}.{ours}": (f"h.{i}.{theirs}", whole) for ours, theirs in block.items()})
            for j, name in enumerate(("W_query", "W_key", "W_value")):
                for kind in ("weight", "bias") if twin.cfg.qkv_bias else ("weight",):
                    table[f"trf_blocks.{i}.att.{name}.{kind}"] = (f"h.{i}.c_attn.{kind}", slice(j * c, (j + 1) * c))
        return table

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def nanogpt_step(model: NanoGPT, optimizer, idx: torch.Tensor, targets: torch.Tensor, fingerprint):
    """nanoGPT's train step (forward, ``F.cross_entropy``, backward, AdamW); returns ``fingerprint(loss, grads)``
    of the gradients by the twin's names and in its order, taken before the update."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(idx)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    grads = {ours: model.get_parameter(theirs).grad[part] for ours, (theirs, part) in model.twin_names.items()}
    result = fingerprint(loss.item(), grads)
    optimizer.step()
    return result
