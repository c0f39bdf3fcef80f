"""The config (frozen, validated; accepts the book's dict): framework-neutral, defined once in
``gpt_common.config`` and re-exported here, as in the other twin, so the two packages cannot disagree."""

from gpt_common.config import *  # noqa: F403
from gpt_common.config import __all__  # noqa: F401
