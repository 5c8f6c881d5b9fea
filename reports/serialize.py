"""Strict JSON for every payload the workbench writes or prints.

JSON has no NaN or infinity: Python's encoder writes them as the invalid tokens ``NaN`` and
``Infinity`` (or, with ``allow_nan=False``, raises — a command dying on a standard error that
is NaN at a boundary). :func:`plain` turns a result into JSON-safe Python values once, with one
set of rules, and :func:`dumps` encodes it strictly:

* NaN and ±infinity become ``null`` (a missing number, which is what they mean here);
* numpy scalars and arrays become Python numbers and lists;
* a ``date`` is ``YYYY-MM-DD``; a ``datetime`` its ISO form (a tz-naive midnight timestamp —
  a pandas day — is written as the day);
* paths are strings; tuples and sets are lists (sets sorted); mapping keys are strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

import numpy as np


def plain(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as JSON-safe Python (see the module docstring); ``default`` converts values of
    other types (else they are a :class:`TypeError`)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, datetime):
        midnight = value.tzinfo is None and (value.hour, value.minute, value.second) == (0, 0, 0)
        if midnight and value.microsecond == 0 and type(value).__name__ == "Timestamp":
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, default) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return [plain(v, default) for v in sorted(value, key=str)]
    if isinstance(value, list | tuple):
        return [plain(v, default) for v in value]
    if default is not None:
        return plain(default(value))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """Strict JSON of ``value`` (``json.dumps`` keywords such as ``indent`` and ``sort_keys``
    pass through); never writes NaN or Infinity."""
    return json.dumps(plain(value, default), allow_nan=False, **kwargs)
