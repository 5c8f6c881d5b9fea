"""Data-quality findings on constructed series with known answers."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.warehouse import quality


def insert_prices(
    con, asset: str, days: list[date], closes: list[float], source: str = "t"
) -> None:
    frame = pd.DataFrame(
        {"asset": asset, "date": days, "source": source, "close": closes, "batch_id": 1}
    )
    con.register("_f", frame)
    con.execute("INSERT INTO market.prices (asset, date, source, close, batch_id) SELECT * FROM _f")
    con.unregister("_f")


def test_gaps_count_missing_days(con) -> None:
    days = [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 6), date(2024, 1, 11)]
    insert_prices(con, "BTC", days, [1, 2, 3, 4])
    found = quality.gaps(con, "market.prices", longer_than_days=3)
    # 2 -> 6 leaves 3 missing days (not flagged); 6 -> 11 leaves 4 (flagged)
    assert found[["last_before", "first_after", "missing_days"]].values.tolist() == [
        [pd.Timestamp("2024-01-06"), pd.Timestamp("2024-01-11"), 4]
    ]


def test_stale_runs(con) -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(12)]
    closes = [1, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5]
    insert_prices(con, "ETH", days, closes)
    found = quality.stale_runs(con, "market.prices", "close", min_days=5)
    assert len(found) == 1
    assert (found.iloc[0]["days"], found.iloc[0]["value"]) == (5, 2.0)


def test_extreme_moves_flag_a_planted_jump(con) -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.02, 200)
    r[150] = -0.5  # a 25-sigma day
    closes = list(100 * np.exp(np.cumsum(r)))
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(200)]
    insert_prices(con, "SOL", days, closes)
    found = quality.extreme_moves(con, sigmas=8.0)
    assert found["date"].dt.date.tolist() == [days[150]]
    assert found.iloc[0]["sigmas"] > 20


def test_coverage_against_latest_and_fixed_dates(con) -> None:
    insert_prices(con, "BTC", [date(2024, 1, 1), date(2024, 1, 5)], [1, 2])
    insert_prices(con, "ETH", [date(2024, 1, 1), date(2024, 1, 3)], [1, 2])
    through = quality.expected_last_day(con, "market.prices", "latest", date(2030, 1, 1))
    assert through == date(2024, 1, 5)
    found = quality.coverage(con, "market.prices", ("BTC", "ETH", "SOL"), through)
    assert found.set_index("asset")["ok"].to_dict() == {"BTC": True, "ETH": False, "SOL": False}
    assert quality.expected_last_day(con, "market.prices", "yesterday", date(2024, 1, 6)) == date(
        2024, 1, 5
    )


def test_iv_out_of_range_finds_rows_that_bypassed_the_loader(con) -> None:
    con.execute(
        "INSERT INTO market.implied_vol (asset, date, source, tenor_days, iv, batch_id) VALUES "
        "('BTC', DATE '2024-01-01', 'x', 30, 0.5, 1), ('BTC', DATE '2024-01-02', 'x', 30, 7.0, 1)"
    )
    found = quality.iv_out_of_range(con)
    assert found["iv"].tolist() == [7.0]
