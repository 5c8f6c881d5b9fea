"""Typed aliases shared by the package's modules (defined once in :mod:`vocabulary._typing`)."""

from vocabulary._typing import ArrayLike, BoolArray, DayLike, FloatArray, IntArray, Values

__all__ = ["ArrayLike", "BoolArray", "DayLike", "FloatArray", "IntArray", "Values"]
