"""``prepare``: tokenize a corpus once, in a stream, into token shards that ``train --data DIR`` and ``eval`` map.

    python -m gpt_cli prepare tinyshakespeare.txt --out data/shakespeare
    python -m gpt_cli prepare books/ --val-files held-out.txt --out data/books   # every *.txt under books/
    cat a.txt b.txt | python -m gpt_cli prepare - --out data/piped

Each file is one document; documents are joined by ``<|endoftext|>`` (and that text inside a file is read
as the special token, as ``train --data FILE`` reads it). The text is read in pieces of about
``--chunk-chars`` characters, cut only where GPT-2's pre-tokenizer cuts anyway (after a newline between
two non-spaces, or before the space between two letters), so the ids are exactly those of the whole text
encoded at once; the pieces are encoded in batches by tiktoken's threads. Memory holds one batch, never the
corpus or a whole shard. The shard format, manifest and atomic writes are ``gpt_common.shards``; a rerun of
the same command skips the shards already whole and continues after them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import regex

from gpt_common import shards
from gpt_common.tokenizer import ENDOFTEXT, GPT2_RANKS_FILE, GPT2_RANKS_SHA256, SAMPLE_TEXT_FILE, SAMPLE_TEXT_SHA256

# A cut that changes no token: after "\n" between two non-spaces (the "\n" is a piece on its own either
# way), or before " " between two letters (no piece crosses from a letter into a space). Searched from the end.
SAFE_CUT = regex.compile(r"(?r)(?<=\S\n)(?=\S)|(?<=\p{L})(?= \p{L})")
DEFAULT_SHARD_TOKENS = 100_000_000  # llm.c's shard size: 200 MB of uint16
DEFAULT_CHUNK_CHARS = 1 << 18
BATCH_PIECES = 16  # pieces per call to the batch encoder (fixed, so the shards do not depend on --threads)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="tokenize a corpus into token shards (streaming, resumable)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("input", metavar="INPUT", help="a UTF-8 text file, a directory (its *.txt files, sorted), or - for stdin")
    add("--out", required=True, metavar="DIR", help="where the shards and manifest.json go")
    add("--tokenizer", default="gpt2", metavar="NAME",
        help="gpt2 (tiktoken, the default), bpe:RANKS (a tiktoken-format ranks file), or simple (the book's "
             "word tokenizer over the-verdict's words)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, help="the last fraction of the tokens validates (default 0.1)")
    split.add_argument("--val-files", nargs="+", metavar="FILE", help="validate on these files instead")
    add("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS,
        help=f"a shard closes at the first batch past this many tokens (default {DEFAULT_SHARD_TOKENS:,})")
    add("--chunk-chars", type=int, default=DEFAULT_CHUNK_CHARS, help="characters per piece of text (about)")
    add("--threads", type=int, default=os.cpu_count() or 1, help="tiktoken's encoding threads (default: all cores)")
    add("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ tokenizers

@dataclasses.dataclass(frozen=True)
class Encoder:
    """A tokenizer as prepare uses it: its identity (for the manifest), its end-of-text id, a batch encoder
    (texts -> one array or list of ids each), and tiktoken's plain one-text ``encode``."""

    identity: dict
    eot: int
    encode_many: Callable[[list[str]], list]
    encode_one: Callable[[str], list[int]]


def make_encoder(name: str, threads: int) -> Encoder:
    """``--tokenizer``: gpt2 and bpe:RANKS through tiktoken (batches over ``threads``), simple in Python."""
    if name == "simple":
        from gpt_common.tokenizer import SimpleTokenizerV2

        simple = SimpleTokenizerV2.from_text(SAMPLE_TEXT_FILE.read_text(encoding="utf-8"))
        identity = {"name": "simple", "n_vocab": len(simple.str_to_int), "sha256": SAMPLE_TEXT_SHA256}
        eot = simple.str_to_int[ENDOFTEXT]
        return Encoder(identity, eot, lambda texts: [simple.encode(t) for t in texts], simple.encode)
    if name == "gpt2":
        path, digest = GPT2_RANKS_FILE, GPT2_RANKS_SHA256
    elif name.startswith("bpe:") and Path(name[4:]).is_file():
        path = Path(name[4:])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        raise ValueError(f"--tokenizer must be gpt2, bpe:RANKS_FILE (an existing file) or simple, got {name!r}")
    return _tiktoken_encoder(name if name == "gpt2" else "bpe", path, digest, threads)


