"""Helpers shared by the benchmarks: where things go and how results are written."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
WORK = BENCH / "work"  # generated inputs; ignored by git


def best_of(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one untimed warm-up
    (compilation, caches)."""
    import time

    fn()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return min(runs)


def shared_data() -> Path | None:
    for candidate in (
        os.environ.get("MWB_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        Path("/work/shared/data"),
    ):
        if candidate and (Path(candidate) / "options").exists():
            return Path(candidate)
    return None


def environment() -> dict:
    versions = {}
    for package in ("duckdb", "numpy", "scipy", "arch", "pandas", "dagster"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "versions": versions,
    }


def write_results(name: str, figures: dict, targets: dict) -> Path:
    """Write ``bench/results/NAME.json`` and print every target with its verdict."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"figures": figures, "targets": targets, "environment": environment()}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    for target_name, target in targets.items():
        print(
            f"  target {target_name}: {target['value']:.4g} (want {target['target']}) "
            f"-> {'met' if meets(target) else 'NOT MET'}"
        )
    print(f"  wrote {path.relative_to(REPO)}")
    return path


def meets(target: dict) -> bool:
    op, bound = target["target"].split()
    value, bound = float(target["value"]), float(bound)
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]
