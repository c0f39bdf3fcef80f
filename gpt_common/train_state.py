"""Training checkpoints: weights and AdamW moments in safetensors, everything else in one JSON manifest.

A run directory ``out/`` holds ``checkpoints/step_000123/`` directories and
``latest.json``, which names the newest complete one. A checkpoint directory holds

- ``model.safetensors``: parameter name -> array (the state-dict keys both packages share);
- ``optimizer.safetensors``: ``exp_avg.<name>``, ``exp_avg_sq.<name>`` and random-engine states (``rng.*``);
- ``manifest.json``: format and version, step, data position, config, settings, random states, and
  each file's size, sha256 and tensor list.

Writes are atomic at every level: a checkpoint is written into a temporary
directory (each file flushed and fsynced), renamed into place, and only then is
``latest.json`` replaced (tmp file, fsync, ``os.replace``). A process killed at
any point leaves the previous checkpoint readable and named by ``latest.json``.
Reading checks every file against the manifest before returning anything, and
refuses the checkpoint whole, naming the problem. Nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MODEL_FILE", "OPTIMIZER_FILE", "MANIFEST_FILE", "LATEST_FILE", "TrainCheckpoint",
    "save_train_checkpoint", "load_train_checkpoint", "check_compatible", "rng_state_to_json", "rng_from_json",
]

FORMAT, FORMAT_VERSION = "gpt-twins-train", 1
MODEL_FILE, OPTIMIZER_FILE, MANIFEST_FILE, LATEST_FILE = (
    "model.safetensors", "optimizer.safetensors", "manifest.json", "latest.json")
CHECKPOINTS = "checkpoints"


@dataclasses.dataclass(frozen=True)
class TrainCheckpoint:
    path: Path
    manifest: dict
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _write_tensors(path: Path, tensors: Mapping[str, np.ndarray]) -> dict:
    """Write ``tensors`` to ``path`` (fsynced); returns the manifest entry: size, sha256 and tensor list."""
    arrays = {key: np.ascontiguousarray(value) for key, value in tensors.items()}
    save_file(arrays, path)
    with open(path, "rb+") as file:
        os.fsync(file.fileno())
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "tensors": {key: [list(value.shape), value.dtype.str] for key, value in arrays.items()}}


def save_train_checkpoint(out_dir, step: int, model_tensors: Mapping[str, np.ndarray],
                          optimizer_tensors: Mapping[str, np.ndarray], manifest: Mapping,
                          keep: int | None = None) -> Path:
    """Write ``out_dir/checkpoints/step_{step:06d}`` atomically and point ``latest.json`` at it; returns its path.

    ``keep`` keeps only the newest ``keep`` checkpoints. Leftovers of a killed save are removed.
    """
    root = Path(out_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    name = f"step_{step:06d}"
    partial = root / f"{name}.tmp-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    files = {MODEL_FILE: _write_tensors(partial / MODEL_FILE, model_tensors),
             OPTIMIZER_FILE: _write_tensors(partial / OPTIMIZER_FILE, optimizer_tensors)}
    full = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "files": files}
    _write_bytes(partial / MANIFEST_FILE, (json.dumps(full, indent=1) + "\n").encode("utf-8"))
    _fsync_dir(partial)
    target = root / name
    if target.exists():  # the same step saved again: move the old one aside first, then drop it
        old = root / f"{name}.tmp-old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(partial, target)
        shutil.rmtree(old)
    else:
        os.rename(partial, target)
    _fsync_dir(root)
    _write_latest(Path(out_dir), f"{CHECKPOINTS}/{name}")
    if keep is not None:
        _prune(root, keep, target)
    return target


def _write_latest(out: Path, relative: str) -> None:
    partial = out / f"{LATEST_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    _write_bytes(partial, (json.dumps({"checkpoint": relative}) + "\n").encode("utf-8"))
    os.replace(partial, out / LATEST_FILE)
    _fsync_dir(out)


def _remove_leftovers(root: Path) -> None:
    for path in root.glob("*.tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.parent.glob(f"{LATEST_FILE}.tmp-*"):
        path.unlink(missing_ok=True)


def _prune(root: Path, keep: int, latest: Path) -> None:
    complete = sorted(p for p in root.glob("step_*") if ".tmp-" not in p.name)
    for path in complete[:-keep] if keep > 0 else complete:
        if path != latest:
            shutil.rmtree(path, ignore_errors=True)


def _checkpoint_dir(path: Path) -> Path:
    """``path`` itself if it holds a manifest, else the checkpoint its ``latest.json`` names."""
    if (path / MANIFEST_FILE).is_file():
        return path
    latest = path / LATEST_FILE
    if not latest.is_file():
        raise ValueError(f"{path} is not a training checkpoint: no {MANIFEST_FILE} or {LATEST_FILE} in it")
    try:
        relative = json.loads(latest.read_text(encoding="utf-8"))["checkpoint"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{latest} is not a valid pointer to a checkpoint: {error}") from None
    target = path / relative
    if not (target / MANIFEST_FILE).is_file():
        raise ValueError(f"{latest} names {relative}, which is not a complete checkpoint")
    return target


def _read_manifest(directory: Path) -> dict:
    file = directory / MANIFEST_FILE
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{file} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{file} has format version {manifest.get('format_version')!r}; "
                         f"this version reads {FORMAT_VERSION}")
    return manifest


def _read_tensors(file: Path, entry: Mapping) -> dict[str, np.ndarray]:
    """The file's tensors, after its size, checksum, keys, shapes and dtypes match the manifest's entry."""
    if not file.is_file():
        raise ValueError(f"checkpoint file {file} is missing")
    data = file.read_bytes()
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"checkpoint file {file} is truncated or changed: {len(data)} bytes, "
                         f"the manifest says {entry['bytes']} (or its sha256 differs)")
    try:
        tensors = load_file(file)
    except SafetensorError as error:
        raise ValueError(f"checkpoint file {file} is not readable safetensors: {error}") from None
    found = {key: [list(value.shape), value.dtype.str] for key, value in tensors.items()}
    if found != entry["tensors"]:
        missing = sorted(set(entry["tensors"]) - set(found))
        unexpected = sorted(set(found) - set(entry["tensors"]))
        raise ValueError(f"checkpoint file {file} does not hold the manifest's tensors: missing {missing}, "
                         f"unexpected {unexpected}, or a shape or dtype differs")
    return tensors


def load_train_checkpoint(path) -> TrainCheckpoint:
    """The checkpoint at ``path`` (a checkpoint directory, or a run directory's latest), checked whole."""
    directory = _checkpoint_dir(Path(path))
    manifest = _read_manifest(directory)
    files = manifest.get("files", {})
    for name in (MODEL_FILE, OPTIMIZER_FILE):
        if name not in files:
            raise ValueError(f"{directory / MANIFEST_FILE} lists no {name}")
    model = _read_tensors(directory / MODEL_FILE, files[MODEL_FILE])
    optimizer = _read_tensors(directory / OPTIMIZER_FILE, files[OPTIMIZER_FILE])
    return TrainCheckpoint(directory, manifest, model, optimizer)


def check_compatible(manifest: Mapping, config: Mapping, names_shapes: Mapping[str, tuple]) -> None:
    """ValueError unless the checkpoint was trained with ``config`` and holds exactly these tensors."""
    saved = manifest.get("config", {})
    differing = sorted(key for key in set(saved) | set(config) if saved.get(key) != config.get(key))
    if differing:
        raise ValueError("the checkpoint was trained with another config: " + ", ".join(
            f"{key} {saved.get(key)!r} (this run: {config.get(key)!r})" for key in differing))
    tensors = {key: tuple(shape) for key, (shape, _) in manifest["files"][MODEL_FILE]["tensors"].items()}
    expected = {key: tuple(shape) for key, shape in names_shapes.items()}
    if tensors != expected:
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(f"the checkpoint's weights do not fit this model: missing {missing}, "
                         f"unexpected {unexpected}, or a shape differs")


def rng_state_to_json(generator: np.random.Generator) -> dict:
    """A NumPy generator's full state, JSON-ready (PCG64's 128-bit integers are plain Python ints)."""
    return generator.bit_generator.state


def rng_from_json(state: Mapping) -> np.random.Generator:
    """The generator ``rng_state_to_json`` described, continuing its stream bit for bit."""
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        raise ValueError(f"not a NumPy generator state: bit_generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = dict(state)
    return np.random.Generator(bit_generator)