def _tiktoken_encoder(name: str, path: Path, digest: str, threads: int) -> Encoder:
    import tiktoken

    from gpt_common.bpe import TIKTOKEN_GPT2_PATTERN, load_ranks

    ranks = load_ranks(path, digest)
    special = {ENDOFTEXT: len(ranks)}  # the tokenizers' default (gpt_common.tokenizer.check_special_tokens)
    encoding = tiktoken.Encoding(name, pat_str=TIKTOKEN_GPT2_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=special, explicit_n_vocab=len(ranks) + 1)
    allowed = {ENDOFTEXT}
    identity = {"name": name, "n_vocab": encoding.n_vocab, "sha256": digest}

    def to_numpy(text: str) -> np.ndarray:  # tiktoken's buffer, no list of Python ints (memory, and the GIL)
        return encoding.encode_to_numpy(text, allowed_special=allowed)

    # encode_batch's pattern (a thread pool over the texts; tiktoken's Rust releases the GIL), kept for the run
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    return Encoder(identity, encoding.eot_token,
                   lambda texts: list(pool.map(to_numpy, texts) if pool else map(to_numpy, texts)),
                   lambda text: encoding.encode(text, allowed_special=allowed))


# ------------------------------------------------------------------------------------------------ the input

def input_files(source: str, flag: str = "INPUT") -> list[Path | None]:
    """The documents to read: one file, a directory's *.txt files (sorted), or [None] for stdin."""
    if source == "-":
        return [None]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"{flag} {source}: the directory holds no *.txt file")
        return files
    if not path.is_file():
        raise ValueError(f"{flag} {source}: no such file or directory")
    return [path]


def source_identity(files: list[Path | None]) -> list:
    """What a rerun must find unchanged to reuse shards: each file's path, size and modification time."""
    return [None if f is None else [str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def text_pieces(file, chunk_chars: int, max_chars: int | None = None) -> Iterator[str]:
    """The file's text in pieces, each cut at the last ``SAFE_CUT`` of the ``chunk_chars`` after the previous
    cut (read on, ``chunk_chars`` at a time, while there is none, up to ``max_chars``, default 64 chunks: only
    a cut forced there may change a token). Each piece depends only on where the last one ended, so a rerun
    that starts at a piece's end cuts the rest of the text exactly as an uninterrupted run does."""
    max_chars = 64 * chunk_chars if max_chars is None else max_chars
    text, eof = "", False
    while text or not eof:
        while not eof and (len(text) < chunk_chars or (_last_cut(text) == 0 and len(text) < max_chars)):
            want = chunk_chars - len(text) if len(text) < chunk_chars else chunk_chars
            block = file.read(want)
            eof, text = len(block) < want, text + block
        cut = len(text) if eof else (_last_cut(text) or len(text))
        if cut:
            yield text[:cut]
        text = text[cut:]


def _last_cut(text: str) -> int:
    """Where the last safe cut in ``text`` is (0: none)."""
    match = SAFE_CUT.search(text)
    return match.start() if match else 0


def _open_text(path: Path | None):
    if path is None:
        return open(sys.stdin.fileno(), encoding="utf-8", newline="", closefd=False)
    return open(path, encoding="utf-8", newline="")  # newline="": the text as it is, \r\n included


def _skip_chars(file, count: int) -> None:
    """Read past ``count`` characters already prepared (a rerun's shards are skipped, not re-encoded)."""
    while count > 0:
        block = file.read(min(count, 1 << 22))
        if not block:
            break
        count -= len(block)


def _token_batches(files, first_val, cursor, encoder: Encoder, chunk_chars: int, batch_pieces: int, on_text):
    """(ids, cursor after them, whether a shard may close here, whether val starts here), document by document.

    A cursor is (document, characters of it read). Shards close only after a batch of text, so a rerun
    from a shard's cursor never repeats a document's ``<|endoftext|>`` separator.
    """
    doc0, skip = cursor
    for doc in range(doc0, len(files)):
        begun = doc == doc0 and skip > 0
        if doc > 0 and not begun:
            yield np.array([encoder.eot]), (doc, 0), False, doc == first_val
        try:
            yield from _document(files[doc], doc, skip if begun else 0, encoder, chunk_chars, batch_pieces, on_text)
        except UnicodeDecodeError as error:  # the text is decoded as it is read, so a bad byte shows up here
            raise ValueError(f"{files[doc] or 'stdin'} is not UTF-8 text: {error}") from None


def _document(path, doc: int, chars: int, encoder: Encoder, chunk_chars: int, batch_pieces: int, on_text):
    """One document's batches, from character ``chars`` on."""
    with _open_text(path) as file:
        _skip_chars(file, chars)
        batch = []
        for piece in text_pieces(file, chunk_chars):
            batch.append(piece)
            chars += len(piece)
            on_text(piece)
            if len(batch) == batch_pieces:
                yield _encode(encoder, batch), (doc, chars), True, False
                batch = []
        if batch:
            yield _encode(encoder, batch), (doc, chars), True, False


def _encode(encoder: Encoder, pieces: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(ids, dtype=np.uint32) for ids in encoder.encode_many(pieces)])


# ------------------------------------------------------------------------------------------------ the output

def start_manifest(out: Path, settings: dict, encoder: Encoder) -> dict:
    """A new directory's first manifest, or an existing one's, reduced to its shards that are still whole."""
    if (out / shards.MANIFEST_FILE).exists():
        manifest = shards.read_manifest(out)
        if manifest.get("settings") != settings:
            raise ValueError(f"--out {out} holds another corpus (prepared from {_describe(manifest.get('settings'))}); "
                             "choose another --out, or delete that directory to prepare it again")
        if None in settings["source"]:
            raise ValueError(f"--out {out} holds a corpus prepared from stdin, which cannot be continued; "
                             "choose another --out or delete that directory")
        return _keep_whole(out, manifest)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and holds no prepared corpus ({shards.MANIFEST_FILE}); "
                         "choose a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": shards.FORMAT, "version": shards.VERSION, "complete": False,
                "tokenizer": encoder.identity, "dtype": shards.token_dtype(encoder.identity["n_vocab"]).name,
                "settings": settings, "shards": [], "val_start": None}
    shards.write_manifest(out, manifest)
    return manifest


