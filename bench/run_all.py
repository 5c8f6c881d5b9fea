"""Run every benchmark in bench/ (``make bench``) and summarise their targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, RESULTS, meets  # noqa: E402

ORDER = [
    "ingest",
    "calibration",
    "margin",
    "montecarlo",
    "liquidation",
    "backtest",
    "sweep",
    "demo",
]


def main(names: list[str]) -> int:
    names = names or [n for n in ORDER if (BENCH / f"{n}.py").exists()]
    for name in names:
        print(f"== bench/{name}.py", flush=True)
        # Each benchmark in its own process: peak-memory figures (ru_maxrss) are per process,
        # and one benchmark's caches must not flatter the next one's timings.
        done = subprocess.run([sys.executable, str(BENCH / f"{name}.py")], check=False)
        if done.returncode != 0:
            print(f"bench/{name}.py failed with exit code {done.returncode}")
            return done.returncode
    failed = []
    print("== targets")
    for name in names:
        path = RESULTS / f"{name}.json"
        for target_name, target in json.loads(path.read_text())["targets"].items():
            ok = meets(target)
            print(
                f"  {name}.{target_name}: {target['value']} ({target['target']}) "
                f"{'met' if ok else 'NOT MET'}"
            )
            if not ok:
                failed.append(f"{name}.{target_name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
