"""FLOP and byte counts for every workload, from the shapes alone.

Conventions: a multiply-add is 2 FLOPs; attention is counted dense (the full
T x T scores, as both twins compute them and mask afterwards, even though a
causal kernel such as torch's SDPA may skip the masked half); elementwise
steps count one FLOP per element per operation, with tanh and exp counted as
one. Bytes are the least a call must move: its inputs, weights and outputs,
each once, at 4 bytes per float32 value.
"""

from __future__ import annotations

from gpt_common.config import GPTConfig

FLOAT = 4  # bytes per float32 value

LAYER_NORM_PER_ELEMENT = 7  # mean, subtract, square, mean, divide, scale, shift
GELU_PER_ELEMENT = 9  # x*x*x (2), *a, +x, *c, tanh, +1, *0.5, *x
SOFTMAX_PER_ELEMENT = 5  # max, subtract, exp, sum, divide


def linear(rows: int, d_in: int, d_out: int, bias: bool = True) -> float:
    return 2.0 * rows * d_in * d_out + (rows * d_out if bias else 0)


def attention_core(batch: int, heads: int, tokens: int, head_dim: int) -> float:
    """Scale Q, Q K^T, mask, softmax, weights @ V, for every head."""
    scores = batch * heads * tokens * tokens
    return 2.0 * 2.0 * scores * head_dim + (SOFTMAX_PER_ELEMENT + 1) * scores + batch * heads * tokens * head_dim


def multi_head_attention(batch: int, tokens: int, d_model: int, heads: int, qkv_bias: bool = False) -> float:
    rows = batch * tokens
    projections = 3 * linear(rows, d_model, d_model, qkv_bias) + linear(rows, d_model, d_model)
    return projections + attention_core(batch, heads, tokens, d_model // heads)


def attention_wrapper(batch: int, tokens: int, d_in: int, d_out: int, heads: int) -> float:
    """``heads`` separate CausalAttention modules, each projecting to d_out, then a concatenation."""
    return heads * (3 * linear(batch * tokens, d_in, d_out, False) + attention_core(batch, 1, tokens, d_out))


def layer_norm(rows: int, width: int) -> float:
    return float(LAYER_NORM_PER_ELEMENT * rows * width)


def gelu(elements: int) -> float:
    return float(GELU_PER_ELEMENT * elements)


def feed_forward(rows: int, width: int) -> float:
    return linear(rows, width, 4 * width) + gelu(rows * 4 * width) + linear(rows, 4 * width, width)


def block(cfg: GPTConfig, batch: int, tokens: int) -> float:
    rows = batch * tokens
    return (
        2 * layer_norm(rows, cfg.emb_dim)
        + multi_head_attention(batch, tokens, cfg.emb_dim, cfg.n_heads, cfg.qkv_bias)
        + feed_forward(rows, cfg.emb_dim)
        + 2.0 * rows * cfg.emb_dim  # the two residual additions
    )


def model_forward(cfg: GPTConfig, batch: int, tokens: int) -> float:
    """Embeddings, all blocks, final norm and the (B, T, V) output head."""
    rows = batch * tokens
    return (
        rows * cfg.emb_dim
        + cfg.n_layers * block(cfg, batch, tokens)
        + layer_norm(rows, cfg.emb_dim)
        + linear(rows, cfg.emb_dim, cfg.vocab_size, bias=False)
    )


def block_weights(cfg: GPTConfig) -> int:
    """Parameters of one transformer block (values, not bytes)."""
    c = cfg.emb_dim
    qkv = 3 * c * c + (3 * c if cfg.qkv_bias else 0)
    return qkv + c * c + c + 2 * (4 * c * c) + 4 * c + c + 4 * c  # + out_proj, FFN, two LayerNorms


def model_weights(cfg: GPTConfig) -> int:
    c = cfg.emb_dim
    return (cfg.vocab_size + cfg.context_length) * c + cfg.n_layers * block_weights(cfg) + 2 * c + cfg.vocab_size * c


def model_bytes(cfg: GPTConfig, batch: int, tokens: int) -> float:
    """Token ids in (int64), all weights, logits out."""
    return 8.0 * batch * tokens + FLOAT * (model_weights(cfg) + batch * tokens * cfg.vocab_size)
