"""Training checkpoints: what a run saves to resume bit-exactly, written atomically and read back checked whole.

A run's output directory looks like::

    out/latest.json                          {"checkpoint": "checkpoints/step_000123"}
    out/checkpoints/step_000123/model.safetensors      parameter name -> array (our state-dict keys)
                               /optimizer.safetensors  exp_avg.<name>, exp_avg_sq.<name>, extras (rng.torch, ...)
                               /manifest.json          format, version, step, the caller's fields, and for
                                                       each file its size, sha256 and tensors (shape, dtype)

Atomicity: a checkpoint is written in full under ``step_000123.tmp-<random>``, every file fsynced, then
the directory is renamed into place and ``latest.json`` replaced (tmp file, fsync, ``os.replace``, fsync
of the directory). A process killed at any instant leaves ``latest.json`` naming a complete checkpoint:
the previous one, or the new one once its rename is done. Readers ignore ``.tmp-*`` leftovers; the
next save removes them. Replacing an existing ``step_N`` renames the old one to ``step_N.old-<random>``
first; a reader that finds ``step_N`` missing (killed between the two renames) reads that ``.old`` one,
and the next save puts it back.

Nothing is unpickled: tensors go through ``safetensors.numpy``, everything else is JSON.
Framework-neutral: torch tensors are handed over as NumPy arrays (``tensor.numpy()``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..durable import fsync_dir, replace_durably, tmp_name, write_synced
from ..validation import NonFiniteError, check_int_at_least, is_int

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MODEL_FILE", "OPTIMIZER_FILE", "MANIFEST_FILE", "LATEST_FILE", "CHECKPOINTS_DIR",
    "TrainCheckpoint", "NonFiniteError", "save_train_checkpoint", "load_train_checkpoint", "check_compatible",
    "check_finite", "check_no_links",
    "rng_state_to_json", "rng_from_json",
]

FORMAT, FORMAT_VERSION = "gpt-twins-train", 1
MODEL_FILE, OPTIMIZER_FILE, MANIFEST_FILE = "model.safetensors", "optimizer.safetensors", "manifest.json"
LATEST_FILE, CHECKPOINTS_DIR = "latest.json", "checkpoints"
TENSOR_FILES = (MODEL_FILE, OPTIMIZER_FILE)
RESERVED = ("format", "format_version", "step", "files", "tensors")  # written by the save, not the caller
STEP_DIR = re.compile(r"step_(\d+)")
LATEST_TARGET = re.compile(rf"{CHECKPOINTS_DIR}/step_\d+")  # latest.json may only point inside checkpoints/
HASH_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class TrainCheckpoint:
    """A checkpoint read back and checked: its directory, its manifest, and both files' tensors."""

    path: Path
    manifest: dict
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]


# ---- writing ----------------------------------------------------------------------------------------------------


def save_train_checkpoint(out_dir: str | os.PathLike, step: int, model_tensors: Mapping[str, np.ndarray],
                          optimizer_tensors: Mapping[str, np.ndarray], manifest: Mapping,
                          keep: int | None = None) -> Path:
    """Write ``out_dir/checkpoints/step_{step:06d}`` atomically, point ``latest.json`` at it, and return its path.

    ``manifest`` holds the caller's JSON fields (config, schedule, RNG states, data position, ...); the save adds
    format, format_version, step, files and tensors. ``keep``: afterwards only the ``keep`` highest-numbered
    checkpoints remain, plus the one ``latest.json`` names (never deleted).
    """
    check_int_at_least("step", step, 0)
    if keep is not None:
        check_int_at_least("keep", keep, 1)
    contents = {MODEL_FILE: _as_arrays("model_tensors", model_tensors), OPTIMIZER_FILE: _as_arrays(
        "optimizer_tensors", optimizer_tensors)}
    if not contents[MODEL_FILE]:
        raise ValueError("model_tensors is empty: a checkpoint needs the model's parameters")
    body = _base_manifest(manifest, int(step))  # checked before anything touches the disk
    for name, arrays in contents.items():
        check_finite(name, arrays)
    out = Path(out_dir)
    root = out / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    _recover(out)
    final = root / f"step_{int(step):06d}"
    tmp = tmp_name(final)
    tmp.mkdir()
    try:
        _write_files(tmp, contents, body)
    except (OSError, SafetensorError) as err:  # a full disk: safetensors raises its own error type, not OSError
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"could not write checkpoint {final} (nothing was replaced): {err}") from None
    _install(tmp, final)
    _write_latest(out, final)
    if keep is not None:
        _prune(root, int(keep), final)
    return final


