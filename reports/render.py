"""Rendering a :class:`~reports.context.ReportContext` to its HTML and Markdown twins and the
JSON payload, and writing them with the chart PNGs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from reports.charts import Chart
from reports.context import ReportContext
from reports.environment import environment
from reports.serialize import dumps


@dataclass(frozen=True)
class RenderedReport:
    html: str
    markdown: str
    payload: dict
    charts: tuple[Chart, ...]

    @property
    def payload_json(self) -> str:
        return dumps(self.payload, indent=2, sort_keys=True, default=str) + "\n"

    def fingerprints(self) -> dict[str, str]:
        return {
            "report.html": hashlib.sha256(self.html.encode()).hexdigest(),
            "report.md": hashlib.sha256(self.markdown.encode()).hexdigest(),
            "payload.json": hashlib.sha256(self.payload_json.encode()).hexdigest(),
        }


def render(context: ReportContext) -> RenderedReport:
    env = environment()
    values = {
        "ctx": context.data,
        "charts": context.charts,
        "title": context.title,
        "generated_at": context.data["generated_at"],
    }
    html = env.get_template(f"{context.kind}.html.j2").render(**values)
    markdown = env.get_template(f"{context.kind}.md.j2").render(**values)
    return RenderedReport(html, _tidy_markdown(markdown), context.payload(), context.charts)


def _tidy_markdown(text: str) -> str:
    """At most one blank line in a row, one final newline: stable, diff-friendly output."""
    lines: list[str] = []
    blank = False
    for line in text.splitlines():
        if not line.strip():
            if not blank and lines:
                lines.append("")
            blank = True
            continue
        lines.append(line.rstrip())
        blank = False
    return "\n".join(lines).rstrip("\n") + "\n"


def write(report: RenderedReport, out_dir: str | Path) -> dict[str, Path]:
    """``report.html``, ``report.md``, ``payload.json`` and one PNG per chart in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / "report.html",
        "markdown": out / "report.md",
        "payload": out / "payload.json",
    }
    paths["html"].write_text(report.html, encoding="utf-8")
    paths["markdown"].write_text(report.markdown, encoding="utf-8")
    paths["payload"].write_text(report.payload_json, encoding="utf-8")
    for chart in report.charts:
        path = out / chart.filename
        path.write_bytes(chart.png)
        paths[chart.id] = path
    return paths
