"""The Markdown of a fixed synthetic proposal is the same bytes on every run (issue 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "proposal.md"
RENDER = (
    "import sys; sys.path.insert(0, {here!r}); import fixtures; from reports.render import render; "
    "sys.stdout.buffer.write(render(fixtures.context()).markdown.encode())"
)


def _render_in_a_fresh_process() -> bytes:
    result = subprocess.run(
        [sys.executable, "-c", RENDER.format(here=str(HERE))],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    return result.stdout


def test_markdown_is_byte_identical_across_runs() -> None:
    first, second = _render_in_a_fresh_process(), _render_in_a_fresh_process()
    assert first == second
    if os.environ.get("MWB_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(first)
    assert first == GOLDEN.read_bytes(), (
        "the report changed: review it, then MWB_UPDATE_GOLDEN=1 make test"
    )
