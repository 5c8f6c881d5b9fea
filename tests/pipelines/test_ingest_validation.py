"""Validation, conflicts, replacement and all-or-nothing loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import OPTION_HEADER, OPTION_ROW, run_mwb, table_fingerprint

from pipelines.errors import BadInputError
from pipelines.ingest import Kind, ReadOptions, load_file

HEADER = "date,asset,open,high,low,close,volume\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def good_rows(n: int, asset: str = "BTC", start_price: float = 100.0) -> list[str]:
    rows = []
    for i in range(n):
        day = f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}"
        p = start_price + i
        rows.append(f"{day},{asset},{p},{p + 2},{p - 2},{p + 1},{10 + i}")
    return rows


def rejected(con) -> list[tuple]:
    return con.execute(
        "SELECT record, column_name, category, reason FROM market.rejected_rows ORDER BY record"
    ).fetchall()


def test_one_bad_row_among_good_ones(con, tmp_path) -> None:
    rows = good_rows(6)
    rows[3] = rows[3].replace(",BTC,", ",BTC,").rsplit(",", 2)[0] + ",-5,10"  # close = -5
    path = write(tmp_path / "p.csv", HEADER + "\n".join(rows) + "\n")
    report = load_file(con, path)
    assert (report.rows_read, report.inserted, report.rejected) == (6, 5, 1)
    ((record, column, category, reason),) = rejected(con)
    assert (record, column, category) == (4, "close", "invalid")
    assert "close: must be a positive finite number, got -5.0" in reason
    raw = con.execute("SELECT raw, file_path, batch_id FROM market.rejected_rows").fetchone()
    assert json.loads(raw[0])["close"] == -5.0  # the rejected values are kept
    assert raw[1] == str(path) and raw[2] == report.batch_id


@pytest.mark.parametrize(
    ("line", "column", "fragment"),
    [
        ("2024-02-01,BTC,abc,2,0.5,1.5,10", "open", 'Could not convert string "abc"'),
        ("2024-02-30,BTC,1,2,0.5,1.5,10", "date", "2024-02-30"),
        ("2024-02-01,BTC,1,2,0.5", None, "wrong number of fields"),
        ("2024-02-01,BTC,1,2,3,1.5,10", "high", "is below low"),
        ("2024-02-01,BTC,1,2,0.5,nan,10", "close", "must be a positive finite number"),
        ("2024-02-01,BTC,1,2,0.5,1.5,-1", "volume", "must be a finite number >= 0"),
        ("2024-02-01,btc,1,2,0.5,1.5,10", "asset", "upper-case"),
        ("2024-02-01,,1,2,0.5,1.5,10", "asset", "asset: missing"),
        ("2024-02-01,BTC,1,1.2,0.5,1.5,10", "high", "below open/close"),
    ],
)
def test_each_validation_rule_names_its_field(con, tmp_path, line, column, fragment) -> None:
    path = write(tmp_path / "p.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n" + line + "\n")
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (1, 1)
    ((record, col, category, reason),) = rejected(con)
    assert record == 2 and col == column and category == "invalid"
    assert fragment in reason


def test_a_nan_close_gets_one_reason_not_also_implausibly_large(con, tmp_path) -> None:
    # DuckDB orders NaN above every number: a bare `close > limit` would flag it too
    path = write(tmp_path / "p.csv", HEADER + "2024-01-01,BTC,1,2,0.5,nan,nan\n")
    load_file(con, path)
    ((_, column, _, reason),) = rejected(con)
    assert column == "close" and "implausibly large" not in reason
    assert "must be a positive finite number" in reason


def test_iv_outside_range_is_rejected(con, tmp_path) -> None:
    path = write(
        tmp_path / "iv.csv",
        "date,asset,iv\n2024-01-01,BTC,0.5\n2024-01-02,BTC,0\n2024-01-03,BTC,5.5\n"
        "2024-01-04,BTC,5\n2024-01-05,BTC,65\n",
    )
    report = load_file(con, path)
    assert (report.kind, report.inserted, report.rejected) == ("iv", 2, 3)
    assert [r[0] for r in rejected(con)] == [2, 3, 5]
    assert all("implied vol must be in (0, 5]" in r[3] for r in rejected(con))


def test_record_numbers_stay_exact_when_parser_and_rule_rejects_interleave(con, tmp_path) -> None:
    """50,000 records with unreadable ones (dropped by the CSV reader) and invalid ones (dropped
    by the rules) scattered through: every reported record number is the true one."""
    n = 50_000
    parser_bad = {7, 1_000, 12_345, 30_001, 49_999}
    rule_bad = {1, 8, 999, 12_346, 40_000, 50_000}
    lines = []
    for record in range(1, n + 1):
        day = "2020-01-01"  # a plausible day; the asset makes each key unique
        # a unique key per record: the asset carries the record number
        asset = f"A{record}"
        if record in parser_bad:
            lines.append(f"{day},{asset},1,2,oops,1.5,10")
        elif record in rule_bad:
            lines.append(f"{day},{asset},1,2,0.5,-{record},10")
        else:
            lines.append(f"{day},{asset},1,2,0.5,1.5,10")
    path = write(tmp_path / "big.csv", HEADER + "\n".join(lines) + "\n")
    report = load_file(con, path)
    assert report.rows_read == n
    assert report.rejected == len(parser_bad) + len(rule_bad)
    assert report.inserted == n - report.rejected
    rows = con.execute(
        "SELECT record, raw, reason FROM market.rejected_rows ORDER BY record"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(parser_bad | rule_bad)
    for record, raw, reason in rows:
        if record in rule_bad:
            assert json.loads(raw)["asset"] == f"A{record}"
            assert f"got -{record}.0" in reason
        else:
            assert f",A{record}," in raw


def test_conflicts_are_reported_and_not_overwritten(con, tmp_path) -> None:
    load_file(con, write(tmp_path / "a.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n"))
    report = load_file(
        con,
        write(
            tmp_path / "b.csv",
            HEADER + "2024-01-01,BTC,1,2,0.5,1.6,10\n2024-01-02,BTC,1,2,0.5,1.5,10\n",
        ),
    )
    assert (report.inserted, report.conflicts, report.rejected) == (1, 1, 0)
    assert "close: existing 1.5, new 1.6" in report.conflicts_sample[0]
    stored = con.execute(
        "SELECT close FROM market.prices WHERE date = DATE '2024-01-01'"
    ).fetchone()[0]
    assert stored == 1.5
    ((record, _, category, reason),) = rejected(con)
    assert (record, category) == (1, "conflict") and "new 1.6" in reason


def test_replace_supersedes_and_keeps_the_old_row(con, tmp_path) -> None:
    load_file(con, write(tmp_path / "a.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n"))
    report = load_file(
        con, write(tmp_path / "b.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.6,10\n"), replace=True
    )
    assert (report.conflicts, report.replaced, report.rejected) == (1, 1, 0)
    assert con.execute("SELECT close, batch_id FROM market.prices").fetchone() == (
        1.6,
        report.batch_id,
    )
    previous = con.execute(
        "SELECT previous, table_name, batch_id FROM market.superseded_rows"
    ).fetchone()
    assert json.loads(previous[0])["close"] == 1.5
    assert previous[1:] == ("market.prices", report.batch_id)
    assert con.execute(
        "SELECT replace_conflicts, replaced FROM market.ingest_batches WHERE batch_id = ?",
        [report.batch_id],
    ).fetchone() == (True, 1)


def test_duplicate_keys_inside_one_file(con, tmp_path) -> None:
    text = HEADER + (
        "2024-01-01,BTC,1,2,0.5,1.5,10\n"
        "2024-01-01,BTC,1,2,0.5,1.5,10\n"  # exact repeat: counted as already present
        "2024-01-02,BTC,1,2,0.5,1.5,10\n"
        "2024-01-02,BTC,1,2,0.5,1.7,10\n"  # same key, different close: both rejected
    )
    report = load_file(con, write(tmp_path / "d.csv", text))
    assert (report.inserted, report.already_present, report.rejected) == (1, 1, 2)
    rows = rejected(con)
    assert [(r[0], r[2]) for r in rows] == [(3, "duplicate"), (4, "duplicate")]
    assert "records 3, 4" in rows[0][3]


def test_unparsable_file_exits_2_and_changes_nothing(con, tmp_path, home) -> None:
    load_file(con, write(tmp_path / "a.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n"))
    before = table_fingerprint(con)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BadInputError, match="garbage.csv"):
        load_file(con, garbage)
    headerless = write(tmp_path / "noheader.csv", "x,y\n1,2\n")
    with pytest.raises(BadInputError, match="noheader.csv: cannot tell what this file holds"):
        load_file(con, headerless)
    all_bad = write(tmp_path / "allbad.csv", HEADER + "a,b,c,d,e,f,g\nh,i,j,k,l,m,n\n")
    with pytest.raises(BadInputError, match="allbad.csv: no record could be read"):
        load_file(con, all_bad)
    assert table_fingerprint(con) == before

    result = run_mwb("ingest", str(garbage), home=home)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
    assert "garbage.csv" in result.stderr and "Traceback" not in result.stderr


def test_cli_loads_good_files_and_exits_2_for_a_bad_one(tmp_path, home) -> None:
    good = write(tmp_path / "good.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n")
    bad = write(tmp_path / "bad.csv", "nonsense\n")
    result = run_mwb("ingest", str(bad), str(good), "--json", home=home)
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert [f["inserted"] for f in payload["files"]] == [1]
    assert len(payload["errors"]) == 1 and "bad.csv" in payload["errors"][0]


def test_forced_kind_must_match_the_header(con, tmp_path) -> None:
    path = write(tmp_path / "p.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n")
    with pytest.raises(BadInputError, match="not a iv file: missing column"):
        load_file(con, path, ReadOptions(kind=Kind.IV))


def test_source_option_overrides_and_keeps_series_apart(con, tmp_path) -> None:
    path = write(tmp_path / "p.csv", HEADER + "2024-01-01,BTC,1,2,0.5,1.5,10\n")
    load_file(con, path, ReadOptions(source="venue_a"))
    report = load_file(con, path, ReadOptions(source="venue_b"))
    assert report.inserted == 1
    assert con.execute("SELECT list(source ORDER BY source) FROM market.prices").fetchone()[0] == [
        "venue_a",
        "venue_b",
    ]


def test_accounting_identity_holds_for_every_batch(con, tmp_path) -> None:
    load_file(con, write(tmp_path / "a.csv", HEADER + "\n".join(good_rows(20)) + "\n"))
    mixed = good_rows(25)
    mixed[2] = "2024-01-03,BTC,1,2,0.5,-1,10"  # invalid
    mixed[5] = "2024-01-06,BTC,1,2,0.5,1.5,10"  # conflicts with the first file
    mixed[22] = "2024-01-23,BTC,1,2"  # unreadable
    report = load_file(con, write(tmp_path / "b.csv", HEADER + "\n".join(mixed) + "\n"))
    assert (report.inserted, report.already_present, report.conflicts, report.rejected) == (
        4,
        18,
        1,
        2,
    )
    for read, ins, present, conflicts, rejected_n in con.execute(
        "SELECT rows_read, inserted, already_present, conflicts, rejected "
        "FROM market.ingest_batches"
    ).fetchall():
        assert read == ins + present + conflicts + rejected_n


def test_an_option_name_must_agree_with_its_columns(con, tmp_path) -> None:
    header, row = OPTION_HEADER, OPTION_ROW
    names = [
        "GARBAGE-NAME",
        "BTC-29MAY24-90000-C",
        "ETH-29MAY24-85000-C",
        "BTC-29MAY24-85000-P",
        "BTC-30MAY24-85000-C",
        "BTC-29MAY24-85000-C",  # the only consistent one
        "BTC-29MAY24-85000-C",  # and again, identical: a duplicate, not a rejection
    ]
    path = write(
        tmp_path / "options.csv", "\n".join([header, *(row.format(name=n) for n in names)]) + "\n"
    )
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (1, 5)
    reasons = [r[3] for r in rejected(con)]
    assert "not a Deribit option name" in reasons[0]
    assert "names strike 90000, the row says 85000.0" in reasons[1]
    assert "names currency ETH, the row says BTC" in reasons[2]
    assert "names a P, the row says call" in reasons[3]
    assert "names expiry 30MAY24" in reasons[4]
