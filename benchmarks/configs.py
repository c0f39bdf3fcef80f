"""Model sizes for the benchmarks: the project's named configs (``gpt_common.config.resolve_config``), dropout off."""

from __future__ import annotations

from gpt_common.config import GPT_CONFIG_TINY, GPTConfig, resolve_config

__all__ = ["SIZES", "TINY", "config_for"]

SIZES = ("124M", "355M", "774M", "1558M")  # GPT-2's four, listed in --help; any name or JSON file works
TINY = GPT_CONFIG_TINY  # what --quick runs


def config_for(name: str) -> GPTConfig:
    """Any name ``resolve_config`` knows (``"124M"``, ``"gpt2-xl"``, ``"tiny"`` ...) or a JSON file.

    Dropout is off: benchmarks run in eval mode.
    """
    return resolve_config(name, "--sizes").replace(drop_rate=0.0)
