"""Model sizes by name: GPT-2's four configs, and the tiny one ``--quick`` uses."""

from __future__ import annotations

from gpt_common.config import GPT_CONFIG_124M, GPT_CONFIG_355M, GPT_CONFIG_774M, GPT_CONFIG_1558M, GPTConfig

__all__ = ["SIZES", "TINY", "config_for"]

SIZES = {"124M": GPT_CONFIG_124M, "355M": GPT_CONFIG_355M, "774M": GPT_CONFIG_774M, "1558M": GPT_CONFIG_1558M}

# Small enough that every workload runs in milliseconds, with more than one head and layer.
TINY = GPTConfig(vocab_size=512, context_length=64, emb_dim=64, n_heads=4, n_layers=2)


def config_for(name: str) -> GPTConfig:
    """``"124M"`` ... ``"1558M"`` (or ``"gpt2"`` ... ``"gpt2-xl"``) or ``"tiny"``.

    Dropout is off: benchmarks run in eval mode.
    """
    from gpt_common.config import PRESETS

    table = {**SIZES, **PRESETS, "tiny": TINY}
    if name not in table:
        raise ValueError(f"unknown size {name!r}; choose from {sorted(table)}")
    return table[name].replace(drop_rate=0.0)
