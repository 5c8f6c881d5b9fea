"""`mwb demo`: the whole story on the bundled synthetic market, through the Dagster jobs.

1. market data: the synthetic market loaded and checked (the ``market_data`` assets);
2. governance: a registry with a *demo* committee (three keys made here, under HOME/keys) and
   Deribit's published parameter set enacted as the first set in force;
3. ``daily_calibration``: fits per underlying, correlations, IV dynamics, recommendations, the
   set in force backtested, a proposal drafted where the recommendations drift, the
   calibration report;
4. a proposal to lower the ETH collateral haircut dropped in HOME/proposals/inbox and run
   through ``backtest_proposal``: submitted, current vs proposed backtested, report rendered;
5. the report's path and a three-line summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import yaml
from rich.console import Console
from rich.text import Text

from pipelines.defs.resources import build_resources
from pipelines.governance import keys_dir, policy_path
from pipelines.runs import check_outcomes, materialize, materialize_group, run_job
from pipelines.settings import WorkbenchSettings
from pipelines.warehouse import connect
from pipelines.warehouse.connection import held
from pipelines.warehouse.quality import series_summary
from reports.text import printable

AUDIT_LOG = dg.AssetKey(["gov", "audit_log"])
DEMO_COMMITTEE = ("demo-alice", "demo-bob", "demo-carol")
SYNTHETIC_LAST_DAY = "2024-12-31"  # the synthetic market's last day: the demo's "yesterday"
ETH_HAIRCUT_PROPOSAL = {
    "title": "Lower the ETH collateral haircut",
    "author": "mwb-demo",
    "motivation": "ETH collateral is haircut at 10 %. Lowering it to 8 % frees margin for "
    "accounts posting ETH; the backtest shows whether 8 % still covers a two-day ETH move.",
    "changes": {"collateral.ETH.haircut": 0.08},
    "evidence": {
        "backtest_windows": [
            {"name": "2022 deleveraging", "start": "2022-05-01", "end": "2022-12-31"}
        ]
    },
}


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _run_stages(
    settings: WorkbenchSettings, resources: dict, results: list, say: Callable, stage: Callable
) -> dg.ExecuteInProcessResult | dg.ExecutionResult:
    """The demo's four steps (their results appended to ``results``); the proposal's run."""
    from pipelines.defs.workflows.jobs import daily_run, proposal_config

    with stage("1/4 loading the synthetic market and checking it …"):
        results.append(
            materialize_group("market_data", resources, partition_key=SYNTHETIC_LAST_DAY)
        )
    say("1/4 market data loaded and checked")
    with stage("2/4 governance: demo committee, default parameter set …"):
        created = ensure_demo_registry(settings)
        results.append(materialize(dg.AssetSelection.assets(AUDIT_LOG), resources))
    say(
        "2/4 governance: "
        + (
            "demo committee adopted, Deribit's published set enacted"
            if created
            else "registry in place"
        )
    )
    with stage("3/4 daily_calibration: fits, recommendations, backtest, drift drafts …"):
        partition, config = daily_run(
            date.fromisoformat(SYNTHETIC_LAST_DAY),
            list(settings.market.assets),
            draft_reports=False,
        )
        daily = run_job("daily_calibration", resources, config, partition_key=partition)
        results.append(daily)
    say(f"3/4 daily_calibration {'succeeded' if daily.success else 'FAILED'}")
    inbox = settings.home / "proposals" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    proposal_file = inbox / "lower-eth-haircut.yaml"
    proposal_file.write_text(yaml.safe_dump(ETH_HAIRCUT_PROPOSAL, sort_keys=False))
    with stage("4/4 backtest_proposal: lower the ETH haircut, current vs proposed, report …"):
        backtest = run_job(
            "backtest_proposal", resources, proposal_config(str(proposal_file), actor="mwb-demo")
        )
        results.append(backtest)
    say(f"4/4 backtest_proposal {'succeeded' if backtest.success else 'FAILED'}")
    return backtest


def run_demo(settings: WorkbenchSettings, seed: int, console: Console | None) -> dict:
    say = console.print if console is not None else (lambda *a, **k: None)

    def stage(text: str):
        return console.status(text) if console is not None else _Quiet()

    say(Text.assemble(("Margin Workbench demo", "bold"), f" — synthetic market, seed {seed}"))
    say(f"warehouse: {settings.warehouse_path}")
    resources = build_resources(
        home=str(settings.home),
        config_file=str(settings.config_file or ""),
        synthetic_only=True,
        synthetic_seed=seed,
    )
    results = []
    # every step runs in this process: holding the warehouse open across them, each step's
    # connection shares it (some fifty connections)
    with held(settings.warehouse_path):
        backtest = _run_stages(settings, resources, results, say, stage)
    checks = [c for r in results for c in check_outcomes(r)]
    report = _report_outcome(backtest)
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
                "chosen volatility models",
                ["asset", "model", "persistence", "next-day vol"],
                models,
            )
        )
        # a check evaluated by both jobs (the market's, upstream of each) is reported once,
        # as the later run found it
        checks = list({(c["asset"], c["check"]): c for c in checks}.values())
        flagged = [c for c in checks if not c["passed"]]
        say(f"asset checks: {len(checks) - len(flagged)} passed, {len(flagged)} flagged")
        for c in flagged:
            found = "" if c["findings"] is None else f" — {c['findings']} finding(s)"
            say(f"  flagged ({c['severity']}): {c['asset']} {c['check']}{found}")
        for proposal_id, title in drafts:
            say(
                f"drafted {proposal_id}: {title} (HOME/proposals/drafts; `mwb report {proposal_id}`)"
            )
        if report:
            say("")
            # a path stays whole, and prints as itself
            say(Text.assemble(("report", "bold"), f": {printable(report['html'])}"), soft_wrap=True)
            for line in report["summary"]:
                say(f"  {line}", markup=False, soft_wrap=True)
            key = keys_dir(settings) / f"{DEMO_COMMITTEE[0]}.pem"
            say(f"vote: mwb approve {report['proposal']} --key {key}", soft_wrap=True)
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
        "report": report,
    }


def _report_outcome(result: dg.ExecuteInProcessResult) -> dict | None:
    """Where the proposal report went and its three-line summary, from the run's events."""
    if not result.success:
        return None
    (event,) = result.asset_materializations_for_node("rpt__proposal_report")
    meta = {k: v.value for k, v in event.metadata.items()}
    payload = json.loads(Path(meta["payload"]).read_text())
    tldr = payload["tldr"]
    cur, new = tldr["current"], tldr["proposed"]
    freed = tldr["freed_usd"]
    return {
        "proposal": meta["proposal"],
        "fingerprint": meta["fingerprint"],
        "html": meta["html"],
        "markdown": meta["markdown"],
        "payload": meta["payload"],
        "verdict": tldr["verdict"],
        "summary": [
            f"{payload['title']} ({meta['proposal']}, fingerprint {meta['fingerprint'][:16]}…): "
            f"recommendation — {tldr['verdict']}",
            f"breaches {cur['breaches']} → {new['breaches']} over {tldr['window']} "
            f"(worst zone {cur['worst_zone']} → {new['worst_zone']}, {tldr['model']} model)",
            (
                f"margin {'freed' if freed >= 0 else 'added'}: ${abs(freed):,.0f} on average "
                "over the test portfolios"
                if freed is not None
                else "margin freed: not measurable on these portfolios"
            ),
        ],
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
    """The three newest drafts (id, title)."""
    from governance.registry import Registry
    from governance.workflow import Status

    drafts = Registry(con).proposals(Status.DRAFT)
    return [(r.proposal_id, r.title) for r in reversed(drafts[-3:])]


def _calibration_summary(con) -> tuple[str | None, list, list]:
    from pipelines.stores.calibration import latest_run_summary

    return latest_run_summary(con)
