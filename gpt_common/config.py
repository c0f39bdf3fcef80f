"""The model's hyper-parameters: one frozen, validated config shared by both packages.

Framework-neutral: ``numpy_gpt.config`` and ``torch_gpt.config`` re-export this module, so the two
implementations can never disagree about what a config means.

The keys are the book's (Raschka, "Build a Large Language Model (From Scratch)"); a plain dict with
exactly these keys is accepted wherever a config is, and a config can be read
like that dict (``cfg["emb_dim"]``, ``dict(cfg)``, ``{**cfg}``). Every command names a config the same way,
through ``resolve_config``: a name in ``NAMED_CONFIGS`` or a JSON file of these keys.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .validation import as_int, is_real

__all__ = [
    "GPTConfig",
    "ConfigLike",
    "as_config",
    "GPT_CONFIG_124M",
    "GPT_CONFIG_355M",
    "GPT_CONFIG_774M",
    "GPT_CONFIG_1558M",
    "GPT_CONFIG_SMALL",
    "GPT_CONFIG_TINY",
    "PRESETS",
    "NAMED_CONFIGS",
    "resolve_config",
    "weights_bytes",
]


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
            object.__setattr__(self, name, as_int(name, getattr(self, name), 1))  # np.int64(768) becomes 768
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"emb_dim must be divisible by n_heads, got emb_dim={self.emb_dim}, n_heads={self.n_heads}"
            )
        rate = self.drop_rate
        if not is_real(rate) or not 0.0 <= rate < 1.0:
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


def weights_bytes(cfg: GPTConfig, itemsize: int) -> int:
    """Bytes of a model's weights, untied head included: V C + T_max C + L (12 C^2 + 13 C) + 2 C + V C (+ 3 L C)."""
    C, L = cfg.emb_dim, cfg.n_layers
    block = 12 * C * C + 13 * C + (3 * C if cfg.qkv_bias else 0)
    return itemsize * (2 * cfg.vocab_size * C + cfg.context_length * C + L * block + 2 * C)


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

# A model that trains in minutes on two cores (``gpt_cli train``'s default): GPT-2's tokenizer, 4 layers of width 128.
GPT_CONFIG_SMALL = GPTConfig(vocab_size=50257, context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.1)
# Small enough that every benchmark workload runs in milliseconds (``--quick``), with more than one head and layer.
GPT_CONFIG_TINY = GPTConfig(vocab_size=512, context_length=64, emb_dim=64, n_heads=4, n_layers=2)

# Every name a config goes by, in every command: GPT-2's published names, their sizes, and the two small ones.
NAMED_CONFIGS: Mapping[str, GPTConfig] = types.MappingProxyType({
    **PRESETS,
    "124M": GPT_CONFIG_124M,
    "355M": GPT_CONFIG_355M,
    "774M": GPT_CONFIG_774M,
    "1558M": GPT_CONFIG_1558M,
    "small": GPT_CONFIG_SMALL,
    "tiny": GPT_CONFIG_TINY,
})


def resolve_config(spec: str | ConfigLike, flag: str = "config") -> GPTConfig:
    """The one resolver: a name in ``NAMED_CONFIGS``, a JSON file of the book's keys, a GPTConfig or the book's dict.

    ``flag`` names the user's own option (``--config``, ``--sizes``) in every error.
    """
    if not isinstance(spec, str):
        return as_config(spec)
    if spec in NAMED_CONFIGS:
        return NAMED_CONFIGS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{flag} must be one of {', '.join(NAMED_CONFIGS)} or a JSON file, got {spec!r}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{flag} {spec} is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} {spec} is not valid JSON: {err}") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{flag} {spec} must hold a JSON object of config keys, got {type(values).__name__}")
    try:
        return GPTConfig.from_dict(values)
    except ValueError as err:
        raise ValueError(f"{flag} {spec}: {err}") from None
