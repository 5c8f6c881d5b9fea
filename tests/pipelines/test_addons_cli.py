"""Add-ons as a margin-model option: a set's ``addons`` block switches them on for ``mwb
margin``; σ and the daily volume come from the 30 days before the market (checked here against
the warehouse's own rows), the derivation is printed, and the charges are the closed forms."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest
from helpers import run_mwb, synthetic_warehouse

from governance.parameters import ParameterSetError, default_parameter_set
from pipelines.margin import market_from_warehouse

DAY = date(2024, 6, 28)
IMPACT = {"y": 0.8, "half_spread": 0.001}  # the set's impact law, which the liquidity add-on uses
ADDONS = {
    "liquidity_threshold": 0.01,
    "concentration_threshold_usd": 20_000_000.0,
    "concentration_rate": 0.03,
    "open_interest": {"ETH": {"base": 0.05, "lower_cap_usd": 1e8, "upper_cap_usd": 5e8}},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    settings, con = synthetic_warehouse(tmp_path_factory, "addons-home")
    market, _ = market_from_warehouse(con, settings.market.source_preference, DAY)
    rows = con.execute(
        "SELECT close, volume FROM market.prices WHERE asset = 'ETH' AND date BETWEEN ? AND ? "
        "ORDER BY date",
        [date(2024, 5, 30), DAY],  # the 30 days up to the market (end of DAY)
    ).fetchall()
    con.close()
    closes = np.array([r[0] for r in rows])
    volumes = np.array([r[1] for r in rows]) * closes
    sigma = float(np.diff(np.log(closes)).std(ddof=1))
    base = settings.home / "base.json"
    base.write_text(default_parameter_set().canonical_json())
    with_addons = settings.home / "addons.json"
    changed = default_parameter_set().with_changes({"addons": ADDONS, "impact": IMPACT})
    with_addons.write_text(changed.canonical_json())
    positions = settings.home / "positions.csv"
    positions.write_text(
        "account,instrument,quantity\nbig,ETH_USDC-PERPETUAL,100000\nsmall,ETH_USDC-PERPETUAL,1\n"
        "coin,ETH-PERPETUAL,-50000000\n"
    )
    spot = market.spot("ETH")
    return settings.home, base, with_addons, positions, spot, sigma, float(np.median(volumes))


def _margin(home, params, positions, *extra):
    result = run_mwb(
        "margin", "--positions", str(positions), "--as-of", DAY.isoformat(),
        "--model", "deribit-pm", "--params", str(params), *extra, "--json", home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    return payload, {(a["account"], a["currency"]): a for a in payload["accounts"]}


def test_addons_are_the_closed_forms_calibrated_before_the_market(home) -> None:
    home_dir, base, addons, positions, spot, sigma, volume = home
    _, plain = _margin(home_dir, base, positions)
    payload, charged = _margin(home_dir, addons, positions, "--open-interest", "ETH=3e8")
    derivation = payload["addons"]["underlyings"]["ETH"]
    # σ and V from the 30 closes before the market (built for the end of DAY: its close counts)
    assert derivation["daily_vol"] == pytest.approx(sigma, rel=1e-12)
    assert derivation["daily_volume_usd"] == pytest.approx(volume, rel=1e-12)
    assert derivation["liquidity_threshold_usd"] == pytest.approx(0.01 * volume, rel=1e-12)
    imf = 0.05 + (3e8 - 1e8) / (5e8 - 1e8) * 0.95

    def expected(notional: float) -> dict[str, float]:
        liquidity = 0.0
        if notional > 0.01 * volume:
            y, half_spread = IMPACT["y"], IMPACT["half_spread"]
            liquidity = (y * sigma * math.sqrt(notional / volume) + half_spread) * notional
        return {
            "addon_liquidity": liquidity,
            "addon_concentration": 0.03 * max(notional - 20e6, 0.0),
            "addon_oi": (imf - 0.05) * notional,
        }

    for (account, currency), coins, to_row in [
        (("big", "USDC"), 100_000.0, 1.0),
        (("small", "USDC"), 1.0, 1.0),
        (("coin", "ETH"), 50_000_000.0 / spot, 1.0 / spot),  # inverse: USD notional, ETH row
    ]:
        want = expected(coins * spot)
        row = charged[(account, currency)]
        for name, value in want.items():
            assert row["components"][name] == pytest.approx(value * to_row, rel=1e-9, abs=1e-12), (
                name
            )
        total = sum(want.values()) * to_row
        before = plain[(account, currency)]
        assert row["initial_margin"] == pytest.approx(before["initial_margin"] + total, rel=1e-12)
        assert row["maintenance_margin"] == pytest.approx(
            before["maintenance_margin"] + total, rel=1e-12
        )
    assert charged[("small", "USDC")]["components"]["addon_liquidity"] == 0.0
    assert charged[("big", "USDC")]["components"]["addon_liquidity"] > 0.0


def test_the_derivation_is_printed(home) -> None:
    home_dir, _, addons, positions, *_ = home
    result = run_mwb(
        "margin", "--positions", str(positions), "--as-of", DAY.isoformat(),
        "--model", "deribit-pm", "--params", str(addons), home=home_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "add-ons ETH: σ" in result.stdout and "liquidity threshold" in result.stdout


def test_bad_open_interest_and_bad_blocks_are_refused(home) -> None:
    home_dir, _, addons, positions, *_ = home
    result = run_mwb(
        "margin", "--positions", str(positions), "--as-of", DAY.isoformat(),
        "--model", "deribit-pm", "--params", str(addons), "--open-interest", "ETH=nan", home=home_dir,
    )  # fmt: skip
    assert result.returncode == 2 and "--open-interest 'ETH=nan'" in result.stderr
    for change, path in [
        ({"concentration_rate": -1}, "addons.concentration_rate"),
        (
            {"open_interest": {"ETH": {"base": 0.1, "lower_cap_usd": 9, "upper_cap_usd": 1}}},
            "addons.open_interest.ETH",
        ),
    ]:
        with pytest.raises(ParameterSetError, match=path.replace(".", r"\.")):
            default_parameter_set().with_changes({"addons": {**ADDONS, **change}})


def test_a_set_without_addons_keeps_its_fingerprint() -> None:
    base = default_parameter_set()
    assert "addons" not in base.canonical_dict() and "impact" not in base.canonical_dict()
    assert base.with_changes({"addons": ADDONS}).fingerprint != base.fingerprint
    assert base.with_changes({"impact": IMPACT}).fingerprint != base.fingerprint
    assert base.impact_law.y == 0.7  # the defaults when the block is absent
