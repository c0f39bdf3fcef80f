"""The framework spellings the reading site treats as equal: one table, shown on the index page.

A line pair counts as "spelling only" when the two lines become identical after
every torch spelling below is rewritten to its NumPy spelling on both sides.
"""

from __future__ import annotations

import re

# (NumPy spelling, torch spelling): longer entries first, so ``torch.Tensor`` is not read as ``torch.`` + ``Tensor``.
SPELLINGS: tuple[tuple[str, str], ...] = (
    ("import numpy as np", "import torch"),
    ("np.ndarray", "torch.Tensor"),
    ("np.random.Generator", "torch.Generator"),
    ("np.concatenate(", "torch.cat("),
    ("np.asarray(", "torch.as_tensor("),
    ("dtype=bool", "dtype=torch.bool"),
    ("np.", "torch."),
    ("axis=", "dim="),
    ("keepdims=", "keepdim="),
    (".swapaxes(", ".transpose("),
    (".reshape(", ".view("),
    (".astype(", ".to("),
    (".copy()", ".clone()"),
    (".size", ".numel()"),
)


def _pattern(spelling: str) -> re.Pattern:
    """``spelling`` as a literal, bounded where it starts or ends with a name character (``dim=`` is not ``ndim=``)."""
    start = r"(?<![\w.])" if spelling[0].isalnum() or spelling[0] == "_" else ""
    end = r"(?![\w.])" if spelling[-1].isalnum() or spelling[-1] == "_" else ""
    return re.compile(start + re.escape(spelling) + end)


_REWRITES = tuple((_pattern(torch_spelling), numpy_spelling) for numpy_spelling, torch_spelling in SPELLINGS)


def normalise(line: str) -> str:
    """``line`` with every torch spelling of the table written the NumPy way, and trailing blanks dropped."""
    for pattern, numpy_spelling in _REWRITES:
        line = pattern.sub(numpy_spelling, line)
    return line.rstrip()
