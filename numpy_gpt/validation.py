"""The checks at the public boundaries, one set of messages: framework-neutral, defined once in
``gpt_common.validation`` and re-exported here, as in the other twin, so the two packages cannot disagree."""

from gpt_common.validation import *  # noqa: F403
from gpt_common.validation import __all__  # noqa: F401
