"""`mwb demo`: the whole pipeline on the bundled synthetic market.

Stages run through the Dagster definitions in-process, in order: market data (with its
checks), volatility fits (one run per underlying partition), then correlation, IV dynamics
and recommendations, then governance: a registry with a *demo* committee (three keys made
here, under HOME/keys) and the proposal the drift trigger drafts from the recommendations.
Each stage reports what it produced; later stages (backtests, reports) join as they are built.
"""

from __future__ import annotations

import dagster as dg
import yaml
from rich.console import Console

from pipelines.defs.resources import build_resources
from pipelines.governance import drafts_dir, keys_dir, policy_path
from pipelines.runs import check_outcomes, materialize, materialize_group
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import connect
from pipelines.warehouse.quality import series_summary

FITS = dg.AssetKey(["calib", "volatility_fits"])
DRAFTS = dg.AssetKey(["gov", "drafted_proposals"])
DEMO_COMMITTEE = ("demo-alice", "demo-bob", "demo-carol")
CALIBRATION_REST = dg.AssetSelection.assets(
    dg.AssetKey(["calib", "correlations"]),
    dg.AssetKey(["calib", "iv_dynamics"]),
    dg.AssetKey(["calib", "recommendations"]),
)


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_demo(settings: WorkbenchSettings, seed: int, console: Console | None) -> dict:
    say = console.print if console is not None else (lambda *a, **k: None)

    def stage(text: str):
        return console.status(text) if console is not None else _Quiet()

    say(f"[bold]Margin Workbench demo[/bold] — synthetic market, seed {seed}")
    say(f"warehouse: {settings.warehouse_path}")
    resources = build_resources(
        home=str(settings.home),
        config_file=str(settings.config_file or ""),
        synthetic_only=True,
        synthetic_seed=seed,
    )
    results = []
    with stage("1/4 loading the synthetic market and checking it …"):
        results.append(materialize_group("market_data", resources))
    say("1/4 market data loaded and checked")
    with stage("2/4 fitting volatility models per underlying …"):
        for asset in settings.market.assets:
            results.append(
                materialize(dg.AssetSelection.assets(FITS), resources, partition_key=asset)
            )
    say(f"2/4 volatility models fitted for {', '.join(settings.market.assets)}")
    with stage("3/4 correlation, IV dynamics and recommended parameters …"):
        results.append(materialize(CALIBRATION_REST, resources))
    say("3/4 parameters recommended")
    with stage("4/4 governance: registry, drift trigger …"):
        created = ensure_demo_registry(settings)
        results.append(materialize(dg.AssetSelection.assets(DRAFTS), resources))
    say(
        "4/4 governance: "
        + ("registry initialised with the demo committee" if created else "registry in place")
        + "; drift trigger run"
    )
    checks = [c for r in results for c in check_outcomes(r)]
    con = connect(settings.warehouse_path)
    try:
        summary = series_summary(con)
        calibration_id, models, recommendations = _calibration_summary(con)
        drafts = _drafts(con)
    finally:
        con.close()
    if console is not None:
        from pipelines.cli.output import table

        say(
            table(
                "stored series",
                ["series", "asset", "source", "first", "last", "rows"],
                summary[["series", "asset", "source", "first", "last", "rows"]].itertuples(
                    index=False
                ),
            )
        )
        say(
            table(
                "chosen volatility models",
                ["asset", "model", "persistence", "next-day vol"],
                models,
            )
        )
        say(
            table(
                f"recommended parameters ({calibration_id})",
                ["parameter", "value"],
                [(p, f"{v:.4f}") for p, v in recommendations],
            )
        )
        flagged = [c for c in checks if not c["passed"]]
        say(f"asset checks: {len(checks) - len(flagged)} passed, {len(flagged)} flagged")
        for c in flagged:
            say(
                f"  flagged ({c['severity']}): {c['asset']} {c['check']} — {c['findings']} finding(s)"
            )
        for proposal_id, title in drafts:
            key = keys_dir(settings) / f"{DEMO_COMMITTEE[0]}.pem"
            say(f"drafted {proposal_id}: {title}")
            say(
                f"  review: mwb proposals {proposal_id} · submit: mwb propose "
                f"{drafts_dir(settings) / (proposal_id + '.yaml')} · vote: mwb approve {proposal_id} --key {key}"
            )
        say('query it: mwb sql "SELECT * FROM calib.recommendations LIMIT 5"')
    return {
        "success": all(r.success for r in results),
        "warehouse": str(settings.warehouse_path),
        "calibration_id": calibration_id,
        "series": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "models": [
            {"asset": a, "model": m, "persistence": p, "next_vol_annual": v}
            for a, m, p, v in models
        ],
        "recommendations": dict(recommendations),
        "drafts": [{"id": i, "title": t} for i, t in drafts],
        "checks": checks,
    }


def ensure_demo_registry(settings: WorkbenchSettings) -> bool:
    """Initialise the registry with a demo committee unless one exists; True if created now.

    The demo's keys are ordinary Ed25519 keys in HOME/keys, named ``demo-*`` so that nobody
    mistakes them for a real committee's.
    """
    from datetime import UTC, datetime

    from governance.parameters import default_parameter_set
    from governance.policy import DEFAULT_POLICY_DOCUMENT, load_policy, parse_policy
    from governance.registry import Registry
    from governance.signing import generate_key, public_key_b64, read_private_key, write_private_key

    con = connect(settings.warehouse_path)
    try:
        registry = Registry(con)
        if registry.initialised():
            return False
        if policy_path(settings).exists():
            policy = load_policy(policy_path(settings))
        else:
            members = []
            for name in DEMO_COMMITTEE:
                path = keys_dir(settings) / f"{name}.pem"
                if path.exists():
                    key = read_private_key(path)
                else:
                    key = generate_key()
                    write_private_key(key, path)
                members.append({"name": name, "public_key": public_key_b64(key)})
            policy = parse_policy({**DEFAULT_POLICY_DOCUMENT, "committee": members})
            policy_path(settings).write_text(
                "# demo policy: the committee's keys were made by `mwb demo` (HOME/keys/demo-*.pem)\n"
                + yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False)
            )
        registry.initialise(
            default_parameter_set(), policy, actor="mwb-demo", now=datetime.now(UTC)
        )
        return True
    finally:
        con.close()


def _drafts(con) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT proposal_id, title FROM gov.proposals WHERE status = 'draft' ORDER BY created_at DESC LIMIT 3"
    ).fetchall()


def _calibration_summary(con) -> tuple[str | None, list, list]:
    row = con.execute(
        "SELECT calibration_id FROM calib.runs ORDER BY updated_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None, [], []
    calibration_id = row[0]
    models = con.execute(
        "SELECT asset, model, round(persistence, 4), round(next_vol_annual, 3) FROM calib.fits "
        "WHERE calibration_id = ? AND chosen ORDER BY asset",
        [calibration_id],
    ).fetchall()
    recommendations = con.execute(
        "SELECT parameter, value FROM calib.recommendations WHERE calibration_id = ? ORDER BY parameter",
        [calibration_id],
    ).fetchall()
    return calibration_id, models, recommendations
