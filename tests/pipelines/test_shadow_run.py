"""A shadow run over 30 days of the real data beside us, recorded by the daily job's asset
(``gov/shadow_runs``): a proposal that narrows ETH's and BTC's price ranges breaches where the
set in force does not (around the 5 August 2024 crash) and the gate blocks its enactment; one
that widens ETH's goes through. The
shadow report's twins agree with the registry, and ``mwb shadow`` drives the same code."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import dagster as dg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import run_mwb

from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, parse_policy
from governance.proposals import parse_proposal
from governance.registry import Registry
from governance.signing import public_key_b64, sign
from governance.workflow import Refusal
from pipelines.defs.governance.assets import shadow_runs
from pipelines.defs.resources import WarehouseResource, WorkbenchResource
from pipelines.ingest import load_file
from pipelines.settings import load_settings
from pipelines.warehouse import connect

FIRST = date(2024, 7, 20)  # 30 market days through 18 August, the 5 August crash inside
THROUGH = date(2024, 8, 20)  # the last MPOR (2 days) has elapsed
GENESIS = datetime(2024, 6, 1, tzinfo=UTC)
MEMBERS = ("alice", "bob", "carol")


def _key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"shadow:{name}".encode()).digest())


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("shadow-home")
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
        load_file(con, shared_data / path)
    policy = parse_policy(
        {
            **DEFAULT_POLICY_DOCUMENT,
            "committee": [{"name": n, "public_key": public_key_b64(_key(n))} for n in MEMBERS],
            "gate": {"shadow_days": 30},
        }
    )
    registry = Registry(con)
    registry.initialise(default_parameter_set(), policy, actor="admin", now=GENESIS)
    ids = {}
    changes = {
        # ETH's and BTC's ranges cut by the most one proposal may (a quarter)
        "narrow": {"underlyings.ETH.pm.price_range": 0.135, "underlyings.BTC.pm.price_range": 0.12},
        "wide": {"underlyings.ETH.pm.price_range": 0.22},
    }
    for label, change in changes.items():
        document = parse_proposal(
            {"title": f"{label} ranges", "author": "risk", "motivation": "test", "changes": change}
        )
        state = registry.submit(document, actor="risk", now=GENESIS)
        for name in MEMBERS[:2]:
            registry.vote(
                state.id,
                member=name,
                decision="approve",
                signature=sign(_key(name), "approve", state.proposal.fingerprint),
                now=GENESIS,
            )
        ids[label] = state.id
    con.close()
    # the CLI starts the shadows (audited)
    for proposal in ids.values():
        result = run_mwb(
            "shadow", "start", proposal, "--from", FIRST.isoformat(), "--days", "30", home=home
        )
        assert result.returncode == 0, result.stderr
    return settings, ids


def _materialize(settings, day: date):
    result = dg.materialize(
        [shadow_runs],
        resources={
            "workbench": WorkbenchResource(home=str(settings.home)),
            "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        },
        run_config={"ops": {"gov__shadow_runs": {"config": {"day": day.isoformat()}}}},
    )
    assert result.success
    return result


def test_thirty_days_through_the_daily_job_and_the_gate(home) -> None:
    settings, ids = home
    # the daily job on three days: each records what has elapsed since the last
    for day in (date(2024, 7, 31), date(2024, 8, 10), THROUGH):
        _materialize(settings, day)
    con = connect(settings.warehouse_path)
    try:
        registry = Registry(con)
        narrow, wide = (registry.shadow_days(ids[k]) for k in ("narrow", "wide"))
        assert len(narrow) == len(wide) == 30
        assert narrow[0].day == FIRST and narrow[-1].day == date(2024, 8, 18)
        assert len({d.day for d in narrow}) == 30  # each day once, across the three runs
        assert sum(len(d.shadow_only) for d in narrow) > 0  # the narrow range breached more
        assert sum(len(d.shadow_only) for d in wide) == 0
        assert all(d.shadow_margin_usd <= d.active_margin_usd + 1e-9 for d in narrow)
        assert registry.verify().ok
        now = datetime.now(UTC)
        with pytest.raises(Refusal, match="breached where the set in force did not"):
            registry.enact(ids["narrow"], actor="committee", now=now)
        assert registry.audit_entries()[-1].action == "enact_refused"
        state = registry.enact(ids["wide"], actor="committee", now=now)
        assert state.status.value == "enacted"
    finally:
        con.close()
    # the shadow report says what the registry says
    payload = json.loads(
        (settings.home / "reports" / "shadow" / ids["narrow"] / "payload.json").read_text()
    )
    assert payload["recorded"] == 30
    assert payload["shadow_only_total"] == sum(len(d.shadow_only) for d in narrow)
    markdown = (settings.home / "reports" / "shadow" / ids["narrow"] / "report.md").read_text()
    assert f"{payload['shadow_only_total']} where only the shadow set breached" in markdown


def test_the_command_reports_the_recorded_runs(home) -> None:
    settings, ids = home
    result = run_mwb("shadow", "run", "--day", THROUGH.isoformat(), "--json", home=settings.home)
    assert result.returncode == 0, result.stderr
    shadows = {s["proposal"]: s for s in json.loads(result.stdout)["shadows"]}
    assert shadows[ids["narrow"]]["recorded"] == 30 and not shadows[ids["narrow"]]["clean"]
    refused = run_mwb("shadow", "start", ids["narrow"], home=settings.home)
    assert refused.returncode != 0 and "already in shadow" in refused.stderr
