"""The compiled row scan against its numpy reference, and the models through both paths."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pandas as pd
import pytest
from books import random_book

from margin_engine import kernels
from margin_engine.book import build_positions
from margin_engine.params import ModelParams
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.portfolio_margin import risk_arrays as pm_arrays
from margin_engine.span import span_margin

# Both paths add the same products in the same order (CSR order); only the order of the
# bucket sums differs (by position vs by CSR entry), a few ulps on the roll and spread terms.
RTOL = 1e-12


def _book(chain_instruments, n: int, seed: int) -> pd.DataFrame:
    frame = random_book(chain_instruments, n, seed=seed)
    # duplicates, a long and a short of one option (netted), and an empty-looking account
    extra = frame.iloc[:40].copy()
    extra["quantity"] = -extra["quantity"]
    return pd.concat([frame, frame.iloc[40:80], extra], ignore_index=True)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    scale = np.maximum(np.abs(a), np.abs(b)).max(initial=0.0)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(scale, 1e-300))


def test_the_compiled_scan_matches_the_reference(chain_market, chain_instruments) -> None:
    positions = build_positions(_book(chain_instruments, 400, 3), chain_market)
    arrays = pm_arrays(positions, ModelParams())
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.001, 0.05, len(positions.book.table.buckets))
    ranges = np.array([0, 27, 35])
    ours = kernels.scan_rows_compiled(positions, arrays, ranges, weights)
    reference = kernels.scan_rows_reference(positions, arrays, ranges, weights)
    np.testing.assert_array_equal(ours.worst_index, reference.worst_index)
    for field in (
        "worst_pnl", "net_delta", "value", "bucket_abs", "bucket_long", "bucket_short",
        "short_calls", "short_puts",
    ):  # fmt: skip
        _close(getattr(ours, field), getattr(reference, field))
    # the scan is not trivially zero: it sees losses, spreads and short options
    assert (ours.worst_pnl < 0).mean() > 0.5
    assert (np.minimum(ours.bucket_long, ours.bucket_short) > 0).any()
    assert (ours.short_calls > 0).any() and (ours.short_puts > 0).any()


@pytest.mark.parametrize("scan", [kernels.scan_rows_compiled, kernels.scan_rows_reference])
def test_short_units_net_each_instrument_first(scan, chain_market, chain_instruments) -> None:
    call = next(n for n in chain_instruments if n.endswith("-C") and n.startswith("BTC"))
    put = next(n for n in chain_instruments if n.endswith("-P") and n.startswith("BTC"))
    frame = pd.DataFrame(
        {
            "account": ["a", "a", "a", "a"],
            "instrument": [call, call, put, "BTC-PERPETUAL"],
            "quantity": [2.0, -3.0, -0.5, -1000.0],
        }
    )
    positions = build_positions(frame, chain_market)
    arrays = pm_arrays(positions, ModelParams())
    out = scan(positions, arrays, np.array([0, 35]), np.zeros(len(positions.book.table.buckets)))
    row = int(np.flatnonzero(out.short_calls)[0])
    assert out.short_calls[row] == pytest.approx(1.0) and out.short_puts[row] == pytest.approx(0.5)


@pytest.mark.parametrize("model", [portfolio_margin, span_margin])
def test_both_paths_give_the_same_margins(
    model, chain_market, chain_instruments, monkeypatch
) -> None:
    frame = _book(chain_instruments, 300, 11)
    compiled = model(build_positions(frame, chain_market)).frame()
    monkeypatch.setenv("MWB_KERNEL", "numpy")
    assert not kernels.compiled_available()
    reference = model(build_positions(frame, chain_market)).frame()
    pd.testing.assert_frame_equal(compiled, reference, rtol=RTOL, atol=1e-12)
    assert (compiled["initial_margin"] > 0).mean() > 0.9


def test_the_number_of_threads_does_not_change_a_number(chain_market, chain_instruments) -> None:
    positions = build_positions(random_book(chain_instruments, 9_000, seed=5), chain_market)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = portfolio_margin(positions).frame()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = portfolio_margin(positions).frame()
    finally:
        numba.set_num_threads(before)
    pd.testing.assert_frame_equal(one, many, check_exact=True)


def test_a_book_lists_its_instruments_bucket_by_bucket(chain_market, chain_instruments) -> None:
    # the compiled scan sums a bucket's delta as one run of a row's positions, so a table out
    # of bucket order would mis-state the roll shock; value_book orders it whatever the input
    rng = np.random.default_rng(4)
    names = list(rng.permutation(chain_instruments[:300])) + ["BTC-PERPETUAL", "ETH-PERPETUAL"]
    frame = pd.DataFrame({"account": "a", "instrument": names, "quantity": 1.0})
    table = build_positions(frame, chain_market).book.table
    dated = table.bucket[table.bucket >= 0]
    assert len(table.buckets) > 5 and np.all(np.diff(dated) >= 0)
    # each group's instruments are contiguous too, and bucket numbers follow the table
    assert np.all(np.diff(table.group) >= 0)
    assert [table.buckets[b][0] for b in dated] == list(table.group[table.bucket >= 0])


def test_the_kernel_refuses_a_table_out_of_bucket_order(chain_market, chain_instruments) -> None:
    positions = build_positions(random_book(chain_instruments, 20, seed=2), chain_market)
    table = positions.book.table
    order = np.argsort(-table.bucket, kind="stable")  # buckets backwards
    shuffled = dataclasses.replace(table, bucket=table.bucket[order])
    book = dataclasses.replace(positions.book, table=shuffled)
    broken = dataclasses.replace(positions, book=book)
    with pytest.raises(ValueError, match="bucket order"):
        kernels.scan_rows_compiled(
            broken, pm_arrays(positions, ModelParams()), np.array([0, 35]),
            np.zeros(len(table.buckets)),
        )  # fmt: skip


def test_generated_kernels_are_kept_in_the_cache_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MWB_KERNEL_CACHE", str(tmp_path))
    source = kernels.kernel_source(3, (0, 2, 3), False)
    module = kernels._module(source)
    kept = list(tmp_path.glob("scan_*.py"))
    assert len(kept) == 1 and kept[0].read_text() == source
    assert module.scan.py_func.__code__.co_filename == str(kept[0])
    # a changed or tampered file is rewritten from the source before use
    kept[0].write_text("raise SystemExit('tampered')\n")
    monkeypatch.delitem(kernels.sys.modules, module.__name__)
    again = kernels._module(source)
    assert kept[0].read_text() == source and callable(again.scan)


def test_the_kernel_runs_the_compiled_signature_only(chain_market, chain_instruments) -> None:
    # an argument of another type (a read-only array, say) would make numba compile a second,
    # unvectorised variant silently: every call must hit the one compiled with SLP on
    positions = build_positions(random_book(chain_instruments, 50, seed=9), chain_market)
    for _ in range(2):
        portfolio_margin(positions)
        span_margin(positions)
    for dispatcher in kernels._compiled.values():
        assert len(dispatcher.signatures) == 1


@pytest.mark.parametrize("scan", [kernels.scan_rows_compiled, kernels.scan_rows_reference])
@pytest.mark.parametrize(
    "extras",
    [
        frozenset(),
        frozenset({kernels.Extra.ROLL}),
        frozenset({kernels.Extra.SPREAD, kernels.Extra.SHORT_OPTIONS}),
        frozenset({kernels.Extra.SHORT_OPTIONS}),
    ],
    ids=lambda e: "+".join(sorted(x.value for x in e)) or "sums-only",
)
def test_a_scan_computes_what_is_asked_and_marks_the_rest(
    scan, extras, chain_market, chain_instruments
) -> None:
    """A model asks only for what it reads (PM: the roll; SPAN: spreads and short options);
    what it asks for is exactly the full scan's, and what it does not is NaN, never a zero a
    caller could mistake for a value."""
    positions = build_positions(_book(chain_instruments, 400, 8), chain_market)
    arrays = pm_arrays(positions, ModelParams())
    weights = np.random.default_rng(2).uniform(0.001, 0.05, len(positions.book.table.buckets))
    ranges = np.array([0, 27, 35])
    full = scan(positions, arrays, ranges, weights)
    lean = scan(positions, arrays, ranges, weights, extras)
    for field in ("worst_index", "worst_pnl", "net_delta", "value"):
        np.testing.assert_array_equal(getattr(lean, field), getattr(full, field))
    for extra, fields in kernels._FIELDS.items():
        for field in fields:
            if extra in extras:
                np.testing.assert_array_equal(getattr(lean, field), getattr(full, field))
                assert np.isfinite(getattr(lean, field)).all()
            else:
                assert np.isnan(getattr(lean, field)).all(), field
    # the full scan does see every extra (the comparison above is not between zeros)
    assert (full.bucket_abs > 0).any() and (full.bucket_long > 0).any()
    assert (full.short_calls > 0).any()


def test_models_ask_the_scan_only_for_what_they_read(
    chain_market, chain_instruments, monkeypatch
) -> None:
    # the same margins whether the scan computes everything or only what the model reads
    import margin_engine.portfolio_margin as pm_module
    import margin_engine.span as span_module

    positions = build_positions(_book(chain_instruments, 300, 6), chain_market)
    lean_pm, lean_span = portfolio_margin(positions).frame(), span_margin(positions).frame()
    original = kernels.scan_rows

    def everything(positions, arrays, ranges, bucket_weight=None, extras=None):
        return original(positions, arrays, ranges, bucket_weight)

    for module in (pm_module, span_module):
        monkeypatch.setattr(module, "scan_rows", everything)
    full_pm, full_span = portfolio_margin(positions).frame(), span_margin(positions).frame()
    pd.testing.assert_frame_equal(lean_pm, full_pm, check_exact=True)
    pd.testing.assert_frame_equal(lean_span, full_span, check_exact=True)


def test_a_nan_in_the_arrays_takes_numpy_s_rules(chain_market, chain_instruments) -> None:
    # the compiled minimum is written for numbers: a P&L that cannot be computed goes to the
    # reference, where it propagates as numpy's minimum makes it, rather than being skipped
    positions = build_positions(_book(chain_instruments, 200, 12), chain_market)
    arrays = np.array(pm_arrays(positions, ModelParams()))
    held = int(positions.instrument[0])
    arrays[held, 5] = np.nan
    ranges = np.array([0, 27, 35])
    weights = np.zeros(len(positions.book.table.buckets))
    ours = kernels.scan_rows(positions, arrays, ranges, weights)
    reference = kernels.scan_rows_reference(positions, arrays, ranges, weights)
    np.testing.assert_array_equal(ours.worst_pnl, reference.worst_pnl)
    np.testing.assert_array_equal(ours.worst_index, reference.worst_index)
    assert np.isnan(ours.worst_pnl[:, 0]).any()


def test_the_scan_table_puts_each_row_on_its_own_cache_lines() -> None:
    rng = np.random.default_rng(3)
    for scenarios in (16, 35, 38):
        arrays, delta, value = (
            rng.normal(size=(7, scenarios)),
            rng.normal(size=7),
            rng.normal(size=7),
        )
        table = kernels._columns(arrays, delta, value)
        assert table.ctypes.data % kernels.CACHE_LINE == 0
        assert table.strides[0] % kernels.CACHE_LINE == 0 and table.flags.c_contiguous
        np.testing.assert_array_equal(
            table[:, : scenarios + 2], np.column_stack([arrays, delta, value])
        )
        assert (table[:, scenarios + 2 :] == 0).all()