def _describe(settings) -> str:
    if not isinstance(settings, dict):
        return "unknown settings"
    sources = [s[0] if s else "stdin" for s in settings.get("source", [])]
    return f"{', '.join(sources[:3])}{' ...' if len(sources) > 3 else ''} with {settings.get('tokenizer')}"


def _keep_whole(out: Path, manifest: dict) -> dict:
    """Keep the listed shards up to the first one that is missing or damaged; remove those after it."""
    dtype, kept = np.dtype(manifest["dtype"]), []
    for entry in manifest["shards"]:
        try:
            shards.verify_shard(out, entry, dtype)
        except ValueError:
            break
        kept.append(entry)
    for entry in manifest["shards"][len(kept):]:
        (out / entry["name"]).unlink(missing_ok=True)
    total = sum(entry["tokens"] for entry in kept)
    val_start = manifest.get("val_start")
    changed = {"shards": kept, "val_start": val_start if val_start is not None and val_start <= total else None}
    if len(kept) < len(manifest["shards"]):
        changed["complete"] = False
    return {**manifest, **changed}


@dataclasses.dataclass
class Prepared:
    """What a prepare did: the finished manifest, tokens encoded in this run, shards reused, seconds."""

    manifest: dict
    encoded: int
    reused: int
    seconds: float


def prepare(files, val_files, out: Path, encoder: Encoder, settings: dict, *, shard_tokens: int,
            chunk_chars: int, batch_pieces: int, on_text=lambda piece: None) -> Prepared:
    """Stream ``files`` (then ``val_files``) through ``encoder`` into shards under ``out``; the manifest."""
    started = time.perf_counter()
    manifest = start_manifest(out, settings, encoder)
    reused, dtype = len(manifest["shards"]), np.dtype(manifest["dtype"])
    total = sum(entry["tokens"] for entry in manifest["shards"])
    cursor = manifest["shards"][-1]["next"] if manifest["shards"] else (0, 0)
    first_val = len(files) if val_files else None
    writer, encoded = None, 0
    try:
        for ids, after, closable, val_starts in _token_batches(files + val_files, first_val, cursor, encoder,
                                                               chunk_chars, batch_pieces, on_text):
            writer = writer or shards.ShardWriter(out / shards.shard_name(len(manifest["shards"])), dtype)
            writer.append(ids)
            encoded += len(ids)
            if val_starts:
                manifest["val_start"] = total + writer.count
            if closable and writer.count >= shard_tokens:
                total += _close(out, manifest, writer, after)
                writer = None
        if writer is not None and writer.count:
            total += _close(out, manifest, writer, after)
            writer = None
    except OSError as error:
        raise OSError(f"writing {writer.tmp if writer else out} failed: {error.strerror or error}; the "
                      f"{len(manifest['shards'])} whole shard(s) before it are kept: run the same command again "
                      "to continue") from None
    finally:
        if writer is not None:
            writer.abort()
    _finish(out, manifest, total, settings)
    return Prepared(manifest, encoded, reused, time.perf_counter() - started)


