"""Property tests (hypothesis) of the validators: a row is stored if and only if an
independent Python statement of the rules accepts it, and loading is idempotent."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import BadInputError
from pipelines.ingest import load_file
from pipelines.warehouse import connect

ASSETS = ["BTC", "ETH", "SOL_USDC", "btc", "", "B T C", "X" * 30]
SPECIAL = [0.0, -0.0, -1.0, math.inf, -math.inf, math.nan, 1e-300, 1e300]
prices = st.one_of(
    st.none(),
    st.sampled_from(SPECIAL),
    st.floats(min_value=-10, max_value=1e6, allow_nan=False, allow_infinity=False),
)
dates = st.one_of(
    st.just("ok"),
    st.sampled_from(["2024-02-30", "2024-13-01", "yesterday", "", "2024/01/05"]),
)


@st.composite
def price_rows(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    rows = []
    for i in range(n):
        day = draw(dates)
        rows.append(
            {
                "date": (date(2023, 1, 1) + timedelta(days=i)).isoformat() if day == "ok" else day,
                "asset": draw(st.sampled_from(ASSETS)),
                "open": draw(prices),
                "high": draw(prices),
                "low": draw(prices),
                "close": draw(prices),
                "volume": draw(prices),
            }
        )
    return rows


def fmt(value) -> str:
    return "" if value is None else repr(value)


def parses_as_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def positive(x) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def expected_valid(row: dict) -> bool:
    """The row rules, written independently of the SQL in pipelines.ingest.kinds."""
    o, h, lo, c, v = (row[k] for k in ("open", "high", "low", "close", "volume"))
    if not parses_as_date(row["date"]):
        return False
    if not re.fullmatch(r"[A-Z0-9_]{1,24}", row["asset"]):
        return False
    if not positive(c):
        return False
    if any(x is not None and not positive(x) for x in (o, h, lo)):
        return False
    # plausibility ceilings: no coin trades above a billion dollars a unit
    if any(x is not None and x > 1e9 for x in (o, h, lo, c)):
        return False
    if v is not None and not (math.isfinite(v) and 0 <= v <= 1e18):
        return False
    ref_open = o if o is not None else c
    if h is not None and lo is not None and h < lo:
        return False
    if h is not None and h < max(c, ref_open):
        return False
    return not (lo is not None and lo > min(c, ref_open))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=price_rows())
def test_stored_iff_valid_and_reload_is_idempotent(tmp_path_factory, rows) -> None:
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "p.csv"
    lines = ["date,asset,open,high,low,close,volume"]
    lines += [
        ",".join(
            [
                r["date"],
                r["asset"],
                *(fmt(r[k]) for k in ("open", "high", "low", "close", "volume")),
            ]
        )
        for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    con = connect(":memory:")
    try:
        if all(r["date"] and not parses_as_date(r["date"]) for r in rows):
            # no record survives the reader: the file cannot be parsed at all, nothing changes
            with pytest.raises(BadInputError, match="no record could be read"):
                load_file(con, path)
            assert con.execute("SELECT count(*) FROM market.ingest_batches").fetchone()[0] == 0
            return
        report = load_file(con, path)
        stored = {
            (a, d.isoformat())
            for a, d in con.execute("SELECT asset, date FROM market.prices").fetchall()
        }
        expected = {(r["asset"], r["date"]) for r in rows if expected_valid(r)}
        assert stored == expected
        rejected_records = {
            r[0] for r in con.execute("SELECT record FROM market.rejected_rows").fetchall()
        }
        assert rejected_records == {i + 1 for i, r in enumerate(rows) if not expected_valid(r)}
        assert report.rows_read == len(rows)
        assert (
            report.rows_read
            == report.inserted + report.already_present + report.conflicts + report.rejected
        )

        again = load_file(con, path)
        assert again.inserted == 0
        assert again.already_present == len(expected)
        assert again.rejected == report.rejected
        assert con.execute("SELECT count(*) FROM market.prices").fetchone()[0] == len(expected)
    finally:
        con.close()


ivs = st.one_of(
    st.sampled_from([0.0, 5.0, 5.0000001, -0.1, math.nan, math.inf, 1e-9]),
    st.floats(min_value=-1, max_value=10, allow_nan=False),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(ivs, min_size=1, max_size=20))
def test_iv_stored_iff_in_zero_five(tmp_path_factory, values) -> None:
    path = tmp_path_factory.mktemp("iv") / "iv.csv"
    rows = [f"{date(2023, 1, 1) + timedelta(days=i)},ETH,{v!r}" for i, v in enumerate(values)]
    path.write_text("date,asset,iv\n" + "\n".join(rows) + "\n")
    con = connect(":memory:")
    try:
        report = load_file(con, path)
        ok = [math.isfinite(v) and 0 < v <= 5 for v in values]
        assert report.inserted == sum(ok)
        assert report.rejected == len(values) - sum(ok)
    finally:
        con.close()
