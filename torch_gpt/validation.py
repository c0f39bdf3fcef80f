"""Boundary checks are framework-neutral: one definition, in ``numpy_gpt.validation``, so errors read the same."""

from numpy_gpt.validation import *  # noqa: F401,F403
from numpy_gpt.validation import __all__  # noqa: F401
