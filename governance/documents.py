"""Reading documents — parameter sets, policies, proposals, configuration — from YAML or JSON,
bounded and strict, with errors that name the file, the place and the first invalid field.

One loader for every document a person writes (``mwb propose``, ``mwb run backtest``, the
proposals inbox, ``config.yaml``, policy and parameter-set files):

* only a **regular file** is read (a directory, FIFO or device is refused before it is opened),
  at most :data:`MAX_DOCUMENT_BYTES`, strict UTF-8 and no NUL byte (a binary file is refused);
* YAML aliases are **bounded**: a document may expand to at most :data:`MAX_NODES` nodes once
  every alias is followed — a 600-byte "billion laughs" document would otherwise expand to
  gigabytes in whatever walks it next (validation, hashing, printing);
* nesting deeper than :data:`MAX_DEPTH` is refused (a 20,000-deep document would exhaust the
  parser's stack);
* a **duplicate key** is refused — the second value would silently win, hiding a change from
  the person who reviews the file;
* a syntax error is one line with its line and column.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

T = TypeVar("T")

MAX_DOCUMENT_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000


class DocumentError(ValueError):
    """A document that cannot be read: not a regular file, too large, binary, or not valid."""


def validation_message(error: ValidationError) -> str:
    """``path.to.field: what is wrong`` for the first error (and how many more there are)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(document)"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    more = f"; and {error.error_count() - 1} more" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{shown}{more}"


def read_text(path: str | Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path`` (see the module docstring)."""
    path = Path(path)
    try:
        info = os.stat(path)  # follows a symlink: its target must be a regular file
    except FileNotFoundError:
        raise DocumentError(f"{path}: no such file") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DocumentError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise DocumentError(f"{path}: not a regular file (a FIFO, socket or device)")
    if info.st_size > max_bytes:
        raise DocumentError(f"{path}: {info.st_size:,} bytes; a document may have {max_bytes:,}")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise DocumentError(f"{path}: more than {max_bytes:,} bytes")
    if b"\x00" in raw:
        raise DocumentError(f"{path}: a binary file, not YAML or JSON text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: not UTF-8 text (byte {exc.start})") from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit, bounded alias expansion and unique keys."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand beyond :data:`MAX_NODES` nodes (counted once
    per path, with each shared node's size computed once: the check is linear in the file)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()  # the current path: an alias back into it is a cycle
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            if id(node) in visiting:
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to a node that contains it", node.start_mark
                )
            visiting.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        visiting.discard(id(node))
        sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        if sizes[id(node)] > MAX_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand the document beyond {MAX_NODES:,} nodes",
                node.start_mark,
            )


def parse_yaml(text: str, source: str = "document") -> Any:
    """The value of YAML (or JSON) ``text``, bounded as the module docstring says; errors are
    one line: ``source: line L, column C: problem``."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise DocumentError(f"{source}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise DocumentError(f"{source}: nested too deeply") from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse the document at ``path`` (bounded; see the module docstring)."""
    return parse_yaml(read_text(path), str(path))


def load_mapping(path: str | Path) -> dict[str, Any]:
    document = load_yaml(path)
    if not isinstance(document, dict):
        raise DocumentError(f"{path}: expected a mapping at the top level")
    return document


def load_document(
    path: str | Path, parse: Callable[[dict[str, Any]], T], error: type[ValueError]
) -> T:
    """``parse`` the mapping in the YAML/JSON file at ``path``; any failure raises ``error``
    with a one-line message that starts with the file name."""
    try:
        document = load_mapping(path)
    except DocumentError as exc:
        raise error(str(exc)) from None
    try:
        return parse(document)
    except error as exc:
        raise error(f"{path}: {exc}") from exc
