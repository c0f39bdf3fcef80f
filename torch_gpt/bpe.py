"""BPE vocabularies: the ranks-file format, GPT-2's byte alphabet, training: framework-neutral, defined once in
``gpt_common.bpe`` and re-exported here, as in the other twin, so the two packages cannot disagree."""

from gpt_common.bpe import *  # noqa: F403
from gpt_common.bpe import __all__  # noqa: F401
