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


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (GiB; a high-water mark)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def scaling_curve(sizes, measure, unit: str, known: dict | None = None) -> dict:
    """The cost at each of ``sizes``: ``measure(size)`` returns its seconds (then the peak is
    this process's high-water mark, so measure smallest first, before anything larger), or
    ``(seconds, peak GiB)`` when it ran in a process of its own; ``known`` maps sizes measured
    elsewhere in the run to ``(seconds, peak GiB)``. Prints and returns the seconds, the
    log-log slope of seconds against size (1: linear) and the peaks.
    """
    known = known or {}
    points = {}
    for n in sizes:
        if n in known:
            points[n] = known[n]
            continue
        out = measure(n)
        points[n] = out if isinstance(out, tuple) else (out, peak_rss_gib())
    return curve(points, unit)


def curve(points: dict, unit: str) -> dict:
    """:func:`scaling_curve`'s summary of ``points`` (size → (seconds, peak GiB))."""
    import numpy as np

    sizes = sorted(points)
    seconds = [points[n][0] for n in sizes]
    slope = float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])
    print(
        f"  scaling over {unit}: "
        + ", ".join(f"{n:,} {points[n][0]:.3g} s (peak {points[n][1]:.2f} GiB)" for n in sizes)
        + f"; log-log slope {slope:.3f}"
    )
    return {
        "unit": unit,
        "seconds": {str(n): round(points[n][0], 4) for n in sizes},
        "slope": round(slope, 3),
        "peak_rss_gib": {str(n): round(points[n][1], 3) for n in sizes},
    }


def in_a_fresh_process(
    module: str, function: str, argument: str, env: dict[str, str] | None = None
) -> list[float]:
    """``bench/<module>.py``'s ``function(argument)`` run in a new Python process (nothing
    cached in this one carries over; its imports are not timed by it), in ``env`` if given:
    the numbers it returns, space-separated on its last line of output."""
    script = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import {module}; "
        f"print({module}.{function}(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, argument],
        check=True, capture_output=True, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]