def _close(out: Path, manifest: dict, writer: shards.ShardWriter, after) -> int:
    """Finish the shard and list it (with where its text ended) in a rewritten manifest; its token count."""
    entry = writer.close()
    manifest["shards"].append({**entry, "next": list(after)})
    shards.write_manifest(out, manifest)
    return entry["tokens"]


def _finish(out: Path, manifest: dict, total: int, settings: dict) -> None:
    """The split, checked (neither part empty), and the manifest marked complete."""
    if total == 0:
        raise ValueError(f"INPUT {_describe(settings)}: the corpus is empty (no tokens)")
    fraction = settings["val"]["fraction"]
    split = shards.split_point(total, fraction) if fraction is not None else manifest["val_start"]
    if split is None or split >= total:
        raise ValueError(f"the validation split of {_describe(settings)} is empty ({total} tokens in all); "
                         "use a larger --val-fraction or non-empty --val-files")
    if split <= 0:
        raise ValueError(f"the training split of {_describe(settings)} is empty ({total} tokens in all); "
                         "use a smaller --val-fraction")
    manifest.update(split={"train": [0, split], "val": [split, total]}, tokens=total, complete=True)
    shards.write_manifest(out, manifest)


# ------------------------------------------------------------------------------------------------ the command

def _check_args(args) -> float | None:
    """The flags, checked before any work; the validation fraction (None with --val-files)."""
    for name in ("shard_tokens", "chunk_chars", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.val_files is not None:
        return None
    fraction = 0.1 if args.val_fraction is None else args.val_fraction
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
    return fraction


def run(args: argparse.Namespace) -> int:
    fraction = _check_args(args)
    files = input_files(args.input)
    val_files = [path for name in args.val_files or [] for path in input_files(name, "--val-files")]
    if None in val_files:
        raise ValueError("--val-files cannot read stdin (-); give files")
    encoder = make_encoder(args.tokenizer, args.threads)
    settings = {"source": source_identity(files), "val": {"fraction": fraction, "files": source_identity(val_files)},
                "tokenizer": encoder.identity, "shard_tokens": args.shard_tokens, "chunk_chars": args.chunk_chars}
    sample, bar = [], _progress_bar(files + val_files, args.no_progress)

    def on_text(piece: str) -> None:
        if len(sample) < BATCH_PIECES:
            sample.append(piece)  # the first batch, kept for the single-thread reference below
        bar.update(len(piece))

    done = prepare(files, val_files, Path(args.out), encoder, settings, shard_tokens=args.shard_tokens,
                   chunk_chars=args.chunk_chars, batch_pieces=BATCH_PIECES, on_text=on_text)
    bar.close()
    print(closing_note(done, Path(args.out), args.threads, encoder, sample), file=sys.stderr)
    return 0


def _progress_bar(files, disable: bool):
    from tqdm import tqdm

    total = None if None in files else sum(path.stat().st_size for path in files)
    return tqdm(total=total, unit="char", unit_scale=True, file=sys.stderr, dynamic_ncols=True, disable=disable,
                desc="prepare")


def closing_note(done: Prepared, out: Path, threads: int, encoder: Encoder, sample: list[str]) -> str:
    """Tokens, split and shards, and tokens/s against the tokenizer's own single-thread speed on the same text."""
    manifest = done.manifest
    (_, split), total = manifest["split"]["train"], manifest["tokens"]
    lines = [f"prepared {total:,} tokens ({split:,} train, {total - split:,} val) in {len(manifest['shards'])} "
             f"shard(s) under {out} ({done.reused} already whole and skipped)"]
    if done.encoded:
        rate = done.encoded / done.seconds
        line = f"{done.encoded:,} tokens encoded in {done.seconds:.1f} s: {rate:,.0f} tokens/s with {threads} thread(s)"
        reference = _single_thread_rate(encoder, sample)
        if reference is not None:
            line += (f"; {encoder.identity['name']} alone on one thread, on the first batch of the same text "
                     f"({sum(map(len, sample)) / 1e6:.1f} M characters): {reference:,.0f} tokens/s "
                     f"(prepare x{rate / reference:.2f})")
        lines.append(line)
    return "\n".join(lines)


def _single_thread_rate(encoder: Encoder, sample: list[str]) -> float | None:
    if not sample:
        return None
    started = time.perf_counter()
    count = sum(len(encoder.encode_one(piece)) for piece in sample)
    seconds = time.perf_counter() - started
    return count / seconds if seconds > 0 else None
