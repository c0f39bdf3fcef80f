"""GPT-2 in plain NumPy: the readable reference implementation.

Shape legend used throughout: B batch, T tokens, C = emb_dim, H heads,
D = C / H (head width), V = vocab_size.
"""

from .activations import GELU, softmax
from .attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention,
    SimplifiedSelfAttention,
    scaled_attention_weights,
)
from .block import TransformerBlock
from .config import (
    GPT_CONFIG_124M,
    GPT_CONFIG_355M,
    GPT_CONFIG_774M,
    GPT_CONFIG_1558M,
    PRESETS,
    GPTConfig,
    as_config,
)
from .feed_forward import FeedForward
from .generate import generate_text_simple
from .layer_norm import LayerNorm
from .layers import Dropout, Embedding, Linear, Module, ModuleList, Sequential
from .model import GPTModel, ParameterCount, count_parameters

__all__ = [
    "GELU", "softmax",
    "SimplifiedSelfAttention", "SelfAttention", "CausalAttention", "MultiHeadAttentionWrapper",
    "MultiHeadAttention", "scaled_attention_weights",
    "TransformerBlock",
    "GPTConfig", "as_config", "GPT_CONFIG_124M", "GPT_CONFIG_355M", "GPT_CONFIG_774M", "GPT_CONFIG_1558M", "PRESETS",
    "FeedForward", "generate_text_simple", "LayerNorm",
    "Module", "ModuleList", "Sequential", "Linear", "Embedding", "Dropout",
    "GPTModel", "ParameterCount", "count_parameters",
]

# Checkpoints, the KV cache, sampling and cached generation.
from .checkpoint import load_pretrained, save_pretrained
from .generate import generate, generate_stream
from .kv_cache import KVCache, LayerCache
from .sampling import SamplingParams

__all__ += [
    "load_pretrained", "save_pretrained", "generate", "generate_stream", "KVCache", "LayerCache", "SamplingParams",
]

# The loss, its gradient and the book's loss helpers.
from .loss import calc_loss_batch, calc_loss_loader, cross_entropy, loss_and_grads  # noqa: E402

__all__ += ["cross_entropy", "calc_loss_batch", "calc_loss_loader", "loss_and_grads"]

# Training: AdamW, the book's loops (chapter 5, appendix D) and the Trainer behind ``gpt_cli train``.
from . import optim, tokenizer, train  # noqa: E402
from .optim import AdamW, clip_grad_norm_  # noqa: E402

__all__ += ["optim", "tokenizer", "train", "AdamW", "clip_grad_norm_"]
