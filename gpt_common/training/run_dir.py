"""A run's output directory: what it holds, claiming it for a run, and its ``metrics.jsonl``.

    out/metrics.jsonl      one JSON record per optimizer step (loss, lr, gradient norm, tokens/s, evaluations)
    out/loss-plot.png      the book's loss plot
    out/latest.json        and out/checkpoints/ (``train_state``)

One run per directory: a fresh run refuses a directory that holds another run unless told to replace
it (``overwrite``); a resume writes into its own run's directory. On resume, ``metrics.jsonl`` is cut
back to the checkpoint's step, so every step appears once, however often the run was killed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from ..durable import replace_durably
from .train_state import CHECKPOINTS_DIR, LATEST_FILE, MANIFEST_FILE, check_no_links

__all__ = ["METRICS_FILE", "PLOT_FILE", "RUN_FILES", "run_dir_of", "claim_out_dir", "append_metrics",
           "cut_metrics"]

METRICS_FILE, PLOT_FILE = "metrics.jsonl", "loss-plot.png"
RUN_FILES = (LATEST_FILE, CHECKPOINTS_DIR, METRICS_FILE, PLOT_FILE)  # what a run writes, all it ever removes


def run_dir_of(resume: str | os.PathLike) -> Path:
    """The run directory of ``--resume``: the path itself, or ``RUN`` for ``RUN/checkpoints/step_N``."""
    path = Path(resume)
    if (path / MANIFEST_FILE).is_file() and path.parent.name == CHECKPOINTS_DIR:
        return path.parent.parent
    return path


def claim_out_dir(out: Path, resume_dir: Path | None, overwrite: bool) -> None:
    """Make ``out`` ready for this run, before any work: a directory that can be written, holding no
    other run (unless ``overwrite``: then that run's files are removed, and only those)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    held = [name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]
    own = resume_dir is not None and out.resolve() == resume_dir.resolve()
    if held and not own:
        if not overwrite:
            resume = f"resume it with --resume {out}, " if LATEST_FILE in held else "it has no checkpoint; "
            raise ValueError(f"--out {out} already holds a run ({', '.join(held)}): {resume}"
                             f"choose another --out (e.g. {out}-2), or pass --overwrite to replace it")
        _remove_run(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{secrets.token_hex(6)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out} cannot be written: {err.strerror or err}") from None
    check_no_links(out)


def _remove_run(out: Path) -> None:
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def append_metrics(out: Path, record: dict) -> None:
    """One line per step, flushed and fsynced: a kill loses at most the line being written."""
    with open(out / METRICS_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def cut_metrics(source: Path, out: Path, step: int) -> None:
    """``out/metrics.jsonl`` := the records of ``source/metrics.jsonl`` up to ``step`` (a torn last line, from
    a kill, is dropped), replaced in one step."""
    lines = []
    if (source / METRICS_FILE).is_file():
        for line in (source / METRICS_FILE).read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                lines.append(line + "\n")
    replace_durably(out / METRICS_FILE, "".join(lines).encode("utf-8"))