def _write_files(tmp: Path, contents: dict[str, dict[str, np.ndarray]], body: dict) -> None:
    """Both tensor files, then the manifest that lists their sizes and hashes, every one fsynced."""
    for name, arrays in contents.items():
        body["files"][name] = _write_safetensors(tmp / name, arrays)
        body["tensors"][name] = {key: [list(array.shape), str(array.dtype)] for key, array in arrays.items()}
    write_synced(tmp / MANIFEST_FILE, (json.dumps(body, indent=2, allow_nan=False) + "\n").encode())
    fsync_dir(tmp)


def check_finite(what: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Every float tensor finite: a checkpoint of NaN or infinite weights is never written, nor resumed."""
    for key, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise NonFiniteError(f"{what}: tensor {key!r} holds NaN or infinite values")


def _as_arrays(what: str, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """String keys to contiguous NumPy arrays of a dtype safetensors stores (bool, int, uint, float)."""
    if not isinstance(tensors, Mapping):
        raise ValueError(f"{what} must be a mapping of name -> array, got {type(tensors).__name__}")
    arrays = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise ValueError(f"{what}: keys must be strings, got {key!r}")
        array = np.asarray(value)
        if not array.flags.c_contiguous:  # safetensors stores C order (ascontiguousarray would make a 0-d array 1-d)
            array = array.copy(order="C")
        if array.dtype.kind not in "biuf" or not array.dtype.isnative:
            raise ValueError(f"{what}[{key!r}] has dtype {array.dtype}, which safetensors cannot store")
        arrays[key] = array
    return arrays


def _base_manifest(manifest: Mapping, step: int) -> dict[str, Any]:
    """The caller's fields under format, version and step; they must be JSON and leave the reserved keys alone."""
    if not isinstance(manifest, Mapping):
        raise ValueError(f"manifest must be a mapping, got {type(manifest).__name__}")
    clash = [key for key in RESERVED if key in manifest and not (key == "step" and manifest[key] == step)]
    if clash:
        raise ValueError(f"manifest keys {clash} are written by the save itself; leave them out")
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, **manifest, "files": {}, "tensors": {}}
    try:
        json.dumps(body, allow_nan=False)  # strict JSON: NaN and Infinity are not JSON numbers
    except (TypeError, ValueError) as err:
        raise ValueError(f"manifest must hold only JSON values (no NaN or Infinity): {err}") from None
    return body


