"""Reading governance documents (parameter sets, policies, proposals) from YAML or JSON files,
with errors that name the file and the dotted path of the first invalid field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

T = TypeVar("T")


def validation_message(error: ValidationError) -> str:
    """``path.to.field: what is wrong`` for the first error (and how many more there are)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(document)"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    more = f"; and {error.error_count() - 1} more" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{shown}{more}"


def load_document(
    path: str | Path, parse: Callable[[dict[str, Any]], T], error: type[ValueError]
) -> T:
    """``parse`` the mapping in the YAML/JSON file at ``path``; any failure raises ``error``
    with a message that starts with the file name."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise error(f"{path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML/JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise error(f"{path}: expected a mapping at the top level")
    try:
        return parse(document)
    except error as exc:
        raise error(f"{path}: {exc}") from exc
