"""A proposal whose evidence asks for Monte Carlo margin (issue 16: "usable wherever a margin
model is … reports"): the report backtests both sets under ``mc-es`` at the proposal's paths,
says so in its reproducibility appendix, and a proposal without those fields keeps the
fingerprint it always had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import reported_proposal

from governance.proposals import ProposalError, parse_proposal
from pipelines.settings import load_settings
from pipelines.warehouse import connect

DOCUMENT = {
    "title": "Lower the ETH haircut",
    "author": "risk-team",
    "motivation": "ETH volatility fell.",
    "changes": {"collateral.ETH.haircut": 0.08},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    evidence = {"models": ["deribit-pm", "mc-es"], "paths": 128}
    home, proposal_id, out = reported_proposal(
        tmp_path_factory, "mc-report-home", {**DOCUMENT, "evidence": evidence}, timeout=900
    )
    files = {k: Path(v) for k, v in out["files"].items()}
    return home, proposal_id, json.loads(files["payload"].read_text()), files


def test_the_report_backtests_both_sets_under_monte_carlo(report) -> None:
    home, proposal_id, payload, files = report
    rows = [r for r in payload["coverage"] if r["model"] == "mc-es"]
    assert rows, "no mc-es rows in the report's coverage"
    assert {m["model"] for m in payload["coverage"]} <= {"deribit-pm", "mc-es", "haircut"}
    for row in rows:
        current, proposed = row["sets"]["current"], row["sets"]["proposed"]
        assert current["days"] > 500 and current["days"] == proposed["days"]
        # every book has a margin but the fully hedged basis trade (no loss on any path)
        assert (current["mean_margin_usd"] > 0) == (row["portfolio"] != "btc-basis-trade")
    # a haircut change does not move an option book's Monte Carlo margin: the same paths
    # (seed, day streams) under both sets give the same numbers
    same = [r for r in rows if not r["portfolio"].endswith("collateral")]
    assert all(
        r["sets"]["current"]["mean_margin_usd"] == r["sets"]["proposed"]["mean_margin_usd"]
        for r in same
    )
    appendix = {r["name"]: r["value"] for r in payload["appendix"]["reproducibility"]}
    assert appendix["Monte Carlo margin paths a day (Sobol)"] == "128"
    assert "Monte Carlo: 128 Sobol paths a day" in " ".join(payload["data_and_models"]["notes"])
    markdown = files["markdown"].read_text(encoding="utf-8")
    assert "mc-es" in markdown
    # the backtest behind it ran at those paths: its stored spec says so
    con = connect(load_settings(home).warehouse_path)
    try:
        specs = [json.loads(s) for (s,) in con.execute("SELECT spec FROM bt.runs").fetchall()]
    finally:
        con.close()
    assert any(s["paths"] == 128 and "mc-es" in s["models"] for s in specs)


def test_evidence_models_are_checked_and_old_fingerprints_kept() -> None:
    plain = parse_proposal(DOCUMENT)
    assert set(plain.evidence.model_dump(mode="json")) == {"backtest_windows", "attachments"}
    assert plain.evidence.backtest_models == ("deribit-pm", "span", "var")
    chosen = parse_proposal({**DOCUMENT, "evidence": {"models": ["mc-var"]}})
    assert chosen.evidence.model_dump(mode="json")["models"] == ["mc-var"]
    assert chosen.model_dump(mode="json") != plain.model_dump(mode="json")
    for evidence, message in (
        ({"models": ["MC-ES"]}, "not one of"),
        ({"models": ["var", "var"]}, "listed twice"),
        ({"models": ["var"], "paths": 500}, "only Monte Carlo models"),
        ({"models": ["mc-es"], "paths": 10**7}, "paths"),
    ):
        with pytest.raises(ProposalError, match=message):
            parse_proposal({**DOCUMENT, "evidence": evidence})
