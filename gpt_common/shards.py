"""Token shards: a corpus tokenized once, ahead of time, into files that training memory-maps.

A prepared corpus is a directory::

    out/manifest.json        format, version, the tokenizer (name, n_vocab, sha256 of its ranks), the token
                             dtype, each shard's name, token count, bytes, largest id and sha256, the source,
                             the settings, the train/val split, and whether ``prepare`` finished
    out/shard_000000.bin     a 64-byte header, then the token ids in little-endian uint16 (or uint32)
    out/shard_000001.bin     ...

The header is ``magic "GPTTOKS\\0", version (u32), bytes per token (u32), token count (u64)``, zero-padded
to 64 bytes (llm.c's shards carry a 256-int32 header for the same reason: a file says what it is). The
shards are one stream of tokens, in order; the split is two token ranges of that stream, ``train`` =
[0, S) and ``val`` = [S, N), so the windows of a prepared corpus are exactly those of the same text
tokenized in memory and split at S.

Atomicity, as in the checkpoints: each file is written under a ``.tmp`` name, fsynced, renamed into
place and its directory fsynced; the manifest is rewritten (the same way) after every finished
shard, so a killed ``prepare`` leaves only whole shards listed, and a rerun skips them. A reader
refuses a manifest that ``prepare`` did not finish. Nothing is ever unpickled.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .durable import install, replace_durably
from .tokenizer import GPT2_RANKS_SHA256

__all__ = [
    "MAGIC", "VERSION", "HEADER_BYTES", "FORMAT", "MANIFEST_FILE", "token_dtype", "shard_name",
    "ShardWriter", "write_manifest", "read_manifest", "read_header", "verify_shard",
    "TokenStream", "ShardSet", "open_shards", "check_vocab", "check_gpt2", "split_point",
]

MAGIC, VERSION = b"GPTTOKS\x00", 1
HEADER = struct.Struct("<8sIIQ")  # magic, version, bytes per token, token count
HEADER_BYTES = 64  # the rest is zeros: room for later fields, and the ids start 64-byte aligned
FORMAT, MANIFEST_FILE = "gpt-twins-tokens", "manifest.json"
DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
HASH_CHUNK = 1 << 22


def token_dtype(n_vocab: int) -> np.dtype:
    """uint16 when every id fits (GPT-2's 50257 do), else uint32."""
    return DTYPES[2] if n_vocab <= 1 << 16 else DTYPES[4]


def shard_name(index: int) -> str:
    return f"shard_{index:06d}.bin"


def split_point(num_tokens: int, val_fraction: float) -> int:
    """S = int((1 - val_fraction) * N): the first S tokens train (the in-memory path's 90/10 split at 0.1)."""
    return int((1.0 - val_fraction) * num_tokens)


# ------------------------------------------------------------------------------------------------ writing

def _tmp_path(final: Path) -> Path:
    """One fixed hidden name per file, so a rerun of ``prepare`` overwrites what a killed one left."""
    return final.with_name(f".{final.name}.tmp")


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    final = directory / MANIFEST_FILE
    replace_durably(final, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"), _tmp_path(final))


class ShardWriter:
    """One shard, appended to under its ``.tmp`` name (memory holds one batch of ids, never the shard).

    ``close()`` writes the header's count, fsyncs, renames the file into place and returns its
    manifest entry; ``abort()`` removes the partial file. Use as a context manager.
    """

    def __init__(self, final: Path, dtype: np.dtype):
        self.final, self.tmp, self.dtype = Path(final), _tmp_path(Path(final)), np.dtype(dtype)
        self.count, self.max_id = 0, -1
        self.file = open(self.tmp, "wb")
        self.file.write(bytes(HEADER_BYTES))  # the real header goes in at close, once the count is known

    def append(self, ids) -> None:
        ids = np.asarray(ids)
        if ids.size:
            self.max_id = max(self.max_id, int(ids.max()))
            self.file.write(ids.astype(self.dtype, copy=False).tobytes())
            self.count += int(ids.size)

    def close(self) -> dict[str, Any]:
        self.file.seek(0)
        self.file.write(HEADER.pack(MAGIC, VERSION, self.dtype.itemsize, self.count))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        size, digest = _size_and_sha256(self.tmp)
        install(self.tmp, self.final)
        return {"name": self.final.name, "tokens": self.count, "bytes": size, "sha256": digest,
                "max_id": self.max_id}

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.abort()


def _size_and_sha256(file: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(file, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# ------------------------------------------------------------------------------------------------ reading

def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a prepared corpus, its format and version checked; errors name the file."""
    file = Path(directory) / MANIFEST_FILE
    if not file.is_file():
        raise ValueError(f"{directory}: no {MANIFEST_FILE}, so not a prepared corpus (make one with "
                         "`python -m gpt_cli prepare TEXT --out DIR`)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{file}: not a token-shard manifest (format {FORMAT!r} expected)")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{file}: version {manifest.get('version')!r}, this code reads version {VERSION}")
    return manifest


def read_header(file: Path) -> tuple[np.dtype, int]:
    """(dtype, token count) from a shard's header, checked against the file's size."""
    with open(file, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise ValueError(f"{file}: truncated shard ({len(raw)} bytes, shorter than its {HEADER_BYTES}-byte header)")
    magic, version, itemsize, count = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"{file}: not a token shard (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ValueError(f"{file}: shard version {version}, this code reads version {VERSION}")
    if itemsize not in DTYPES:
        raise ValueError(f"{file}: {itemsize} bytes per token; shards hold 2 (uint16) or 4 (uint32)")
    expected = HEADER_BYTES + count * itemsize
    if file.stat().st_size != expected:
        raise ValueError(f"{file}: truncated or overlong shard: {file.stat().st_size} bytes, its header "
                         f"says {count} tokens = {expected} bytes")
    return DTYPES[itemsize], count


def verify_shard(directory: Path, entry: Mapping[str, Any], dtype: np.dtype, *, check_sha256: bool = True) -> Path:
    """The shard file of a manifest entry, after checking its header, size, count and (by default) sha256."""
    file = Path(directory) / entry["name"]
    if not file.is_file():
        raise ValueError(f"{file}: missing (listed in {MANIFEST_FILE})")
    file_dtype, count = read_header(file)
    if file_dtype != dtype or count != entry["tokens"]:
        raise ValueError(f"{file}: holds {count} {file_dtype.name} tokens, the manifest lists "
                         f"{entry['tokens']} {dtype.name}")
    if check_sha256 and _size_and_sha256(file)[1] != entry["sha256"]:
        raise ValueError(f"{file}: sha256 does not match the manifest's (the file changed or is damaged)")
    return file


class TokenStream:
    """Tokens [start, stop) of the concatenated shards, read through memory maps: ``len``, ``[slice]`` and
    ``[integer array]`` give int64 ids, as indexing an in-memory int64 array would."""

    def __init__(self, maps: list[np.ndarray], start: int, stop: int):
        self.maps, self.start, self.stop = maps, start, stop
        self.offsets = np.cumsum([0] + [len(m) for m in maps])  # shard i holds tokens [offsets[i], offsets[i+1])

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            begin, end, step = index.indices(len(self))
            if step != 1:
                raise ValueError("a token stream reads contiguous slices only (step 1)")
            return self._read(self.start + begin, self.start + max(begin, end))
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"token index out of range [0, {len(self)})")
        return self._gather(index + self.start)

    def _read(self, begin: int, end: int) -> np.ndarray:
        """Tokens [begin, end) of the whole stream, copied shard by shard into one int64 array."""
        out, at = np.empty(end - begin, dtype=np.int64), begin
        while at < end:
            i = bisect.bisect_right(self.offsets, at) - 1
            take = min(end, int(self.offsets[i + 1])) - at
            out[at - begin : at - begin + take] = self.maps[i][at - self.offsets[i] : at - self.offsets[i] + take]
            at += take
        return out

    def _gather(self, index: np.ndarray) -> np.ndarray:
        """The tokens at absolute positions ``index`` (any shape); each shard is read only where it is hit."""
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        out = np.empty(index.shape, dtype=np.int64)
        for i in np.unique(shard):
            hit = shard == i
            out[hit] = self.maps[i][index[hit] - self.offsets[i]]
        return out


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """A prepared corpus, opened: its manifest, the manifest's sha256 (the corpus' identity) and memory maps."""

    directory: Path
    manifest: dict
    sha256: str
    maps: list

    @property
    def tokenizer(self) -> dict:
        return self.manifest["tokenizer"]

    @property
    def identity(self) -> dict:
        """What a training checkpoint records of its data (a resume refuses another): the manifest's sha256,
        which covers every shard's sha256 and the split."""
        size = sum(entry["bytes"] for entry in self.manifest["shards"])
        return {"kind": "shards", "path": str(self.directory), "bytes": size, "sha256": self.sha256}

    @property
    def max_id(self) -> int:
        return max((entry["max_id"] for entry in self.manifest["shards"]), default=-1)

    def split(self, name: str) -> TokenStream:
        """The ``train`` or ``val`` tokens, as a stream over the memory maps."""
        start, stop = self.manifest["split"][name]
        return TokenStream(self.maps, start, stop)


def open_shards(directory: str | os.PathLike, *, check_sha256: bool = True) -> ShardSet:
    """Memory-map every shard of a finished ``prepare``, each checked against the manifest first."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    file = directory / MANIFEST_FILE
    if not manifest.get("complete"):
        raise ValueError(f"{file}: prepare did not finish; run the same prepare command again to complete it")
    dtype = np.dtype(manifest["dtype"])
    maps = []
    for entry in manifest["shards"]:
        path = verify_shard(directory, entry, dtype, check_sha256=check_sha256)
        if entry["tokens"]:
            maps.append(np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(entry["tokens"],)))
    return ShardSet(directory, manifest, _size_and_sha256(file)[1], maps)


def check_vocab(shards: ShardSet, vocab_size: int, flag: str) -> None:
    """Refuse ids at or above the model's vocabulary (the manifest's largest id, which its sha256s vouch for)."""
    if shards.max_id >= vocab_size:
        raise ValueError(f"{flag} {shards.directory}: holds token id {shards.max_id}, at or above the model's "
                         f"vocab_size {vocab_size}")


def check_gpt2(shards: ShardSet, flag: str) -> None:
    """Refuse a corpus tokenized by anything but GPT-2's BPE (the tokenizer every model here reads)."""
    found = shards.tokenizer
    if found.get("sha256") != GPT2_RANKS_SHA256:  # the ranks decide the ids, whatever the tokenizer was called
        raise ValueError(f"{flag} {shards.directory / MANIFEST_FILE}: tokenized with {found.get('name')} (sha256 "
                         f"{found.get('sha256')}), but the model reads GPT-2's tokens (prepare --tokenizer gpt2)")
