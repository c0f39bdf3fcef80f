"""The model's hyper-parameters: one frozen, validated config shared by both packages.

Framework-neutral: ``numpy_gpt.config`` and ``torch_gpt.config`` re-export this module, so the two
implementations can never disagree about what a config means.

The keys are the book's (Raschka, "Build a Large Language Model (From Scratch)"); a plain dict with
exactly these keys is accepted wherever a config is, and a config can be read
like that dict (``cfg["emb_dim"]``, ``dict(cfg)``, ``{**cfg}``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "GPTConfig",
    "ConfigLike",
    "as_config",
    "GPT_CONFIG_124M",
    "GPT_CONFIG_355M",
    "GPT_CONFIG_774M",
    "GPT_CONFIG_1558M",
    "PRESETS",
]


def _check_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass, and True as a layer count is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclasses.dataclass(frozen=True, eq=False)
class GPTConfig(Mapping):
    """GPT-2 shape: vocabulary V, context T_max, width C, H heads of D = C / H, L layers.

    ``drop_rate`` is used for the embedding, attention-weight and residual
    dropouts alike, as in GPT-2 (Radford et al., 2019) and the book.
    """

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_layers: int
    drop_rate: float = 0.0
    qkv_bias: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            _check_int(name, getattr(self, name), 1)
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"emb_dim must be divisible by n_heads, got emb_dim={self.emb_dim}, n_heads={self.n_heads}"
            )
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"drop_rate must be a number in [0, 1), got {rate!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"qkv_bias must be a bool, got {self.qkv_bias!r}")
        object.__setattr__(self, "drop_rate", float(rate))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GPTConfig:
        """Build from the book's dict; unknown or missing keys are errors, not ignored."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys are {names}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise ValueError(f"missing config keys {missing}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again), e.g. ``cfg.replace(drop_rate=0.0)``."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The book's plain dict."""
        return dataclasses.asdict(self)

    @property
    def head_dim(self) -> int:
        """D = C / H."""
        return self.emb_dim // self.n_heads

    # Mapping protocol, so code written against the book's dict keeps working.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))


ConfigLike = GPTConfig | Mapping[str, Any]


def as_config(cfg: ConfigLike) -> GPTConfig:
    """Accept a GPTConfig or the book's plain dict."""
    if isinstance(cfg, GPTConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return GPTConfig.from_dict(cfg)
    raise ValueError(f"config must be a GPTConfig or a dict, got {type(cfg).__name__}")


# The book's config, key for key. "124M" counts the output head as tied to the
# token embedding (as GPT-2 does); our separate head makes it 163,009,536.
GPT_CONFIG_124M = GPTConfig(
    vocab_size=50257, context_length=1024, emb_dim=768, n_heads=12, n_layers=12, drop_rate=0.1, qkv_bias=False
)
GPT_CONFIG_355M = GPT_CONFIG_124M.replace(emb_dim=1024, n_layers=24, n_heads=16)
GPT_CONFIG_774M = GPT_CONFIG_124M.replace(emb_dim=1280, n_layers=36, n_heads=20)
GPT_CONFIG_1558M = GPT_CONFIG_124M.replace(emb_dim=1600, n_layers=48, n_heads=25)

# Keyed by the names the GPT-2 checkpoints are published under.
PRESETS: Mapping[str, GPTConfig] = types.MappingProxyType({
    "gpt2": GPT_CONFIG_124M,
    "gpt2-medium": GPT_CONFIG_355M,
    "gpt2-large": GPT_CONFIG_774M,
    "gpt2-xl": GPT_CONFIG_1558M,
})
