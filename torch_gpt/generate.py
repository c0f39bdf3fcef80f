"""Text generation: greedy decoding without a cache, as the seed first writes it."""

import torch

from .model import GPTModel, check_ids
from .validation import check_int_at_least

__all__ = ["generate_text_simple"]


@torch.no_grad()
def generate_text_simple(model: GPTModel, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Append argmax_v p(v | last context_size tokens) to each row, max_new_tokens times.

    Recomputes the whole (cropped) sequence every step; call ``model.eval()``
    first, or dropout makes the choice random. Returns (B, T + max_new_tokens).
    """
    check_int_at_least("max_new_tokens", max_new_tokens, 0)
    check_int_at_least("context_size", context_size, 1)
    idx = torch.as_tensor(idx)
    check_ids(idx[:, -context_size:] if idx.ndim == 2 else idx, model.cfg.vocab_size, model.cfg.context_length)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # (B, T) -> (B, min(T, context_size))
        logits = model(idx_cond)[:, -1, :]  # (B, V): only the last position predicts the next token
        idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1), first index on ties in both packages
        idx = torch.cat([idx, idx_next.to(idx.dtype)], dim=1)  # (B, T) -> (B, T + 1)
    return idx
