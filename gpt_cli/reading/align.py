"""Rows pairing a NumPy file with its torch twin.

First the classes and functions (by qualified name, in order) pin the two files
together, so ``def forward`` of a class always shares a row with its twin; then
difflib's SequenceMatcher aligns the lines between two pins, compared after the
spelling table; lines left over in a changed stretch are paired by similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .source import Pair
from .spelling import normalise

IDENTICAL, SPELLING, SUBSTANCE = "identical", "spelling", "substance"
SIMILAR = 0.5  # lines less alike than this (difflib ratio) in a changed stretch are shown apart, not side by side


@dataclass(frozen=True)
class Row:
    kind: str  # IDENTICAL, SPELLING or SUBSTANCE
    left: int | None  # 0-based line index in the NumPy file, None for a gap
    right: int | None  # the same in the torch file


def row_kind(left: str | None, right: str | None) -> str:
    if left is None or right is None:
        return SUBSTANCE
    if left == right:
        return IDENTICAL
    return SPELLING if normalise(left) == normalise(right) else SUBSTANCE


def pins(pair: Pair) -> list[tuple[int, int]]:
    """(left, right) 0-based lines of the classes and functions both files define, matched in order."""
    left = [d for d in pair.numpy.definitions]
    right = [d for d in pair.torch.definitions]
    matcher = SequenceMatcher(None, [d.qualname for d in left], [d.qualname for d in right], autojunk=False)
    return [(left[i + k].line - 1, right[j + k].line - 1) for i, j, n in matcher.get_matching_blocks() for k in range(n)]


def similarity(left: str, right: str) -> float:
    """difflib's ratio of the two lines after the spelling table (cheap upper bounds first)."""
    matcher = SequenceMatcher(None, normalise(left).strip(), normalise(right).strip(), autojunk=False)
    if matcher.real_quick_ratio() < SIMILAR or matcher.quick_ratio() < SIMILAR:
        return 0.0
    return matcher.ratio()


def similar_pairs(left: list[str], right: list[str]) -> list[tuple[int | None, int | None]]:
    """An order-keeping pairing of two changed stretches that maximises the summed similarity (gaps free)."""
    sim = [[similarity(a, b) for b in right] for a in left]
    score = [[0.0] * (len(right) + 1) for _ in range(len(left) + 1)]
    for i in range(len(left) - 1, -1, -1):
        for j in range(len(right) - 1, -1, -1):
            paired = score[i + 1][j + 1] + sim[i][j] if sim[i][j] >= SIMILAR else -1.0
            score[i][j] = max(paired, score[i + 1][j], score[i][j + 1])
    steps, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if i < len(left) and j < len(right) and sim[i][j] >= SIMILAR and score[i][j] == score[i + 1][j + 1] + sim[i][j]:
            steps.append((i, j))
            i, j = i + 1, j + 1
        elif j == len(right) or (i < len(left) and score[i][j] == score[i + 1][j]):
            steps.append((i, None))
            i += 1
        else:
            steps.append((None, j))
            j += 1
    return steps


def align_stretch(left: list[str], right: list[str]) -> list[tuple[int | None, int | None]]:
    """Line pairs (0-based within the stretch) for two stretches between pins."""
    matcher = SequenceMatcher(None, [normalise(s) for s in left], [normalise(s) for s in right], autojunk=False)
    steps = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            steps += [(i1 + k, j1 + k) for k in range(i2 - i1)]
        else:
            steps += [(i1 + a if a is not None else None, j1 + b if b is not None else None)
                      for a, b in similar_pairs(left[i1:i2], right[j1:j2])]
    return steps


def align(pair: Pair) -> list[Row]:
    """Every line of both files exactly once, in order, as rows of one, the other, or both."""
    left, right = pair.numpy.lines, pair.torch.lines
    bounds = [(0, 0)] + pins(pair) + [(len(left), len(right))]
    steps = []
    for k, ((i0, j0), (i1, j1)) in enumerate(zip(bounds, bounds[1:])):
        if k > 0:  # a pin: the two definitions' first lines share a row whatever they say
            steps.append((i0, j0))
            i0, j0 = i0 + 1, j0 + 1
        steps += [(None if a is None else i0 + a, None if b is None else j0 + b)
                  for a, b in align_stretch(left[i0:i1], right[j0:j1])]
    return [Row(row_kind(None if a is None else left[a], None if b is None else right[b]), a, b) for a, b in steps]


def mirror_score(rows: list[Row]) -> float:
    """The share of rows whose two lines are identical once the spelling table is applied."""
    return sum(r.kind != SUBSTANCE for r in rows) / len(rows) if rows else 1.0
