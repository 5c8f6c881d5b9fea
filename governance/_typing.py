"""Typed aliases shared by the governance modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

#: A parsed YAML or JSON document (mappings, lists and scalars).
Document: TypeAlias = Mapping[str, Any]

__all__ = ["Document"]
