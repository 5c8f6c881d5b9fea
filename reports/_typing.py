"""Typed aliases shared by the report modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

#: A JSON-safe record (what payloads and stored summaries hold).
Record: TypeAlias = Mapping[str, Any]

__all__ = ["Record"]
