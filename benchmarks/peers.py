"""The peers users compare us with, on the same weights: Hugging Face's ``GPT2LMHeadModel`` and nanoGPT's attention.

- ``hf``: ``transformers``' GPT-2, loaded with ``from_pretrained`` from a Hugging Face-layout
  checkpoint the harness writes from the NumPy model (``hf_checkpoint.write_gpt2_checkpoint``),
  offline. Skipped when ``transformers`` is not installed.
- ``torch-sdpa``: our torch model with each block's attention swapped for
  ``F.scaled_dot_product_attention(is_causal=True)`` (nanoGPT's ``model.py`` computation): the same
  modules and weights, only the softmax(Q K^T) V step differs.

Both are validated against the NumPy reference like every other entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .bench_components import sdpa_attention
from .hf_checkpoint import write_gpt2_checkpoint

__all__ = ["hf_available", "hf_model", "hf_logits", "hf_generate", "sdpa_forward"]


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
