"""Supplied account snapshots in a shadow run, on the real data beside us: a snapshot given at
``mwb shadow start --positions`` is margined beside the test portfolios from the first day, a
newer one (``mwb shadow accounts``) replaces it from its own day, every recorded day names the
snapshot in force, and the snapshot's content is pinned by the audit chain. Two files that
spell the same book differently are one snapshot; bad files exit 2 naming the row and field.

The accounts: ``long`` holds 100 ETH linear perpetuals through the 5 August 2024 crash; from 6
August a newer snapshot holds ``short``, $300,000 of ETH inverse perpetuals short, margined in
ETH. Over the MPOR of 7 August ETH rallies from the 6 August low to the 8 August high; Deribit-
style PM under the proposed set (range 0.135) breaches on that account where the set in force
(0.18) does not — found by backtesting both sets on that book alone — and the gate
(``gate.shadow_days``) blocks enactment on it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import real_warehouse, run_mwb

from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, parse_policy
from governance.proposals import parse_proposal
from governance.registry import Registry, TamperedError
from governance.signing import public_key_b64, sign
from governance.workflow import Refusal
from pipelines.shadow import read_snapshot, run_shadows
from pipelines.warehouse import connect

FIRST = date(2024, 7, 29)
SWITCH = date(2024, 8, 6)
THROUGH = date(2024, 8, 12)  # ten days, 29 July .. 7 August, MPOR 2 days
GENESIS = datetime(2024, 6, 1, tzinfo=UTC)
MEMBERS = ("alice", "bob", "carol")
LONG = "account,instrument,quantity\nlong,ETH_USDC-PERPETUAL,60\nlong, ETH_USDC-PERPETUAL ,40\n"
SHORT = "account,instrument,quantity\nshort,ETH-PERPETUAL,-300000\n"


def _key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"acct:{name}".encode()).digest())


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    settings, con = real_warehouse(tmp_path_factory, shared_data, "shadow-accounts")
    home = settings.home
    policy = parse_policy(
        {
            **DEFAULT_POLICY_DOCUMENT,
            "committee": [{"name": n, "public_key": public_key_b64(_key(n))} for n in MEMBERS],
            "gate": {"shadow_days": 10},
        }
    )
    registry = Registry(con)
    registry.initialise(default_parameter_set(), policy, actor="admin", now=GENESIS)
    document = parse_proposal(
        {
            "title": "narrow ETH",
            "author": "risk",
            "motivation": "test",
            "changes": {"underlyings.ETH.pm.price_range": 0.135},
        }
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
    con.close()
    (home / "long.csv").write_text(LONG)
    (home / "short.csv").write_text(SHORT)
    started = run_mwb(
        "shadow", "start", state.id, "--from", FIRST.isoformat(), "--days", "10",
        "--positions", str(home / "long.csv"), "--json", home=home,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    facts = json.loads(started.stdout)["accounts"]
    assert (facts["accounts"], facts["positions"], facts["from_day"]) == (1, 1, FIRST.isoformat())
    # the daily job records the days through 5 August, then the short book arrives
    con = connect(settings.warehouse_path)
    try:
        run_shadows(con, settings, through=date(2024, 8, 7))
    finally:
        con.close()
    switched = run_mwb(
        "shadow", "accounts", state.id, str(home / "short.csv"), "--from", SWITCH.isoformat(),
        home=home,
    )  # fmt: skip
    assert switched.returncode == 0, switched.stderr
    assert "1 account(s), 1 position(s)" in switched.stdout
    con = connect(settings.warehouse_path)
    try:
        run_shadows(con, settings, through=THROUGH)
    finally:
        con.close()
    return settings, state.id


def test_the_snapshot_in_force_is_margined_and_named(home) -> None:
    settings, proposal = home
    con = connect(settings.warehouse_path)
    try:
        registry = Registry(con)
        days = registry.shadow_days(proposal)
        long, short = registry.shadow_accounts(proposal)
        assert registry.verify().ok
        with pytest.raises(Refusal, match="account:short/deribit-pm/ETH"):
            registry.enact(proposal, actor="committee", now=datetime.now(UTC))
    finally:
        con.close()
    assert [d.day for d in days] == [date(2024, 7, 29 + k) for k in range(3)] + [
        date(2024, 8, k) for k in range(1, 8)
    ]
    assert long.rows == (("long", "ETH_USDC-PERPETUAL", 100.0),)  # one row, summed
    for d in days:
        assert d.accounts_sha256 == (short.sha256 if d.day >= SWITCH else long.sha256)
        names = {b.split("/")[0] for b in d.active_breaches + d.shadow_breaches}
        # each day's breaches name only the accounts of the snapshot in force
        assert {n for n in names if n.startswith("account:")} <= {
            "account:short" if d.day >= SWITCH else "account:long"
        }
        # capital is the sum over the books margined that day, the mean margin its average
        assert d.active_capital_usd > d.active_margin_usd > 0
    only = {(d.day, b) for d in days for b in d.shadow_only}
    assert (date(2024, 8, 7), "account:short/deribit-pm/ETH") in only
    assert not any(b.startswith("account:long/") for _, b in only)  # the crash beat both sets
    payload = json.loads(
        (settings.home / "reports" / "shadow" / proposal / "payload.json").read_text()
    )
    assert [s["sha256"] for s in payload["snapshots"]] == [long.sha256, short.sha256]
    html = (settings.home / "reports" / "shadow" / proposal / "report.html").read_text()
    assert short.sha256 in html and "account:&lt;name&gt;" in html


def test_spelling_does_not_change_the_snapshot(tmp_path) -> None:
    one = tmp_path / "one.csv"
    one.write_text(
        "account,instrument,quantity\nb,BTC-PERPETUAL,10\na,ETH_USDC-PERPETUAL,2\n"
        "a,ETH-5SEP25-3000-C,-1\n"
    )
    other = tmp_path / "other.csv"
    other.write_text(
        "instrument,quantity,account\n ETH_USDC-PERPETUAL,1.5, a \nBTC-PERPETUAL,1e1,b\n"
        "ETH_USDC-PERPETUAL,0.5,a\nETH-05SEP25-3000.0-C,-1,a\n"
    )
    day = date(2024, 1, 1)
    assert read_snapshot(one, day).sha256 == read_snapshot(other, day).sha256
    # one account spelt composed and decomposed (é as one code point, or e + U+0301) is one
    composed = tmp_path / "composed.csv"
    composed.write_text("account,instrument,quantity\nren\u00e9,BTC-PERPETUAL,1\n")
    decomposed = tmp_path / "decomposed.csv"
    decomposed.write_text("account,instrument,quantity\nrene\u0301,BTC-PERPETUAL,1\n")
    assert read_snapshot(composed, day).sha256 == read_snapshot(decomposed, day).sha256
    assert read_snapshot(one, day).rows == (
        ("a", "ETH-5SEP25-3000-C", -1.0),
        ("a", "ETH_USDC-PERPETUAL", 2.0),
        ("b", "BTC-PERPETUAL", 10.0),
    )


def test_hostile_snapshots_and_late_ones_are_refused(home, tmp_path) -> None:
    settings, proposal = home
    bad = tmp_path / "bad.csv"
    bad.write_text("account,instrument,quantity\nx,ETH_USDC-PERPETUAL,1\nx,ETH-NOPE,nan\n")
    result = run_mwb(
        "shadow", "accounts", proposal, str(bad), "--from", "2024-09-01", home=settings.home
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.csv: row 3: instrument 'ETH-NOPE'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad.write_text("account,instrument,quantity\nx,ETH_USDC-PERPETUAL,inf\n")
    result = run_mwb(
        "shadow", "accounts", proposal, str(bad), "--from", "2024-09-01", home=settings.home
    )
    assert result.returncode == 2 and "row 2: quantity 'inf'" in result.stderr
    # a snapshot from a day already recorded would rewrite it
    result = run_mwb(
        "shadow", "accounts", proposal, str(settings.home / "long.csv"), "--from", "2024-08-07",
        home=settings.home,
    )  # fmt: skip
    assert result.returncode == 2 and "would rewrite them" in result.stderr


def test_an_edited_snapshot_breaks_the_chain(home, tmp_path) -> None:
    import shutil

    settings, proposal = home
    copy = tmp_path / "copy.duckdb"
    shutil.copy(settings.warehouse_path, copy)
    con = connect(copy)
    try:
        con.execute(
            "UPDATE gov.shadow_accounts SET positions = replace(positions, '100.0', '1.0') "
            "WHERE from_day = ?",
            [FIRST],
        )
        registry = Registry(con)
        report = registry.verify()
        assert not report.ok
        assert any("shadow accounts" in p for p in report.problems)
        with pytest.raises(TamperedError, match="does not match its SHA-256"):
            registry.shadow_accounts(proposal)
    finally:
        con.close()


def test_a_book_resupplied_under_its_name_is_not_served_stale_results(home) -> None:
    """The backtest's caches key a book by its content, not its name: the same account with
    twice the perpetuals loses exactly twice as much (losses are linear in quantity)."""
    import pandas as pd

    from backtesting.spec import BacktestSpec
    from margin_engine.portfolios import from_positions
    from pipelines.backtest import ParamSource, run_backtest

    settings, _ = home
    spec = BacktestSpec(start=date(2024, 8, 1), end=date(2024, 8, 6), portfolios=())
    sets = [ParamSource("active", default_parameter_set())]
    runs = []
    con = connect(settings.warehouse_path)
    try:
        for quantity in ("1", "2"):
            frame = pd.DataFrame(
                {"account": ["acct"], "instrument": ["ETH_USDC-PERPETUAL"], "quantity": [quantity]}
            )
            books = from_positions(frame, "positions.csv")
            daily = run_backtest(con, settings, sets, spec, accounts=books, store=False).daily
            runs.append(daily[daily["model"] == "deribit-pm"].set_index("date"))
    finally:
        con.close()
    one, two = runs
    assert (one["loss"].abs() > 0).all()
    assert two["loss"].to_numpy() == pytest.approx(2 * one["loss"].to_numpy(), rel=1e-12)
    assert (two["margin"] > one["margin"]).all()
