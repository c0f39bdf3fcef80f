"""Writes that survive a kill or a power cut: afterwards a file holds its new bytes whole, or its old ones.

The POSIX recipe, written once for every file the project saves (checkpoints, ``latest.json``, metrics,
token shards and their manifest, ``save_pretrained``, ``eval --out``):

1. write the bytes under a temporary name in the same directory, then ``fsync`` the file;
2. ``os.replace`` it over the final name (a rename within one file system is atomic);
3. ``fsync`` the directory, because the rename lives in the directory's own entries.

A temporary file left by a kill between 1 and 2 is never read as the real one: its name says ``.tmp``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["tmp_name", "fsync_dir", "fsync_file", "write_synced", "install", "replace_durably"]


def tmp_name(final: Path) -> Path:
    """``final.name`` + ``.tmp-<12 random hex digits>``, beside ``final``: two writers never share one."""
    return final.with_name(f"{final.name}.tmp-{secrets.token_hex(6)}")


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``directory`` durable (POSIX keeps the entry in the directory itself)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(file: str | os.PathLike) -> None:
    """Flush a file that someone else wrote (e.g. safetensors' ``save_file``) to the disk."""
    with open(file, "rb") as f:
        os.fsync(f.fileno())


def write_synced(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` and fsync it: step 1 of the recipe, for files inside a temporary directory."""
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def install(tmp: Path, final: Path) -> None:
    """Steps 2 and 3 for a finished, fsynced ``tmp``: rename it over ``final``, then fsync the directory."""
    os.replace(tmp, final)
    fsync_dir(final.parent)


def replace_durably(final: Path, data: bytes, tmp: Path | None = None) -> None:
    """``final`` := ``data``, whole or not at all (the whole recipe); the temporary file goes if anything fails."""
    tmp = tmp_name(final) if tmp is None else tmp
    try:
        write_synced(tmp, data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