def _write_safetensors(file: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write, fsync, and return the file's {"bytes", "sha256"} as it now is on disk."""
    save_file(arrays, file, metadata={"format": FORMAT})
    digest, size = hashlib.sha256(), 0
    with open(file, "r+b") as f:
        os.fsync(f.fileno())
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _install(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final``; an existing ``final`` is renamed away first, removed last."""
    if not final.exists():
        os.rename(tmp, final)
        fsync_dir(final.parent)
        return
    old = final.with_name(f"{final.name}.old-{secrets.token_hex(6)}")
    os.rename(final, old)  # POSIX rename cannot replace a non-empty directory in one step
    os.rename(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(old)


def _write_latest(out: Path, final: Path) -> None:
    """Replace ``latest.json`` in one step: a reader sees the old pointer or the new one, never half a file."""
    replace_durably(out / LATEST_FILE, (json.dumps({"checkpoint": f"{CHECKPOINTS_DIR}/{final.name}"}) + "\n").encode())


def _recover(out: Path) -> None:
    """Undo what a killed save left: remove ``.tmp-*`` leftovers, and put back a ``step_N.old-*`` whose
    ``step_N`` is missing (killed between the two renames of ``_install``), or remove it if ``step_N`` is there."""
    for leftover in sorted(out.glob(f"{LATEST_FILE}.tmp-*")):
        leftover.unlink()
    root = out / CHECKPOINTS_DIR
    check_no_links(out)
    for entry in sorted(root.iterdir()):
        if ".tmp-" in entry.name and entry.is_dir():
            shutil.rmtree(entry)
        elif ".tmp-" in entry.name:
            entry.unlink()
        elif ".old-" in entry.name and entry.is_dir():
            base = root / entry.name.split(".old-")[0]
            if base.exists():
                shutil.rmtree(entry)
            else:
                os.rename(entry, base)
                fsync_dir(root)


def check_no_links(out: Path) -> None:
    """A run's ``checkpoints/`` holds only what its saves wrote: a planted symbolic link would make a save
    delete or rename through it, so it is refused, named, before anything is touched."""
    root = out / CHECKPOINTS_DIR
    links = sorted(entry.name for entry in root.iterdir() if entry.is_symlink()) if root.is_dir() else []
    if links:
        raise ValueError(f"{root} holds symbolic links {links[:5]}, which no save writes; remove them")


def _prune(root: Path, keep: int, latest: Path) -> None:
    """Delete all but the ``keep`` highest-numbered step directories, never ``latest``.

    Each doomed directory is renamed to a ``.tmp-`` name before removal, so a kill mid-removal
    never leaves half a checkpoint under a checkpoint's name.
    """
    steps = [entry for entry in root.iterdir() if STEP_DIR.fullmatch(entry.name) and entry.is_dir()]
    steps.sort(key=lambda entry: int(STEP_DIR.fullmatch(entry.name).group(1)), reverse=True)
    for entry in steps[keep:]:
        if entry == latest:
            continue
        doomed = tmp_name(entry)
        os.rename(entry, doomed)
        shutil.rmtree(doomed)


# ---- reading ----------------------------------------------------------------------------------------------------


def load_train_checkpoint(path: str | os.PathLike) -> TrainCheckpoint:
    """Read a checkpoint, given its directory (has manifest.json) or a run's out dir (has latest.json).

    Refused whole, with a ValueError naming the file and the problem: wrong format or version, a file missing,
    a size or sha256 differing from the manifest (truncated or corrupted), tensors differing from the manifest's.
    """
    directory = _checkpoint_dir(Path(path))
    manifest = _read_manifest(directory / MANIFEST_FILE)
    for name in TENSOR_FILES:  # every file checked before any tensor is read
        _verify_file(directory / name, manifest["files"][name])
    model, optimizer = (_read_tensors(directory / name, manifest["tensors"][name]) for name in TENSOR_FILES)
    check_finite(str(directory / MODEL_FILE), model)
    check_finite(str(directory / OPTIMIZER_FILE), optimizer)
    return TrainCheckpoint(directory, manifest, model, optimizer)


def _checkpoint_dir(path: Path) -> Path:
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise ValueError(f"{path} is not a training checkpoint: it {what}")
    if (path / MANIFEST_FILE).is_file():
        return path
    if (path / LATEST_FILE).is_file():
        return _follow_latest(path / LATEST_FILE)
    raise ValueError(f"{path} is not a training checkpoint: no {MANIFEST_FILE} or {LATEST_FILE}")


def _follow_latest(latest: Path) -> Path:
    """The directory ``latest.json`` names; or, when a kill fell between ``_install``'s renames, its ``.old`` copy."""
    pointer = _read_json(latest).get("checkpoint")
    if not isinstance(pointer, str) or not LATEST_TARGET.fullmatch(pointer):
        raise ValueError(f"{latest}: 'checkpoint' must be '{CHECKPOINTS_DIR}/step_<number>', got {pointer!r}")
    target = latest.parent / pointer
    if (target / MANIFEST_FILE).is_file():
        return target
    for old in sorted(target.parent.glob(f"{target.name}.old-*")):
        if (old / MANIFEST_FILE).is_file():
            return old
    raise ValueError(f"{latest} names {pointer}, which has no {MANIFEST_FILE}")


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{file} is not readable JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{file} must hold a JSON object, got {type(value).__name__}")
    return value


def _read_manifest(file: Path) -> dict:
    """The manifest, with its format, version, step, and a files and tensors entry for each tensor file."""
    manifest = _read_json(file)
    version = manifest.get("format_version")
    if manifest.get("format") != FORMAT or type(version) is not int or version != FORMAT_VERSION:
        raise ValueError(f"{file}: format {manifest.get('format')!r} version {version!r} is not "
                         f"{FORMAT!r} version {FORMAT_VERSION}")
    if not is_int(manifest.get("step")) or manifest["step"] < 0:
        raise ValueError(f"{file}: step must be an integer >= 0, got {manifest.get('step')!r}")
    for entry in ("files", "tensors"):
        listed = manifest.get(entry)
        if not isinstance(listed, dict) or any(not isinstance(listed.get(name), dict) for name in TENSOR_FILES):
            raise ValueError(f"{file}: '{entry}' must have an object for each of {list(TENSOR_FILES)}")
    return manifest


def _verify_file(file: Path, listed: dict) -> None:
    """The file is there, with the size and sha256 the manifest recorded when it was written."""
    if not file.is_file():
        raise ValueError(f"{file} is missing: the manifest lists it")
    size = file.stat().st_size
    if size != listed.get("bytes"):
        raise ValueError(f"{file} has {size} bytes, the manifest says {listed.get('bytes')!r}: truncated or replaced")
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != listed.get("sha256"):
        raise ValueError(f"{file}: sha256 {digest.hexdigest()} differs from the manifest's "
                         f"{listed.get('sha256')!r}: the file is corrupted")


def _read_tensors(file: Path, listed: dict) -> dict[str, np.ndarray]:
    """The file's arrays, whose keys, shapes and dtypes must be exactly the manifest's."""
    try:
        arrays = load_file(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is not a readable safetensors file: {err}") from None
    _check_same_names(listed, arrays, f"{file} does not hold the manifest's tensors")
    for key, array in arrays.items():
        if [list(array.shape), str(array.dtype)] != listed[key]:
            raise ValueError(f"{file}: tensor {key!r} is {list(array.shape)} {array.dtype}, "
                             f"the manifest says {listed[key]}")
    return arrays


# ---- checks against the run -------------------------------------------------------------------------------------


def check_compatible(manifest: Mapping, config: Mapping, names_shapes: Mapping[str, tuple],
                     source: str | os.PathLike | None = None) -> None:
    """Refuse to resume a run from a checkpoint of another model: the config and the model's tensors must match.

    ``config`` is the run's config dict (compared with ``manifest["config"]`` after a JSON round trip, so tuples
    equal lists); ``names_shapes`` maps each parameter name to its shape. ``source`` names the checkpoint.
    """
    where = f"checkpoint {source}" if source is not None else f"checkpoint (step {manifest.get('step')!r})"
    saved = manifest.get("config")
    if not isinstance(saved, Mapping):
        raise ValueError(f"{where} has no config in its manifest")
    try:
        run = json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"the run's config must hold only JSON values: {err}") from None
    differing = [key for key in sorted(set(saved) | set(run)) if saved.get(key, _ABSENT) != run.get(key, _ABSENT)]
    if differing:
        raise ValueError(f"{where} was trained with {_describe(saved, differing)}, "
                         f"this run has {_describe(run, differing)}")
    _check_model_shapes(where, manifest.get("tensors", {}).get(MODEL_FILE), names_shapes)


_ABSENT = object()


def _describe(config: Mapping, keys: list[str]) -> str:
    return " and ".join(f"{key} {config[key]!r}" if key in config else f"no {key}" for key in keys)


def _check_same_names(expected: Mapping, got: Mapping, what: str) -> None:
    """``got`` has exactly ``expected``'s keys, or a ValueError "<what>: missing [...], unexpected [...]"."""
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _check_model_shapes(where: str, listed: Any, names_shapes: Mapping[str, tuple]) -> None:
    """The checkpoint's model tensors are the run's parameters, name for name and shape for shape."""
    if not isinstance(listed, Mapping):
        raise ValueError(f"{where} lists no model tensors in its manifest")
    _check_same_names(names_shapes, listed, f"{where} does not hold this run's parameters")
    for name, shape in names_shapes.items():
        if tuple(listed[name][0]) != tuple(shape):
            raise ValueError(f"{where}: parameter {name!r} has shape {tuple(listed[name][0])}, "
                             f"this run has {tuple(shape)}")


# ---- random generators ------------------------------------------------------------------------------------------

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
STATE_ARRAY_DTYPES = ("uint32", "uint64")  # the dtypes of the arrays inside these bit generators' states


def rng_state_to_json(generator: np.random.Generator) -> dict:
    """``generator.bit_generator.state`` as JSON: Python ints stay ints, arrays become {"ndarray", "dtype"}."""
    if not isinstance(generator, np.random.Generator):
        raise ValueError(f"expected a numpy.random.Generator, got {type(generator).__name__}")
    state = generator.bit_generator.state
    if state.get("bit_generator") not in BIT_GENERATORS:
        raise ValueError(f"bit generator {state.get('bit_generator')!r} is not one of {list(BIT_GENERATORS)}")
    return _to_json(state)


def rng_from_json(state: Mapping) -> np.random.Generator:
    """A generator continuing exactly where the one ``rng_state_to_json`` saw stopped: the same stream, bit for bit."""
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    if name not in BIT_GENERATORS:
        raise ValueError(f"RNG state names bit generator {name!r}, expected one of {list(BIT_GENERATORS)}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = _from_json(dict(state))
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"RNG state for {name} is malformed: {err}") from None
    return np.random.Generator(bit_generator)


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    return int(value) if isinstance(value, np.integer) else value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"ndarray", "dtype"}:
        if value["dtype"] not in STATE_ARRAY_DTYPES:
            raise ValueError(f"state array dtype must be one of {STATE_ARRAY_DTYPES}, got {value['dtype']!r}")
        return np.array(value["ndarray"], dtype=value["dtype"])
    if isinstance(value, dict):
        return {key: _from_json(item) for key, item in value.items()}
    return value
