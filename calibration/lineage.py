"""What goes with every result so that it can be reproduced: library versions and a
fingerprint of the exact data used."""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np
import pandas as pd

_LIBRARIES = ("numpy", "scipy", "pandas", "arch", "statsmodels")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            versions[name] = "missing"
    return versions


def series_fingerprint(series: pd.Series) -> str:
    """SHA-256 of a series' index and values as canonical text (dates ISO, floats ``repr``).

    Equal data gives equal fingerprints whatever the dtype of the index or the order of
    construction; any changed value, date or row changes it.
    """
    sha = hashlib.sha256()
    index = pd.Index(series.index)
    for key, value in zip(index, np.asarray(series, dtype=float), strict=True):
        label = key.isoformat() if hasattr(key, "isoformat") else str(key)
        sha.update(f"{label},{float(value)!r}\n".encode())
    return sha.hexdigest()
