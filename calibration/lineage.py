"""What goes with every result so that it can be reproduced: library versions and a
fingerprint of the exact data used.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata

import numpy as np
import pandas as pd

_LIBRARIES = ("numpy", "scipy", "pandas", "arch", "statsmodels")


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    found = []
    for name in _LIBRARIES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            found.append((name, "missing"))
    return tuple(found)


def library_versions() -> dict[str, str]:
    """Versions of the numerical libraries (read once per process: they cannot change)."""
    return dict(_versions())


def series_fingerprint(series: pd.Series) -> str:
    """SHA-256 of a series' dates and values.

    Dates are hashed as little-endian int64 nanoseconds since the epoch (date-like indexes of
    any type are normalised first), values as little-endian float64: equal data gives equal
    fingerprints on every platform; any changed value, date or row changes it. A non-date
    index is hashed as text.
    """
    sha = hashlib.sha256()
    index = pd.Index(series.index)
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(index))
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        sha.update(b"datetime64[ns]\n")
        sha.update(stamps.as_unit("ns").asi8.astype("<i8").tobytes())
    except (TypeError, ValueError):
        sha.update(b"text\n")
        sha.update("\n".join(map(str, index)).encode())
    sha.update(b"\nfloat64\n")
    sha.update(np.asarray(series, dtype="<f8").tobytes())
    return sha.hexdigest()
