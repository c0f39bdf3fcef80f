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
    blocks = matcher.get_matching_blocks()
    return [(left[i + k].line - 1, right[j + k].line - 1) for i, j, n in blocks for k in range(n)]


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
    """Every line of both files exactly once, in order, as rows of one, the other, or both.

    NumPy-only backward code is kept out of the matching and shown on its own (the torch twin has none).
    """
    left, right = pair.numpy.lines, pair.torch.lines
    skip = numpy_only_backward(pair)
    bounds = [(0, 0)] + pins(pair) + [(len(left), len(right))]
    steps = []
    for k, ((i0, j0), (i1, j1)) in enumerate(zip(bounds, bounds[1:])):
        if k > 0:  # a pin: the two definitions' first lines share a row whatever they say
            steps.append((i0, j0))
            i0, j0 = i0 + 1, j0 + 1
        keep = [i for i in range(i0, i1) if i not in skip]
        matched = [(None if a is None else keep[a], None if b is None else j0 + b)
                   for a, b in align_stretch([left[i] for i in keep], right[j0:j1])]
        steps += with_left_only(matched, [i for i in range(i0, i1) if i in skip])
    return [Row(row_kind(None if a is None else left[a], None if b is None else right[b]), a, b) for a, b in steps]


def with_left_only(steps: list[tuple[int | None, int | None]], lines: list[int]) -> list[tuple[int | None, int | None]]:
    """``steps`` with the (sorted) left-only ``lines`` put back where they belong in the left file's order."""
    out, pending = [], list(lines)
    for a, b in steps:
        while pending and a is not None and pending[0] < a:
            out.append((pending.pop(0), None))
        out.append((a, b))
    return out + [(i, None) for i in pending]


def is_backward(qualname: str) -> bool:
    """``C.backward``, ``C.attention_backward``, ``softmax_backward``: a hand-written gradient."""
    name = qualname.rsplit(".", 1)[-1]
    return name == "backward" or name.endswith("_backward")


def numpy_only_backward(pair: Pair) -> set[int]:
    """0-based NumPy lines of the backward definitions the torch twin has no counterpart for (autograd does it)."""
    torch_names = {d.qualname for d in pair.torch.definitions}
    return {line for d in pair.numpy.definitions if is_backward(d.qualname) and d.qualname not in torch_names
            for line in range(d.start - 1, d.end)}


def mirror_score(rows: list[Row], excluded: set[int] = frozenset()) -> float:
    """The share of rows whose two lines are identical once the spelling table is applied, leaving out
    NumPy-only rows on ``excluded`` lines (the backward passes: the torch twin's mirror is its forward)."""
    counted = [r for r in rows if not (r.right is None and r.left in excluded)]
    return sum(r.kind != SUBSTANCE for r in counted) / len(counted) if counted else 1.0
