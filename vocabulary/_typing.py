"""Typed aliases of the numeric packages, defined once; each package's ``_typing`` re-exports
them (one place per package to import from, as ``arch`` keeps them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

#: Anything numpy turns into an array: a list, a Series, an array.
ArrayLike: TypeAlias = npt.ArrayLike
#: A number or an array of numbers (what vectorised formulas take and return).
Values: TypeAlias = float | npt.NDArray[Any]
#: A float64 array.
FloatArray: TypeAlias = npt.NDArray[np.float64]
#: A boolean array (failures, masks).
BoolArray: TypeAlias = npt.NDArray[np.bool_]
#: An integer array (positions, counts).
IntArray: TypeAlias = npt.NDArray[np.int64]
#: A day: a date, a datetime, a pandas Timestamp or its ISO text.
DayLike: TypeAlias = date | datetime | pd.Timestamp | str

__all__ = ["ArrayLike", "BoolArray", "DayLike", "FloatArray", "IntArray", "Values"]
