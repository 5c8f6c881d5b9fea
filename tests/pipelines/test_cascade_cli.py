"""``mwb cascade`` on the synthetic warehouse: the payload's ledger, the comparison of two
sets, no look-ahead in the impact calibration, and refusals."""

from __future__ import annotations

import json
import re
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


def test_a_positions_file_is_the_population_it_lists(home, tmp_path) -> None:
    """The synthetic population written out as a positions file (entry prices left to the
    path's first price) gives the synthetic run's numbers exactly, and the payload records the
    file's SHA-256."""
    import hashlib

    from backtesting.cascade import synthetic_population

    home_dir, _ = home
    window = ("--from", "2022-06-10", "--to", "2022-06-14")
    synthetic = _run(home_dir, *window, "--accounts", "300", "--seed", "5")
    first = synthetic["sets"][0]
    people = synthetic_population(300, 5, first["steps"][0]["path"], 1.0 / first["rule"]["initial"])
    lines = ["account,collateral,quantity,entry_price"]
    lines += [
        f"a{k},{float(c)!r},{float(q)!r},"
        for k, (c, q) in enumerate(zip(people.cash, people.quantity, strict=True))
    ]
    path = tmp_path / "population.csv"
    path.write_text("\n".join(lines) + "\n")
    listed = _run(home_dir, *window, "--positions", str(path))
    assert listed["population"]["kind"] == "positions"
    assert listed["population"]["accounts"] == 300
    assert listed["population"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    ours, theirs = listed["sets"][0], first
    assert theirs["liquidations"] > 0
    for key in ("bad_debt", "liquidations", "volume_usd", "largest_impact"):
        assert ours[key] == theirs[key]
    assert ours["steps"] == theirs["steps"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account,collateral\na,1\n", "missing column.*quantity"),
        ("account,collateral,quantity\n", "no accounts"),
        ("account,collateral,quantity\na,1,2\nb,x,1\n", r"row 3: collateral: 'x' is not a number"),
        ("account,collateral,quantity\na,1,nan\n", r"row 2: quantity: 'nan' is not finite"),
        ("account,collateral,quantity\na,-5,1\n", r"row 2: collateral: must be ≥ 0"),
        ("account,collateral,quantity,entry_price\na,5,1,0\n", r"row 2: entry_price: must be > 0"),
        ("account,collateral,quantity\n ,5,1\n", r"row 2: account: empty"),
        # one name in two spellings (composed é, then e + combining accent): one account
        (
            "account,collateral,quantity\nJos\u00e9,5,1\nJose\u0301 ,5,1\n",
            r"row 3: account: .*row 2",
        ),
    ],
)
def test_bad_positions_files_exit_2_naming_row_and_field(home, tmp_path, text, message) -> None:
    home_dir, _ = home
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    result = run_mwb(
        "cascade", "--asset", "ETH", "--from", "2022-06-10", "--to", "2022-06-12",
        "--positions", str(path), home=home_dir,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert str(path) in result.stderr


def test_each_set_cascades_under_its_own_impact_law(home, tmp_path) -> None:
    """The impact law is a parameter like any other: a set with a larger Y moves the price more
    with the same liquidations' volume, so its cascade leaves no less bad debt."""
    home_dir, _ = home
    steep = tmp_path / "steep.json"
    changed = default_parameter_set().with_changes({"impact": {"y": 2.5, "half_spread": 0.002}})
    steep.write_text(changed.canonical_json())
    payload = _run(
        home_dir, "--window", "May 2022", "--accounts", "3000",
        "--params", "default", "--vs", str(steep),
    )  # fmt: skip
    base, other = payload["sets"]
    assert base["impact"] == {"y": 0.7, "half_spread": 0.0005}
    assert other["impact"] == {"y": 2.5, "half_spread": 0.002}
    assert base["liquidations"] > 0
    assert other["largest_impact"] > base["largest_impact"]
    assert other["bad_debt"] >= base["bad_debt"] - 1e-6
