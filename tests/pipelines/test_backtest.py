"""Backtests over a warehouse of real data (issue 6, "Must show"), caching, storage and the CLI."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from helpers import run_mwb

from backtesting.spec import BacktestSpec
from backtesting.summary import comparison
from governance.parameters import default_parameter_set
from pipelines.backtest import ParamSource, run_backtest
from pipelines.ingest import ReadOptions, load_file
from pipelines.settings import load_settings
from pipelines.stores.backtest import latest_breaches
from pipelines.warehouse import connect

DEFAULT = default_parameter_set()


@pytest.fixture(scope="module")
def real(tmp_path_factory, shared_data):
    """A warehouse holding Binance daily prices and Deribit DVOL (the real data beside us)."""
    home = tmp_path_factory.mktemp("bt-home")
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
        load_file(con, shared_data / path, ReadOptions())
    yield settings, con
    con.close()


def _summary(run, portfolio: str, model: str, label: str | None = None) -> dict:
    label = label or next(iter(run.sets))
    (found,) = [
        r
        for r in run.summary_records()
        if r["portfolio"] == portfolio and r["model"] == model and r["set"] == label
    ]
    return found


def test_fhs_var_and_calibrated_price_range_on_btc(real) -> None:
    """99 % 1-day filtered-historical VaR of a BTC position, 2021–2024: green or yellow; the PM
    margin with the daily calibrated price range likewise; with half of it, red — and the
    report names the breach dates, which are the days the realised loss beat the margin."""
    settings, con = real
    common = dict(
        start=date(2021, 1, 1),
        end=date(2024, 12, 31),
        portfolios=("btc-long",),
        mpor_days=1,
        confidence=0.99,
    )
    var = run_backtest(
        con, settings, [ParamSource("set", DEFAULT)], BacktestSpec(models=("var",), **common)
    )
    fhs = _summary(var, "btc-long", "var")
    assert fhs["coverage"]["observations"] >= 1400
    assert fhs["coverage"]["traffic_light"]["zone"] in ("green", "yellow")

    full = run_backtest(
        con,
        settings,
        [ParamSource("set", DEFAULT)],
        BacktestSpec(
            models=("deribit-pm",), calibrate=("underlyings.BTC.pm.price_range",), **common
        ),
    )
    half = run_backtest(
        con,
        settings,
        [ParamSource("set", DEFAULT)],
        BacktestSpec(
            models=("deribit-pm",),
            calibrate=("underlyings.BTC.pm.price_range",),
            scale=0.5,
            **common,
        ),
    )
    calibrated, halved = (
        _summary(full, "btc-long", "deribit-pm"),
        _summary(half, "btc-long", "deribit-pm"),
    )
    assert calibrated["coverage"]["traffic_light"]["zone"] in ("green", "yellow")
    assert halved["coverage"]["traffic_light"]["zone"] == "red"
    assert halved["coverage"]["failures"] > 3 * calibrated["coverage"]["failures"]
    # the named dates are exactly the breach rows stored for that run
    stored = con.execute(
        "SELECT date FROM bt.daily WHERE run_id = ? AND portfolio = 'btc-long' AND model = 'deribit-pm' "
        "AND breach ORDER BY date",
        [half.run_id],
    ).fetchall()
    assert halved["breach_dates"] == [d.isoformat() for (d,) in stored]
    # dated by the day the margin was set: BTC's 14 % fall on 19 May 2021 is the breach of the 18th
    assert "2021-05-18" in halved["breach_dates"]
    rows = half.daily[(half.daily["model"] == "deribit-pm")].set_index("date")
    assert (rows["loss"] > rows["margin"]).sum() == len(halved["breach_dates"])
    # the PM margin of one long coin is the calibrated move times spot: halving halves it
    both = full.daily.merge(
        half.daily, on=["date", "portfolio", "model", "currency"], suffixes=("", "_half")
    )
    ratio = (
        both[both["model"] == "deribit-pm"]["margin_half"]
        / both[both["model"] == "deribit-pm"]["margin"]
    )
    assert ratio.to_numpy() == pytest.approx(0.5, rel=1e-9)


def test_eth_haircut_what_if_side_by_side(real) -> None:
    """ETH collateral haircut 10 % vs 8 %, 2-day MPOR, 2018–2024, on identical inputs."""
    settings, con = real
    proposed = DEFAULT.with_changes({"collateral.ETH.haircut": 0.08})
    run = run_backtest(
        con,
        settings,
        [ParamSource("current", DEFAULT), ParamSource("proposed", proposed)],
        BacktestSpec(
            start=date(2018, 1, 1), end=date(2024, 12, 31), portfolios=("eth-collateral",)
        ),
    )
    assert run.mpor_days == 2
    current, prop = (_summary(run, "eth-collateral", "haircut", s) for s in ("current", "proposed"))
    assert current["from"] == "2018-01-01" and prop["to"] == current["to"]
    assert prop["coverage"]["failures"] >= current["coverage"]["failures"] > 0
    assert set(current["breach_dates"]) <= set(
        prop["breach_dates"]
    )  # a lower haircut breaches at least as often
    assert prop["worst_shortfall"]["usd"] > current["worst_shortfall"]["usd"]
    assert prop["worst_shortfall"]["date"] == current["worst_shortfall"]["date"]
    for summary in (current, prop):
        assert set(summary["coverage"]["tests"]) == {
            "pof",
            "tuff",
            "binomial",
            "cci",
            "cc",
            "tbfi",
            "tbf",
        }
    # the breach count is the number of 2-day drops beyond the haircut
    daily = run.daily[(run.daily["set_label"] == "current")].set_index("date")
    drops = daily["loss"] / daily["notional_usd"]
    assert (drops > 0.10).sum() == current["coverage"]["failures"]
    assert (drops > 0.08).sum() == prop["coverage"]["failures"]
    side = comparison(run.summary_records(), list(run.sets)).set_index("portfolio")
    # $500k of ETH below the first tier: 2 % of it is freed every day
    assert side.loc["eth-collateral", "margin_freed_usd"] == pytest.approx(0.02 * 500_000)


def test_what_if_reuses_caches_and_equals_a_cold_run(real) -> None:
    settings, con = real
    spec = BacktestSpec(
        start=date(2023, 1, 1),
        end=date(2023, 6, 30),
        models=("deribit-pm", "span"),
        portfolios=("btc-short-straddle", "eth-short-straddle", "btc-collateral"),
    )
    first = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    assert first.cache["margins"]["computed"] == 6  # 2 books × (standard, PM, SPAN)
    changed = DEFAULT.with_changes({"underlyings.BTC.pm.price_range": 0.12})
    what_if = run_backtest(con, settings, [ParamSource("set", changed)], spec)
    assert what_if.cache["margins"] == {"reused": 5, "computed": 1}  # only BTC's PM margins
    assert what_if.cache["losses"] == {"reused": 2, "computed": 0}
    haircut = run_backtest(
        con,
        settings,
        [ParamSource("set", DEFAULT.with_changes({"collateral.BTC.haircut": 0.1}))],
        spec,
    )
    assert haircut.cache["margins"]["computed"] == 0
    for table in ("bt.margin_cache", "bt.loss_cache"):
        con.execute(f"DELETE FROM {table}")
    cold = run_backtest(con, settings, [ParamSource("set", changed)], spec)
    assert cold.cache["margins"]["computed"] == 6
    pd.testing.assert_frame_equal(what_if.daily, cold.daily)
    assert what_if.run_id == cold.run_id
    # PM margins of the BTC book moved with the range, ETH's did not
    before = first.daily.set_index(["date", "portfolio", "model"])["margin"]
    after = what_if.daily.set_index(["date", "portfolio", "model"])["margin"]
    assert not np.allclose(
        before.xs(("btc-short-straddle", "deribit-pm"), level=[1, 2]),
        after.xs(("btc-short-straddle", "deribit-pm"), level=[1, 2]),
    )
    pd.testing.assert_series_equal(
        before.xs(("eth-short-straddle", "deribit-pm"), level=[1, 2]),
        after.xs(("eth-short-straddle", "deribit-pm"), level=[1, 2]),
    )


def test_runs_are_stored_once_and_feed_the_breach_trigger(real) -> None:
    settings, con = real
    spec = BacktestSpec(
        start=date(2022, 11, 1), end=date(2022, 11, 30), portfolios=("sol-collateral",)
    )
    run = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    again = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    assert again.run_id == run.run_id
    counts = con.execute("SELECT count(*) FROM bt.daily WHERE run_id = ?", [run.run_id]).fetchone()[
        0
    ]
    assert counts == len(run.daily)
    assert (
        con.execute("SELECT count(*) FROM bt.runs WHERE run_id = ?", [run.run_id]).fetchone()[0]
        == 1
    )
    stored = json.loads(
        con.execute("SELECT summary FROM bt.summaries WHERE run_id = ?", [run.run_id]).fetchone()[0]
    )
    assert stored["coverage"]["observations"] == 30
    assert any(s["window"] == "November 2022" for s in stored["stress"])
    breaches, last_day = latest_breaches(con, DEFAULT.fingerprint)
    assert last_day == date(2022, 11, 30)
    assert {b.day.isoformat() for b in breaches} >= set(
        stored["breach_dates"]
    )  # FTX: SOL fell 55 % in a day


def test_sets_may_change_by_day_without_look_ahead(real) -> None:
    """A set that changes mid-range (as the registry's would) margins each day with the set of
    that day."""
    settings, con = real
    switch = pd.Timestamp("2023-03-15")
    lower = DEFAULT.with_changes({"collateral.ETH.haircut": 0.05})
    source = ParamSource(
        "in-force", DEFAULT, lambda day: lower if day >= switch else DEFAULT, note="test"
    )
    run = run_backtest(
        con,
        settings,
        [source],
        BacktestSpec(start=date(2023, 3, 1), end=date(2023, 3, 31), portfolios=("eth-collateral",)),
    )
    margin = run.daily.set_index("date")["margin"] / run.daily.set_index("date")["notional_usd"]
    assert margin[margin.index < switch].to_numpy() == pytest.approx(0.10)
    assert margin[margin.index >= switch].to_numpy() == pytest.approx(0.05)


def test_a_set_changing_by_day_joins_its_uncached_margins_like_the_cached_ones(real) -> None:
    """Margins of a set that changes by day are not cached, so the run joins them to the
    losses itself: with the same set every day they are the cached run's rows exactly, and a
    change mid-range moves only the days after it."""
    settings, con = real
    spec = BacktestSpec(
        start=date(2023, 3, 1),
        end=date(2023, 3, 31),
        models=("deribit-pm",),
        portfolios=("btc-short-strangle", "eth-iron-condor"),
    )
    cached = run_backtest(con, settings, [ParamSource("in-force", DEFAULT)], spec, store=False)
    same = ParamSource("in-force", DEFAULT, lambda day: DEFAULT, note="test")
    uncached = run_backtest(con, settings, [same], spec, store=False)
    assert uncached.cache["margins"]["reused"] == 0
    pd.testing.assert_frame_equal(uncached.daily, cached.daily)
    switch = pd.Timestamp("2023-03-15")
    wider = DEFAULT.with_changes({"underlyings.BTC.pm.price_range": 0.25})
    changing = ParamSource("in-force", DEFAULT, lambda d: wider if d >= switch else DEFAULT)
    moved = run_backtest(con, settings, [changing], spec, store=False).daily
    pm = (moved["model"] == "deribit-pm") & (moved["portfolio"] == "btc-short-strangle")
    before, after = pm & (moved["date"] < switch), pm & (moved["date"] >= switch)
    base = cached.daily.set_index(["date", "portfolio", "model", "currency"])["margin"]
    keys = ["date", "portfolio", "model", "currency"]
    mine = moved.set_index(keys)["margin"]
    assert (mine[before.to_numpy()] == base.reindex(mine[before.to_numpy()].index)).all()
    assert (mine[after.to_numpy()] > base.reindex(mine[after.to_numpy()].index)).all()


def test_cli_json_and_errors(home, shared_data) -> None:
    con = connect(
        load_settings(home).warehouse_path
    )  # a warehouse of its own: the CLI is another process
    for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
        load_file(con, shared_data / path, ReadOptions())
    con.close()
    result = run_mwb(
        "backtest",
        "--from",
        "2023-01-01",
        "--to",
        "2023-02-28",
        "--portfolio",
        "eth-iron-condor",
        "--model",
        "span",
        "--json",
        home=home,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["run_id"].startswith("bt-") and payload["mpor_days"] == 2
    (row,) = [r for r in payload["comparison"] if r["model"] == "span"]
    assert (
        row["set.days"] == 59
    )  # every day of January and February and row["set.zone"] in ("green", "yellow", "red")
    bad = run_mwb("backtest", "--model", "black-scholes", home=home)
    assert bad.returncode == 2 and "black-scholes" in bad.stderr
    bad = run_mwb("backtest", "--from", "2030-01-01", home=home)
    assert bad.returncode == 2 and "no day in" in bad.stderr
    bad = run_mwb("backtest", "--calibrate", "var.mpor_days", home=home)
    assert bad.returncode == 2 and "--calibrate" in bad.stderr


def test_rollback_rule_counts_the_backtested_breaches_of_the_set_in_force(real) -> None:
    """The registry's genesis set in force since 2022; its backtest over November 2022 (FTX)
    breaches the SOL haircut repeatedly: the rule fires, and with no earlier set to return to it
    says so instead of drafting."""
    from datetime import UTC, datetime

    from governance.policy import DEFAULT_POLICY_DOCUMENT, parse_policy
    from governance.registry import Registry
    from governance.signing import generate_key, public_key_b64
    from pipelines.governance import run_triggers

    settings, con = real
    registry = Registry(con)
    if not registry.initialised():
        members = [{"name": n, "public_key": public_key_b64(generate_key())} for n in ("a", "b")]
        policy = parse_policy({**DEFAULT_POLICY_DOCUMENT, "committee": members})
        registry.initialise(
            DEFAULT,
            policy,
            actor="test",
            now=datetime(2026, 1, 1, tzinfo=UTC),
            effective_from=datetime(2022, 1, 1, tzinfo=UTC),
        )
    run_backtest(
        con,
        settings,
        [ParamSource("in-force", DEFAULT)],
        BacktestSpec(
            start=date(2022, 11, 1), end=date(2022, 11, 28), portfolios=("sol-collateral",)
        ),
    )
    outcomes = run_triggers(con, settings, now=datetime(2026, 1, 2, tzinfo=UTC))
    (breach,) = [o for o in outcomes if o.finding.rule == "breaches"]
    assert breach.finding.fired
    assert (
        breach.finding.evidence["window"]["end"] == "2022-11-28"
    )  # the backtest's last day, not today
    assert len(breach.finding.evidence["breaches"]) > 3
    assert "no earlier set" in breach.finding.summary and breach.draft is None


def test_two_sets_sharing_a_model_compute_its_margins_once(real) -> None:
    settings, con = real
    proposed = DEFAULT.with_changes({"collateral.ETH.haircut": 0.07})
    spec = BacktestSpec(
        start=date(2022, 3, 1),
        end=date(2022, 3, 31),
        models=("span",),
        portfolios=("eth-short-straddle", "eth-collateral"),
    )
    con.execute("DELETE FROM bt.margin_cache")
    run = run_backtest(
        con, settings, [ParamSource("current", DEFAULT), ParamSource("proposed", proposed)], spec
    )
    assert run.cache["margins"] == {
        "reused": 2,
        "computed": 2,
    }  # standard and SPAN, once for both sets
    books = run.daily[run.daily["portfolio"] == "eth-short-straddle"]
    a, b = (
        books[books["set_label"] == s].set_index(["date", "model"])["margin"]
        for s in ("current", "proposed")
    )
    pd.testing.assert_series_equal(a, b)
