"""``mwb site``: the committee portal — a static, self-contained site of every proposal with its
status, votes and quorum progress, its report and shadow report, the calibration history (each
recommended parameter over time against the value in force and the policy's bounds) and the
audit head to publish.

Every page is one HTML file without external resources (styles inline, charts inline SVG); the
reports are copied beside the pages; ``site.json`` carries every figure, each report's SHA-256
as its reference id (for on-chain publication) and the audit head.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from governance.registry import Registry
from pipelines.files import output_folder
from pipelines.stores import calibration as calibration_store
from pipelines.stores import reports as report_store

if TYPE_CHECKING:
    import duckdb

    from pipelines.settings import WorkbenchSettings


def _copy_report(source: Path, target: Path) -> str | None:
    """Copy a report folder; the SHA-256 of its report.html (None when it is gone)."""
    html = source / "report.html"
    if not html.is_file():
        return None
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return hashlib.sha256(html.read_bytes()).hexdigest()


def _calibration_history(con, registry: Registry | None) -> list[dict]:
    """Each recommended parameter over the calibrations, with the value in force on each day
    and the policy's bounds."""
    from datetime import UTC, datetime, time, timedelta

    rows = calibration_store.recommendation_history(con)
    policy = registry.policy() if registry is not None else None
    sets: dict[str, Any] = {}  # each set in force read once, however many calibrations it spans
    out: dict[str, dict] = {}
    for calibration_id, as_of, parameter, value in rows:
        entry = out.setdefault(
            parameter,
            {"parameter": parameter, "points": [], "bounds": [None, None]},
        )
        in_force = None
        if registry is not None:
            at = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC)
            active = registry.active_at(at)
            if active is not None:
                if active.parameter_set not in sets:
                    sets[active.parameter_set] = registry.parameter_set(active.parameter_set)
                try:
                    found = sets[active.parameter_set].get(parameter)
                    in_force = float(found) if isinstance(found, int | float) else None
                except (KeyError, ValueError):
                    in_force = None
        entry["points"].append(
            {
                "calibration": calibration_id,
                "day": as_of.isoformat(),
                "recommended": float(value),
                "in_force": in_force,
            }
        )
    if policy is not None:
        for entry in out.values():
            found = policy.bound_for(entry["parameter"])
            if found is not None:
                entry["bounds"] = [found[1].min, found[1].max]
    return list(out.values())


def build_site(con: duckdb.DuckDBPyConnection, settings: WorkbenchSettings, out_dir: Path) -> dict:
    """Write the portal under ``out_dir`` (see the module); return its payload."""
    from reports import charts
    from reports.environment import environment
    from reports.serialize import dumps

    out = output_folder(out_dir)
    registry = Registry(con)
    initialised = registry.initialised()
    reports: dict[tuple[str, str], dict] = {}
    for report_id, kind, title, folder, files in report_store.report_rows(con):
        target = Path("reports") / kind / report_id
        sha = _copy_report(Path(folder), out / target)
        if sha is not None:
            recorded = json.loads(files).get("html")  # keys as report.write names the files
            reports[(report_id, kind)] = {
                "title": title,
                "path": (target / "report.html").as_posix(),
                "sha256": sha,
                # the file as the warehouse recorded it when written (False: changed since)
                "as_recorded": recorded == sha,
            }
    proposals, head, committee, quorum = [], None, [], None
    if initialised:
        policy = registry.policy()
        committee, quorum = [m.name for m in policy.committee], policy.quorum
        entries = registry.audit_entries()
        head = {"seq": entries[-1].seq, "hash": entries[-1].hash} if entries else None
        for record in registry.proposals():
            state = registry.state(record.proposal_id)
            shadow = registry.shadow(record.proposal_id)
            shadow_report = None
            shadow_folder = settings.home / "reports" / "shadow" / record.proposal_id
            target = Path("reports") / "shadow" / record.proposal_id
            sha = _copy_report(shadow_folder, out / target)
            if sha is not None:
                shadow_report = {"path": (target / "report.html").as_posix(), "sha256": sha}
            proposals.append(
                {
                    **record.as_dict(),
                    "changes": [c.as_dict() for c in state.changes],
                    "votes": [
                        {
                            "member": v.member,
                            "decision": v.decision,
                            "at": v.at.isoformat(timespec="seconds"),
                        }
                        for v in state.votes
                    ],
                    "approvals_count": len(state.valid_votes(policy, "approve")),
                    "quorum": policy.quorum,
                    "report": reports.get((record.proposal_id, "proposal")),
                    "shadow": None
                    if shadow is None
                    else {
                        "first_day": shadow.first_day.isoformat(),
                        "days": shadow.days,
                        "recorded": len(registry.shadow_days(record.proposal_id)),
                        "report": shadow_report,
                    },
                    "page": f"proposals/{record.proposal_id}.html",
                }
            )
    history = _calibration_history(con, registry if initialised else None)
    calibrations = [
        {"id": report_id, **r} for (report_id, kind), r in reports.items() if kind == "calibration"
    ]
    payload = {
        "audit_head": head,
        "committee": committee,
        "quorum": quorum,
        "proposals": proposals,
        "calibration_reports": calibrations,
        "calibration_history": history,
    }
    env = environment()
    generated = f"from the registry as of audit entry {head['seq'] if head else 'none'}"
    charts_by_parameter = {}
    for k, entry in enumerate(history):
        points = entry["points"]
        chart = charts.parameter_history(
            f"parameter-{k}",
            entry["parameter"],
            [p["day"] for p in points],
            [p["recommended"] for p in points],
            [p["in_force"] for p in points],
            tuple(entry["bounds"]),
        )
        charts_by_parameter[entry["parameter"]] = chart
    pages = {
        "index.html": env.get_template("site_index.html.j2").render(
            title="Margin Workbench — committee portal",
            ctx=payload,
            generated_at=generated,
            prefix="",
        ),
        "calibration.html": env.get_template("site_calibration.html.j2").render(
            title="Calibration history",
            ctx=payload,
            charts=charts_by_parameter,
            generated_at=generated,
            prefix="",
        ),
    }
    for proposal in proposals:
        pages[proposal["page"]] = env.get_template("site_proposal.html.j2").render(
            title=f"{proposal['id']}: {proposal['title']}",
            p=proposal,
            ctx=payload,
            generated_at=generated,
            prefix="../",
        )
    for name, html in pages.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    (out / "site.json").write_text(
        dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return {"out": str(out), "pages": sorted(pages), **json.loads(dumps(payload))}
