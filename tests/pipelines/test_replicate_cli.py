"""``mwb replicate``: the venue's published file in, our numbers beside the venue's out; bad
files exit 2 with one line naming the file and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_mwb

CASES = Path(__file__).resolve().parents[1] / "data" / "derive_pmrm2"
CASE = CASES / "test_43_skews_linear_as_worst_case_complex.json"


def test_json_carries_ours_and_derives(home) -> None:
    result = run_mwb("replicate", "derive", str(CASE), "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    case = json.loads(CASE.read_text())["Result"]
    published = payload["published"]
    # Derive reports balances (equity less requirement); the payload reports requirements
    assert published["initial_margin"] == pytest.approx(
        float(case["PortfolioMTM"]) - float(case["IM"]), rel=1e-12
    )
    assert payload["initial_margin"] == pytest.approx(published["initial_margin"], rel=1e-8)
    assert payload["maintenance_margin"] == pytest.approx(published["maintenance_margin"], rel=1e-8)
    assert len(payload["scenarios"]) == len(published["scenarios"])
    assert abs(payload["difference"]["largest_scenario"]) < 1e-6
    worst = payload["worst_scenario"]
    assert payload["scenarios"][worst]["vol_shock"] == "linear"  # the case's name says so


def test_table_prints_both(home) -> None:
    result = run_mwb("replicate", "derive", str(CASE), home=home)
    assert result.returncode == 0, result.stderr
    assert "published" in result.stdout and "initial margin:" in result.stdout


def test_a_case_without_a_result_prints_ours_only(home, tmp_path) -> None:
    case = json.loads(CASE.read_text())
    del case["Result"]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(case))
    result = run_mwb("replicate", "derive", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["published"] is None and payload["initial_margin"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["Scenario"].update(SpotPrice="abc"), "Scenario.SpotPrice: Input should be"),
        (lambda c: c["Scenario"]["Options"][1].pop("Strike"), r"Scenario.Options\[1\].Strike"),
        (lambda c: c["Scenario"]["Options"][0].update(Expiry=1), r"Options\[0\].Expiry: no Opt"),
        (
            lambda c: c["Parameters"]["Scenarios"][0].update(VolShockDirection="Sideways"),
            r"Scenarios\[0\].VolShockDirection: 'Sideways'",
        ),
        (lambda c: c["Parameters"]["Margin"].update(IM_LOSS_FACTOR=0.1), "im_factor must be in"),
        (lambda c: c["Result"]["reg_losses"].pop(), "scenario losses for"),
        (lambda c: c["Scenario"].update(StablePrice=0), "stable_price must be > 0"),
    ],
)
def test_bad_fields_exit_2_naming_them(home, tmp_path, change, message) -> None:
    case = json.loads(CASE.read_text())
    change(case)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(case))
    result = run_mwb("replicate", "derive", str(path), home=home)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0]
    assert re.search(message, lines[0]), lines[0]


def test_hostile_files(home, tmp_path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50 + "]" * 50)
    broken = tmp_path / "broken.json"
    broken.write_text('{"Scenario": ')
    for path, message in (
        (deep, "nested deeper than"),
        (broken, "not valid JSON"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "is a folder"),
    ):
        result = run_mwb("replicate", "derive", str(path), home=home)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    result = run_mwb("replicate", "binance", str(CASE), home=home)
    assert result.returncode == 2 and "choose from deribit, derive" in result.stderr


PERP_CASE = """
as_of: 2026-03-30T08:00:00Z
spot: {ETH: 2000}
positions:
  - {instrument: ETH_USDC-PERPETUAL, quantity: 3}
params: published
published: {initial_margin: 1000, maintenance_margin: 500}
"""


@pytest.mark.parametrize(
    ("venue", "initial", "maintenance"),
    [
        # a long linear perpetual of N = 3 × 2,000 USD under each venue's published values
        ("paradex", 0.16, 0.08),  # the −16 % scenario at weight 1; MMR half
        ("aevo", 1.25 * 0.20, 0.20),  # the −20 % move; IM 1.25 × MM
        ("okx", 1.3 * 0.24, 0.24),  # MR6's −24 %; IMR 1.3 × MMR
        ("hyperliquid", 1 / 25, 0.5 / 25),  # ETH's 25x tier; maintenance half of it
        # Derive: the −18 % scenario × IM factor 1, plus 1 % IM and 3 % MM perp contingencies
        ("derive", 0.18 + 0.01 + 0.03, 0.8 * 0.18 + 0.03),
    ],
)
def test_yaml_cases_are_the_closed_forms(home, tmp_path, venue, initial, maintenance) -> None:
    path = tmp_path / "perp.yaml"
    path.write_text(PERP_CASE)
    result = run_mwb("replicate", venue, str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    notional = 6_000.0
    assert payload["initial_margin"] == pytest.approx(initial * notional, rel=1e-9)
    assert payload["maintenance_margin"] == pytest.approx(maintenance * notional, rel=1e-9)
    assert payload["difference"]["initial_margin"] == pytest.approx(
        payload["initial_margin"] - 1000.0
    )
    if venue in ("paradex", "aevo", "derive"):  # the models with a scenario table
        worst = min(s["pnl"] for s in payload["scenarios"])
        assert worst < 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PERP_CASE.replace("ETH_USDC-PERPETUAL", "ETH-XX"), r"positions\[0\].instrument"),
        (
            PERP_CASE.replace("ETH_USDC-PERPETUAL, quantity: 3", "ETH-26JUN26-2000-C, quantity: 1"),
            r"positions\[0\].instrument: .*implied vol",
        ),
        (PERP_CASE.replace("params: published", "params: binance"), "params: 'binance'"),
        (PERP_CASE.replace("spot: {ETH: 2000}", "spot: {}"), "spot: Dictionary should have"),
        (PERP_CASE.replace("quantity: 3", "quantity: .nan"), r"positions\[0\].quantity: .*finite"),
        (PERP_CASE.replace("{ETH: 2000}", "{ETH: .inf}"), "spot.ETH: .*finite"),
        ("a: &x [*x]", "refers to a node that contains it"),
    ],
)
def test_bad_yaml_cases_exit_2_naming_the_field(home, tmp_path, text, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_mwb("replicate", "paradex", str(path), home=home)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines


# Aevo's worked example 1.2 (docs.aevo.xyz, Portfolio Margin): a bull call spread on ETH at $1,300.
AEVO_BULL_SPREAD = """\
as_of: 2022-07-29T08:00:00Z
spot: {ETH: 1300}
positions:
  - {instrument: ETH-26AUG22-1500-C, quantity: 1, iv: 0.50}
  - {instrument: ETH-26AUG22-1700-C, quantity: -1, iv: 0.70}
