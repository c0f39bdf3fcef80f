"""The config is framework-neutral: one definition, in ``numpy_gpt.config``, serves both packages."""

from numpy_gpt.config import *  # noqa: F401,F403
from numpy_gpt.config import __all__  # noqa: F401
