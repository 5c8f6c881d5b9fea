"""``mwb cascade --population books`` on the real data beside us: accounts holding the test
portfolios' ETH option books, re-margined by Deribit-style PM at every step, through the
November 2022 window (FTX: ETH fell about 25 % in two days). Money is conserved for every set;
on one population opened at the limit of the set in force, a wider price range (liquidating
earlier) leaves no more bad debt and a narrower one leaves some; the population is the one the
seed names; refusals exit 2."""

from __future__ import annotations

import json
from datetime import date

import pytest
from helpers import real_warehouse, run_mwb

from governance.parameters import default_parameter_set

RANGES = {"narrow": 0.135, "wide": 0.25}


@pytest.fixture(scope="module")
def home(tmp_path_factory, shared_data):
    settings, con = real_warehouse(tmp_path_factory, shared_data, "cascade-books")
    con.close()
    home = settings.home
    for name, value in RANGES.items():
        changed = default_parameter_set().with_changes({"underlyings.ETH.pm.price_range": value})
        (home / f"{name}.json").write_text(changed.canonical_json())
    return home


def _run(home, *args):
    result = run_mwb(
        "cascade", "--population", "books", "--window", "November 2022", "--accounts", "1500",
        *args, "--json", home=home, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_option_books_through_november_2022(home) -> None:
    # one population, opened at the limit of the set in force (the first); each set then
    # liquidates it at its own maintenance margin
    narrow = _run(home, "--params", "default", "--vs", str(home / "narrow.json"))
    wide = _run(home, "--params", "default", "--vs", str(home / "wide.json"))
    assert narrow["population"] == wide["population"]  # the seed's population, both runs
    people = narrow["population"]
    assert set(people["books"]) == {
        "eth-calendar",
        "eth-covered-call",
        "eth-iron-condor",
        "eth-short-straddle",
    }
    assert sum(people["books"].values()) == 1500
    assert people["struck"]["iv_from"] == "2022-11-05"  # the day before the window
    bad = {
        "default": narrow["sets"][0]["bad_debt"],
        "narrow": narrow["sets"][1]["bad_debt"],
        "wide": wide["sets"][1]["bad_debt"],
    }
    assert wide["sets"][0]["bad_debt"] == pytest.approx(bad["default"], rel=1e-12)
    assert bad["narrow"] > 0
    assert bad["wide"] <= bad["default"] + 1e-6 <= bad["narrow"] + 2e-6
    for s in (*narrow["sets"], *wide["sets"]):
        led = s["ledger"]
        money = led["collateral"] + led["realised_pnl"] + led["unrealised_pnl"]
        assert money == pytest.approx(led["equity"] + led["penalties"] - led["bad_debt"], rel=1e-9)
        assert led["fund_end"] == pytest.approx(
            led["fund_start"] + led["penalties"] - led["fund_draws"], rel=1e-9
        )
        assert s["rule"]["model"] == "deribit-pm"
    days = (date.fromisoformat(narrow["to"]) - date.fromisoformat(narrow["from"])).days + 1
    assert all(len(s["steps"]) == 4 * days for s in narrow["sets"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (
                "--population",
                "books",
                "--paths",
                "2000",
                "--accounts",
                "1000",
                "--from",
                "2022-11-06",
            ),
            "above 1,000,000",
        ),
        (("--population", "books", "--positions", "x.csv", "--window", "May 2022"), "--positions"),
        (("--population", "books", "--window", "May 2022", "--mode", "partial"), "closed in full"),
        (("--population", "books", "--window", "May 2022", "--accounts", "0"), "--accounts"),
        (("--population", "crowd", "--window", "May 2022"), "--population"),
        (("--population", "books", "--asset", "XRP", "--window", "May 2022"), "no test portfolio"),
    ],
)
def test_refusals_exit_2(home, args, message) -> None:
    result = run_mwb("cascade", *args, home=home)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
