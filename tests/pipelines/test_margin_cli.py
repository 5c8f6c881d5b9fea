"""``mwb margin``: the JSON contract, partial failures, markets from files and the warehouse."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import run_mwb

from pipelines.ingest import load_file
from pipelines.margin import market_from_warehouse
from pipelines.settings import load_settings
from pipelines.sources.synthetic import write_synthetic_market
from pipelines.warehouse import connect

CHAIN = "options/deribit_options_snapshot_20260330T051423Z.csv"


@pytest.fixture
def positions(tmp_path):
    path = tmp_path / "positions.csv"
    path.write_text(
        "account,instrument,quantity\n"
        "condor,BTC-29MAY26-60000-P,1\ncondor,BTC-29MAY26-64000-P,-1\n"
        "condor,BTC-29MAY26-72000-C,-1\ncondor,BTC-29MAY26-76000-C,1\n"
        "eth,ETH-26JUN26-2000-P,-5\neth,ETH,10\n"
        "bad,BTC-29MAY26-80000-Q,1\n"
    )
    return path


def test_json_contract(home, shared_data, positions) -> None:
    result = run_mwb(
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(shared_data / CHAIN),
        "--model",
        "deribit-pm",
        "--json",
        home=home,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "deribit-pm" and len(payload["params_fingerprint"]) == 64
    accounts = {(a["account"], a["currency"]): a for a in payload["accounts"]}
    assert set(accounts) == {("condor", "BTC"), ("eth", "ETH")}
    condor = accounts[("condor", "BTC")]
    assert set(condor["components"]) == {"worst_case", "roll_shock", "delta_shock"}
    assert condor["maintenance_margin"] == pytest.approx(0.8 * condor["initial_margin"])
    assert condor["worst_scenario"]["underlying"] == "BTC"
    assert payload["errors"] == [
        {
            "account": "bad",
            "instrument": "BTC-29MAY26-80000-Q",
            "error": "BTC-29MAY26-80000-Q: option type must be C or P, got 'Q'",
        }
    ]
    collateral = {c["asset"]: c for c in payload["collateral"]}
    assert collateral["ETH"]["amount"] == 10 and collateral["ETH"]["haircut"] == pytest.approx(0.10)


@pytest.mark.parametrize("model", ["standard", "span"])
def test_other_models_from_the_same_files(home, shared_data, positions, model) -> None:
    result = run_mwb(
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(shared_data / CHAIN),
        "--model",
        model,
        "--json",
        home=home,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == model


def test_market_json_and_params_file(home, tmp_path) -> None:
    market = tmp_path / "market.json"
    market.write_text(json.dumps({"as_of": "2024-01-01T00:00:00Z", "index": {"BTC": 40000.0}}))
    positions = tmp_path / "p.csv"
    positions.write_text("account,instrument,quantity\na,BTC-PERPETUAL,-40000\n")
    params = tmp_path / "params.yaml"
    from governance.parameters import default_parameter_set

    wider = default_parameter_set().with_changes({"underlyings.BTC.pm.price_range": 0.20})
    params.write_text(json.dumps(wider.canonical_dict()))
    base = json.loads(
        run_mwb(
            "margin",
            "--positions",
            str(positions),
            "--market",
            str(market),
            "--model",
            "deribit-pm",
            "--json",
            home=home,
        ).stdout
    )
    wide = json.loads(
        run_mwb(
            "margin",
            "--positions",
            str(positions),
            "--market",
            str(market),
            "--model",
            "deribit-pm",
            "--params",
            str(params),
            "--json",
            home=home,
        ).stdout
    )
    assert base["accounts"][0]["components"]["worst_case"] == pytest.approx(0.16 / 1.16)
    assert wide["accounts"][0]["components"]["worst_case"] == pytest.approx(0.20 / 1.20)
    assert wide["params_fingerprint"] == wider.fingerprint != base["params_fingerprint"]


def test_exit_2_only_when_nothing_could_be_margined(home, tmp_path) -> None:
    market = tmp_path / "market.json"
    market.write_text(json.dumps({"as_of": "2024-01-01T00:00:00Z", "index": {"BTC": 40000.0}}))
    positions = tmp_path / "p.csv"
    positions.write_text("account,instrument,quantity\na,NOPE-PERPETUAL,1\nb,BTC-PERPETUAL,x\n")
    result = run_mwb(
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(market),
        "--model",
        "span",
        home=home,
    )
    assert result.returncode == 2
    assert "account a, NOPE-PERPETUAL: no index price for NOPE" in result.stderr
    bad_params = tmp_path / "bad.yaml"
    bad_params.write_text("underlyings: {BTC: {pm: {price_range: 2}}}\n")
    result = run_mwb(
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(market),
        "--model",
        "span",
        "--params",
        str(bad_params),
        home=home,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        run_mwb("margin", "--positions", str(positions), "--model", "span", home=home).returncode
        == 2
    )


def test_market_from_the_warehouse_and_var_es(home, tmp_path) -> None:
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in write_synthetic_market(tmp_path / "syn"):
        load_file(con, path)
    from datetime import date

    market, notes = market_from_warehouse(con, settings.market.source_preference, date(2024, 6, 28))
    con.close()
    assert market.as_of.isoformat() == "2024-06-29T00:00:00+00:00"
    assert set(market.index) == {"BTC", "ETH", "SOL"} and set(market.default_iv) == {
        "BTC",
        "ETH",
        "SOL",
    }
    assert any("realised vol" in n and n.startswith("SOL") for n in notes)
    positions = tmp_path / "p.csv"
    positions.write_text(
        "account,instrument,quantity\n"
        "a,BTC-27SEP24-60000-C,-2\na,BTC-PERPETUAL,50000\nb,ETH_USDC-PERPETUAL,-10\nb,BTC_USDC-PERPETUAL,1\n"
    )
    for model in ("deribit-pm", "var", "es"):
        result = run_mwb(
            "margin",
            "--positions",
            str(positions),
            "--as-of",
            "2024-06-28",
            "--model",
            model,
            "--json",
            home=home,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        payload = json.loads(result.stdout)
        margins = {(a["account"], a["currency"]): a["initial_margin"] for a in payload["accounts"]}
        assert set(margins) == {("a", "BTC"), ("b", "USDC")} and all(
            v > 0 for v in margins.values()
        )
        if model != "deribit-pm":
            assert set(payload["accounts"][0]["components"]) >= {"var", "es"}


def test_compare_venues_puts_the_venues_beside_the_set(home, shared_data, positions) -> None:
    result = run_mwb(
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(shared_data / CHAIN),
        "--model",
        "span",
        "--compare-venues",
        "--json",
        home=home,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    elsewhere = payload["elsewhere"]
    models = [c["model"] for c in elsewhere["columns"]]
    assert models == [
        "deribit-pm",
        "span",
        "derive-pmrm2",
        "hyperliquid",
        "okx-pm",
        "paradex-pm",
        "aevo-pm",
        "delta-only",
    ]
    rows = {a["account"]: a["initial_margin"] for a in elsewhere["accounts"]}
    assert set(rows) == {"condor", "eth"}
    # the SPAN column is the command's own result, in USD (coin margin at the index price)
    spot = {a["account"]: a for a in payload["accounts"]}
    span_label = elsewhere["columns"][1]["label"]
    chain = pd.read_csv(shared_data / CHAIN)
    index = float(chain.loc[chain["currency"] == "BTC", "index_price"].iloc[0])
    assert rows["condor"][span_label] == pytest.approx(
        spot["condor"]["initial_margin"] * index,
        rel=1e-3,  # the snapshot's spot vs the index
    )
    # a long-dated condor is near delta-neutral: the linear baseline misses most of its risk
    derive_label = elsewhere["columns"][2]["label"]
    assert rows["condor"]["delta-only (this set)"] < 0.2 * rows["condor"][derive_label]
