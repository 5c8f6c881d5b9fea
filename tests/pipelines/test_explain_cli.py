"""``mwb explain`` on the real data beside us: contributions sum to each account's margin, and
the day-on-day change of a quiet day and of a crash day (5 August 2024) splits into market,
positions and parameters that sum to it, the end points being ``mwb margin``'s own figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_mwb

from governance.parameters import default_parameter_set
from pipelines.ingest import load_file
from pipelines.settings import load_settings
from pipelines.warehouse import connect

BOOK = (
    "account,instrument,quantity\n"
    "straddle,ETH-27SEP24-3000-C,-20\nstraddle,ETH-27SEP24-3000-P,-20\n"
    "straddle,ETH-PERPETUAL,30000\n"
    "basis,BTC-PERPETUAL,200000\nbasis,BTC-27SEP24,-150000\n"
)
LATER = BOOK + "straddle,ETH-27SEP24-2500-P,10\n"  # a put bought on the day


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("explain-home")
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
        load_file(con, shared_data / path)
    con.close()
    (home / "then.csv").write_text(BOOK)
    (home / "now.csv").write_text(LATER)
    narrow = default_parameter_set().with_changes({"underlyings.ETH.pm.price_range": 0.15})
    (home / "narrow.json").write_text(narrow.canonical_json())
    return home


def _json(home, *args) -> dict:
    result = run_mwb(*args, "--json", home=home, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def _margins(home, positions: str, day: str, params: str) -> dict:
    payload = _json(
        home, "margin", "--positions", str(home / positions), "--as-of", day,
        "--model", "deribit-pm", "--params", params,
    )  # fmt: skip
    return {(a["account"], a["currency"]): a["initial_margin"] for a in payload["accounts"]}


@pytest.mark.parametrize(
    ("day", "before", "kind"),
    [("2024-07-11", "2024-07-10", "quiet"), ("2024-08-05", "2024-08-04", "crash")],
)
def test_the_change_splits_into_market_positions_and_parameters(home, day, before, kind) -> None:
    payload = _json(
        home, "explain", "--positions", str(home / "now.csv"), "--as-of", day,
        "--vs", before, "--vs-positions", str(home / "then.csv"),
        "--params", str(home / "narrow.json"), "--vs-params", "default",
    )  # fmt: skip
    explained = payload["explain"]
    assert explained["order"] == ["market", "positions", "parameters"]
    assert (explained["from"]["day"], explained["to"]["day"]) == (before, day)
    then = _margins(home, "then.csv", before, "default")
    now = _margins(home, "now.csv", day, str(home / "narrow.json"))
    rows = {(r["account"], r["currency"]): r for r in explained["rows"]}
    assert set(rows) == set(then) | set(now)
    for key, r in rows.items():
        assert r["from"] == pytest.approx(then.get(key, 0.0), rel=1e-12)
        assert r["to"] == pytest.approx(now.get(key, 0.0), rel=1e-12)
        parts = r["market"] + r["positions"] + r["parameters"]
        assert parts == pytest.approx(r["to"] - r["from"], rel=1e-12, abs=1e-15)
    straddle = rows[("straddle", "ETH")]
    assert straddle["positions"] != 0.0 and straddle["parameters"] < 0.0  # a narrower range
    assert rows[("basis", "BTC")]["positions"] == 0.0
    move = abs(straddle["market"]) / straddle["from"]
    if kind == "crash":  # ETH fell about a fifth that day: the market moves the margin most
        assert move > 0.1
    else:  # measured 0.5 %
        assert move < 0.02
    for chart in payload["charts"]:
        assert Path(chart).read_bytes().startswith(b"\x89PNG")
    assert len(payload["charts"]) == len(rows)


def test_an_unreadable_book_exits_2_naming_the_position(home) -> None:
    bad = home / "nan.csv"
    bad.write_text("account,instrument,quantity\na,ETH-PERPETUAL,nan\n")
    result = run_mwb("explain", "--positions", str(bad), "--as-of", "2024-08-05", home=home)
    assert result.returncode == 2 and "account a, ETH-PERPETUAL" in result.stderr
    assert "Traceback" not in result.stderr


def test_contributions_sum_to_each_accounts_margin(home) -> None:
    payload = _json(
        home, "explain", "--positions", str(home / "now.csv"), "--as-of", "2024-08-05",
    )  # fmt: skip
    assert payload["explain"] is None
    for account in payload["accounts"]:
        euler = sum(c["euler"] for c in account["contributions"])
        assert euler == pytest.approx(account["initial_margin"], rel=1e-9)
        for c in account["contributions"]:
            assert set(c) >= {"instrument", "euler", "incremental", "standalone"}
            assert c["standalone"] >= 0.0
            loss = c["worst_scenario_loss"]
            assert set(loss) == {"delta", "gamma", "vega", "theta", "unexplained"}
    straddle = next(a for a in payload["accounts"] if a["account"] == "straddle")
    hedge = next(c for c in straddle["contributions"] if c["instrument"] == "ETH-27SEP24-2500-P")
    assert hedge["incremental"] < 0.0  # the bought put protects the short straddle


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vs-params", "default"), "--vs-positions and --vs-params need --vs"),
        (("--vs", "2024-08-06"), "not before the market"),
        (("--model", "mc-es"), "use mwb margin"),
        (("--vs", "2010-01-01"), "--vs 2010-01-01: no prices"),
        (("--vs", "2024-13-01"), "--vs: '2024-13-01' is not a date"),
    ],
)
def test_refusals(home, args, message) -> None:
    result = run_mwb(
        "explain", "--positions", str(home / "now.csv"), "--as-of", "2024-08-05", *args, home=home
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
