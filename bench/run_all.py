"""Run every benchmark in bench/ (``make bench``) and summarise their targets."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, RESULTS, meets  # noqa: E402

ORDER = ["ingest", "calibration", "margin", "backtest", "demo"]


def main(names: list[str]) -> int:
    names = names or [n for n in ORDER if (BENCH / f"{n}.py").exists()]
    for name in names:
        print(f"== bench/{name}.py")
        saved = list(sys.path)
        runpy.run_path(str(BENCH / f"{name}.py"), run_name="__main__")
        sys.path[:] = saved
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
