"""Re-loading an unchanged file short-circuits on its SHA-256 — and reports, keeps and counts
exactly what a full re-load would; anything that could change the outcome loads in full."""

from __future__ import annotations

import dataclasses
import shutil

from test_ingest_validation import HEADER, good_rows, write

from pipelines.ingest import ReadOptions, load, load_file


def _file(tmp_path, name: str = "p.csv"):
    rows = good_rows(8)
    rows[2] = rows[2].rsplit(",", 2)[0] + ",-5,10"  # an invalid close
    rows.append(rows[5])  # an identical duplicate
    return write(tmp_path / name, HEADER + "\n".join(rows) + "\n")


def _rejected(con, batch_id: int) -> list[tuple]:
    return con.execute(
        "SELECT record, column_name, category, reason, raw FROM market.rejected_rows "
        "WHERE batch_id = ? ORDER BY record",
        [batch_id],
    ).fetchall()


def _without_batch(report) -> dict:
    return {k: v for k, v in dataclasses.asdict(report).items() if k != "batch_id"}


def test_a_reload_repeats_what_a_full_reload_would_record(con, tmp_path, monkeypatch) -> None:
    path = _file(tmp_path)
    first = load_file(con, path)
    assert first.inserted == 7 and first.rejected == 1
    quick = load_file(con, path)
    repeats = con.execute(
        "SELECT repeats_batch FROM market.ingest_batches WHERE batch_id = ?", [quick.batch_id]
    ).fetchone()[0]
    assert repeats == first.batch_id
    # the same re-load without the short cut
    monkeypatch.setattr(load, "_repeat_if_unchanged", lambda *a, **k: None)
    full = load_file(con, path)
    assert _without_batch(quick) == _without_batch(full)
    assert [r[:4] for r in _rejected(con, quick.batch_id)] == [
        r[:4] for r in _rejected(con, full.batch_id)
    ]
    assert quick.inserted == 0 and quick.already_present == 8 and quick.rejected == 1


def test_a_changed_byte_or_option_loads_in_full(con, tmp_path) -> None:
    path = _file(tmp_path)
    first = load_file(con, path)
    copy = shutil.copy(path, tmp_path / "q.csv")
    again = load_file(con, copy)  # same bytes elsewhere: still the same file
    assert again.inserted == 0
    changed = tmp_path / "r.csv"
    changed.write_bytes(path.read_bytes().replace(b",10\n", b",11\n", 1))
    other = load_file(con, changed)
    other_options = load_file(con, path, ReadOptions(source="elsewhere"))
    for report in (other, other_options):
        repeats = con.execute(
            "SELECT repeats_batch FROM market.ingest_batches WHERE batch_id = ?",
            [report.batch_id],
        ).fetchone()[0]
        assert repeats is None
    assert other_options.inserted == first.inserted  # another source: new rows


def test_after_a_replacing_load_the_reload_sees_the_conflicts(con, tmp_path) -> None:
    path = _file(tmp_path)
    load_file(con, path)
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(HEADER + good_rows(1, start_price=150.0)[0] + "\n")
    assert load_file(con, corrected, replace=True).replaced == 1
    again = load_file(con, path)
    assert again.conflicts == 1  # the short cut would have hidden it


def test_a_replacing_reload_is_never_short_cut(con, tmp_path) -> None:
    path = _file(tmp_path)
    load_file(con, path)
    again = load_file(con, path, replace=True)
    assert (
        con.execute(
            "SELECT repeats_batch FROM market.ingest_batches WHERE batch_id = ?", [again.batch_id]
        ).fetchone()[0]
        is None
    )
