"""``mwb cascade`` on the synthetic warehouse: the payload's ledger, the comparison of two
sets, no look-ahead in the impact calibration, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_mwb, synthetic_warehouse

from governance.parameters import default_parameter_set


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    settings, con = synthetic_warehouse(tmp_path_factory, "cascade-home")
    con.close()
    narrow = settings.home / "narrow.json"
    changed = default_parameter_set().with_changes({"underlyings.ETH.pm.price_range": 0.08})
    narrow.write_text(changed.canonical_json())
    return settings.home, narrow


def _run(home, *args):
    result = run_mwb("cascade", "--asset", "ETH", *args, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_two_sets_on_one_population(home) -> None:
    home_dir, narrow = home
    payload = _run(
        home_dir,
        "--window",
        "May 2022",
        "--accounts",
        "5000",
        "--params",
        "default",
        "--vs",
        str(narrow),
    )
    current, other = payload["sets"]
    assert current["rule"]["initial"] == pytest.approx(0.18)
    assert other["rule"]["initial"] == pytest.approx(0.08)
    # the same population under a narrower range: liquidated later, never less bad debt
    assert other["bad_debt"] >= current["bad_debt"] - 1e-6
    for s in (current, other):
        led = s["ledger"]
        money = led["collateral"] + led["realised_pnl"] + led["unrealised_pnl"]
        assert money == pytest.approx(led["equity"] + led["penalties"] - led["bad_debt"], rel=1e-9)
        assert len(s["steps"]) == 4 * 16  # May 5–20, four points a day
    assert payload["impact"]["calibrated_on"] == "30 days before 2022-05-05"


def test_the_same_seed_gives_the_same_numbers(home) -> None:
    home_dir, _ = home
    a = _run(
        home_dir, "--from", "2022-06-10", "--to", "2022-06-20", "--seed", "3", "--accounts", "2000"
    )
    b = _run(
        home_dir, "--from", "2022-06-10", "--to", "2022-06-20", "--seed", "3", "--accounts", "2000"
    )
    assert a["sets"][0]["bad_debt"] == b["sets"][0]["bad_debt"]
    assert a["sets"][0]["steps"] == b["sets"][0]["steps"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--window", "Never"), "is not one of"),
        (("--from", "2022-06-20", "--to", "2022-06-10"), "is before --from"),
        (("--window", "May 2022", "--mode", "half"), "--mode"),
        (("--window", "May 2022", "--accounts", "0"), "--accounts"),
        (("--from", "2019-01-02", "--to", "2019-01-05"), "fewer than 10 closes"),
        ((), "give --window"),
        (("--window", "May 2022", "--fund", "nan"), "--fund"),
        (("--window", "May 2022", "--fund", "-5"), "--fund"),
    ],
)
def test_refusals_exit_2(home, args, message) -> None:
    result = run_mwb("cascade", *args, home=home[0])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_debt_var_over_paths(home) -> None:
    home_dir, narrow = home
    payload = _run(
        home_dir,
        "--paths",
        "200",
        "--from",
        "2022-05-05",
        "--accounts",
        "3000",
        "--params",
        "default",
        "--vs",
        str(narrow),
    )
    current, other = payload["sets"]
    for s in (current, other):
        assert s["var_95"] <= s["es_95"] <= s["es_99"] + 1e-9 and s["var_95"] <= s["var_99"]
    # a narrower price range, the same paths and population: never less bad debt at 99 %
    assert other["es_99"] >= current["es_99"] - 1e-6
    assert payload["paths"] == 200 and payload["seed"] == 0


def test_the_dagster_asset_is_the_commands_cascade(home) -> None:
    """``bt/liquidation_cascade`` materialises the same numbers as ``mwb cascade``."""
    import dagster as dg

    from pipelines.defs.backtest.assets import liquidation_cascade
    from pipelines.defs.resources import WarehouseResource, WorkbenchResource
    from pipelines.settings import load_settings

    home_dir, _ = home
    settings = load_settings(home_dir)
    config = {
        "asset": "ETH",
        "window": "May 2022",
        "accounts": 2000,
        "seed": 4,
        "params": "default",
    }
    result = dg.materialize(
        [liquidation_cascade],
        resources={
            "workbench": WorkbenchResource(home=str(settings.home)),
            "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        },
        run_config={"ops": {"bt__liquidation_cascade": {"config": config}}},
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("bt__liquidation_cascade")
    meta = {k: v.value for k, v in event.metadata.items()}
    stored = json.loads(Path(meta["cascade_json"]).read_text())
    command = _run(
        home_dir, "--window", "May 2022", "--accounts", "2000", "--seed", "4", "--params", "default"
    )
    assert stored["sets"][0]["bad_debt"] == command["sets"][0]["bad_debt"]
    assert stored["sets"][0]["steps"] == command["sets"][0]["steps"]
    assert meta["bad_debt_usd"] == command["sets"][0]["bad_debt"]
    assert "bad debt USD" in meta["cascade"]