params: aevo
published: {initial_margin: 21.90, maintenance_margin: 17.52}
"""
AEVO_BULL_SPREAD_TOTALS = [43.80, 45.65, 45.20, 25.99, 15.74, 3.24, 11.82, 0.00, -4.52, 2.28,
                           -4.33, -4.24, -2.72, -4.42, -4.17]  # fmt: skip


def test_aevos_published_bull_spread_through_replicate(home, tmp_path) -> None:
    """Aevo's own table and margins out of ``mwb replicate aevo``: each scenario's total to the
    cent (two half-cent roundings), MM and IM to the cent."""
    path = tmp_path / "bull_spread.yaml"
    path.write_text(AEVO_BULL_SPREAD)
    result = run_mwb("replicate", "aevo", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    ours = [s["pnl"] for s in payload["scenarios"]]
    assert ours == pytest.approx(AEVO_BULL_SPREAD_TOTALS, abs=0.0101)
    assert abs(payload["difference"]["maintenance_margin"]) < 0.0101
    assert abs(payload["difference"]["initial_margin"]) < 1.25 * 0.0101
    assert payload["components"]["floor"] == pytest.approx(13.0, rel=1e-12)


DERIBIT = Path(__file__).resolve().parents[1] / "data" / "deribit_pme"


@pytest.mark.parametrize(
    ("name", "currency"),
    [("btc_perpetual_and_future.json", "BTC"), ("eth_short_perpetual.json", "ETH")],
)
def test_deribit_pme_simulate_replies(home, name, currency) -> None:
    """Deribit's own reply in, its margins and risk vectors beside ours: margins to the
    reply's printed digits (1e-9 coin), every published scenario to 1e-15."""
    path = DERIBIT / name
    result = run_mwb("replicate", "deribit", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    [entry] = payload["currencies"]
    assert entry["currency"] == currency
    reply = json.loads(path.read_text())["result"]["margins"][currency.lower()]
    details = reply["initial_margin_details"]["risk_matrix_margin_details"]
    assert entry["initial_margin"] == pytest.approx(reply["initial_margin"], abs=1e-9)
    assert entry["maintenance_margin"] == pytest.approx(reply["maintenance_margin"], abs=1e-9)
    for key in ("worst_case", "roll_shock", "delta_shock"):
        assert entry["components"][key] == pytest.approx(details[key], abs=1e-11)
    published = entry["published"]["scenarios"]
    if published:
        assert len(published) == 35
        assert entry["difference"]["largest_scenario"] < 1e-15
    assert payload["initial_margin"] == entry["initial_margin"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r["portfolio"]["position"].update({"ETH-27MAR26-2000-C": -1.0}),
            r"result\.ticker\.ETH-27MAR26-2000-C\.mark_iv: needed for an option",
        ),
        (
            lambda r: r["portfolio"]["position"].update({"ETH-XX": 1.0}),
            r"result\.portfolio\.position\.ETH-XX",
        ),
        (
            lambda r: r["model_params"]["currency_pair"]["eth_usd"].update(price_range=-0.2),
            r"result\.model_params: .*price_range",
        ),
        (lambda r: r["model_params"].pop("general"), r"result\.model_params\.general: Field"),
        (lambda r: r["index_price"].update(eth_usd=float("nan")), r"result\.index_price\.eth_usd"),
        (lambda r: r["portfolio"]["position"].update({"SOL-PERPETUAL": 1.0}), "no index_price"),
    ],
)
def test_bad_deribit_replies_exit_2_naming_the_field(home, tmp_path, change, message) -> None:
    reply = json.loads((DERIBIT / "eth_short_perpetual.json").read_text())
    change(reply["result"])
    path = tmp_path / "reply.json"
    path.write_text(json.dumps(reply))
    result = run_mwb("replicate", "deribit", str(path), home=home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
