"""The transformer block: pre-norm attention and feed-forward, each wrapped in a residual connection."""

from typing import NamedTuple

import numpy as np

from .attention import MultiHeadAttention
from .config import ConfigLike, as_config
from .feed_forward import FeedForward
from .kv_cache import LayerCache
from .layer_norm import LayerNorm
from .layers import Dropout, DropoutSaved, Module, as_rng

__all__ = ["TransformerBlock", "BlockSaved"]


class BlockSaved(NamedTuple):
    """``drop_shortcut`` runs twice per forward: the block keeps each run's record, after attention and after
    the feed-forward (the sub-layers keep their own)."""

    drop_att: DropoutSaved | None
    drop_ff: DropoutSaved | None


class TransformerBlock(Module):
    """x + Drop(MHA(LN1(x))), then x + Drop(FFN(LN2(x))): GPT-2's pre-norm block (Radford et al., 2019).

    Normalising before each sub-layer (not after, as the 2017 transformer did)
    leaves the residual path an identity, which keeps deep stacks trainable.
    """

    def __init__(self, cfg: ConfigLike, *, rng=None, dtype=np.float32, init=True):
        super().__init__()
        cfg, rng = as_config(cfg), as_rng(rng)
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim,
            d_out=cfg.emb_dim,
            context_length=cfg.context_length,
            dropout=cfg.drop_rate,
            num_heads=cfg.n_heads,
            qkv_bias=cfg.qkv_bias,
            rng=rng,
            dtype=dtype,
            init=init,
        )
        self.ff = FeedForward(cfg, rng=rng, dtype=dtype, init=init)
        self.norm1 = LayerNorm(cfg.emb_dim, dtype=dtype)
        self.norm2 = LayerNorm(cfg.emb_dim, dtype=dtype)
        self.drop_shortcut = Dropout(cfg.drop_rate, rng=rng)

    def forward(
        self, x: np.ndarray, *, cache: LayerCache | None = None, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """``cache`` and ``mask`` go to the attention (see ``MultiHeadAttention.forward``)."""
        shortcut = x
        x = self.norm1(x)
        x = self.att(x, cache=cache, mask=mask)  # (B, T, C) -> (B, T, C)
        x = self.drop_shortcut(x)
        drop_att = self.drop_shortcut.take_saved(DropoutSaved)  # it runs again below: the block holds this run's
        x = x + shortcut  # residual around attention

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)  # (B, T, C) -> (B, T, C)
        x = self.drop_shortcut(x)
        drop_ff = self.drop_shortcut.take_saved(DropoutSaved)
        x = x + shortcut  # residual around the feed-forward
        self.save_for_backward(BlockSaved(drop_att, drop_ff))
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Each residual y = x + f(x) sends dy down both paths: dx = dy + f's backward of dy.

        The two sub-layers are undone in reverse; ``drop_shortcut`` ran twice, so each of its backwards
        gets its own run's record from the block's.
        """
        saved = self.saved_for_backward(BlockSaved)
        d_x = self.norm2.backward(self.ff.backward(self.drop_shortcut.backward(dout, saved.drop_ff)))
        d_x += dout  # the shortcut around the feed-forward; d_x is LayerNorm's fresh array
        d_att = self.norm1.backward(self.att.backward(self.drop_shortcut.backward(d_x, saved.drop_att)))
        d_att += d_x  # the shortcut around attention
        return d_att
