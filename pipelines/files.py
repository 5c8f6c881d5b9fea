"""Files a command reads or writes, checked before use: one line on failure, never a traceback.

A path to read must be a regular file (a directory, FIFO or device is refused before it is
opened, so ``/dev/zero`` or a named pipe cannot hang or exhaust a command), optionally under a
size cap. A path to write is created with its folders; a failure names the path and why.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipelines.errors import BadInputError

MAX_INPUT_BYTES = 200_000_000  # positions files, market snapshots


def regular_file(path: str | Path, *, max_bytes: int | None = None, what: str = "") -> Path:
    """``path`` if it names a regular file (after following links) of at most ``max_bytes``."""
    path = Path(path)
    label = f"{what} {path}".strip()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInputError(f"{label}: no such file") from None
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInputError(f"{label}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{label}: not a regular file (a FIFO, socket or device)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise BadInputError(f"{label}: {info.st_size:,} bytes; at most {max_bytes:,}")
    return path


def json_depth(value: object, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping once ``limit`` is passed (a bound checked
    before a document's contents are walked)."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item if isinstance(v, list | dict))
    return deepest


def read_json(path: Path, max_depth: int) -> object:
    """The JSON document at ``path`` (size already checked by the caller), nested at most
    ``max_depth`` levels; malformed or too deep is one line naming the file."""
    import json

    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise BadInputError(f"{path}: JSON nested too deeply") from None
    if json_depth(document, max_depth) > max_depth:
        raise BadInputError(f"{path}: JSON nested deeper than {max_depth} levels")
    return document


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (folders created); an unwritable path is one line."""
    path = Path(path)
    try:
        if path.is_dir():
            raise BadInputError(f"{path}: is a folder; name a file to write")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def output_folder(path: str | Path) -> Path:
    """``path`` as a folder to write into, created if needed; a file or an unwritable place
    is one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise BadInputError(f"{path}: the folder is not writable")
    return path
