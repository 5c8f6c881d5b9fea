"""`mwb demo` wall time on a fresh home, after installation (the README's first command).

Runs the installed command in a subprocess, as a newcomer does, with an empty ``MWB_HOME``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, write_results  # noqa: E402

TARGET_SECONDS = 30


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="mwb-demo-"))
    env = {**os.environ, "MWB_HOME": str(home)}
    env.pop("MWB_CONFIG", None)
    mwb = Path(sys.executable).parent / "mwb"
    started = time.perf_counter()
    result = subprocess.run([str(mwb), "demo"], env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(home, ignore_errors=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        raise SystemExit("mwb demo failed")
    printed = next((line for line in result.stdout.splitlines() if line.startswith("report: ")), "")
    if not printed.endswith("report.html"):
        raise SystemExit("mwb demo did not print the report's path")
    print(f"mwb demo on a fresh home: {seconds:.1f} s; {printed}")
    write_results(
        "demo",
        {"seconds": round(seconds, 2), "report_path_printed": True},
        {"demo_wall_seconds": {"value": round(seconds, 2), "target": f"<= {TARGET_SECONDS}"}},
    )


if __name__ == "__main__":
    main()
