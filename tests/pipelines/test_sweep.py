"""``mwb sweep``: every value backtested on identical inputs, serially or on a Dask cluster
with the same numbers, monotone where the model is, and its refusals."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_mwb, synthetic_warehouse

from backtesting.spec import BacktestSpec
from governance.parameters import default_parameter_set
from pipelines.compute import dask_client, dask_mapper
from pipelines.errors import BadInputError
from pipelines.settings import ComputeSettings, load_settings
from pipelines.sweep import run_sweep

PARAM = "underlyings.ETH.pm.price_range"
VALUES = (0.10, 0.14, 0.18, 0.22, 0.26)
SPEC = BacktestSpec(
    start=date(2024, 7, 1), end=date(2024, 12, 31), models=("deribit-pm",), portfolios=("books",)
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    settings, con = synthetic_warehouse(tmp_path_factory, "sweep-home")
    yield settings, con
    con.close()


@pytest.fixture(scope="module")
def serial(warehouse):
    settings, con = warehouse
    return run_sweep(con, settings, default_parameter_set(), PARAM, VALUES, SPEC)


def test_a_wider_range_costs_capital_and_saves_breaches(serial) -> None:
    points = serial.payload()["points"]
    capital = [p["mean_capital_usd"] for p in points]
    breaches = [p["breaches"] for p in points]
    assert capital == sorted(capital) and capital[0] < 0.8 * capital[-1]
    assert breaches == sorted(breaches, reverse=True) and breaches[0] > breaches[-1]
    # the set in force (ETH 0.18) is one of the values: the same numbers as the active run
    current = next(p for p in points if p["value"] == 0.18)
    assert serial.current_value == 0.18
    assert current["capital_vs_active"] == pytest.approx(1.0)
    assert current["breaches"] == serial.active.breaches
    assert serial.knee in VALUES


def test_two_local_workers_give_the_serial_numbers(warehouse, serial) -> None:
    settings, con = warehouse
    with dask_client(ComputeSettings(workers=2)) as client:
        run = run_sweep(
            con, settings, default_parameter_set(), PARAM, VALUES, SPEC, mapper=dask_mapper(client)
        )
    assert run.payload()["points"] == serial.payload()["points"]


def test_the_days_cut_into_chunks_give_one_replay_s_rows_byte_for_byte(warehouse) -> None:
    from backtesting.replay import trading_days
    from backtesting.sweep import chunk_margins, day_chunks, joined, point_margins
    from margin_engine.portfolios import select
    from pipelines.backtest import load_history

    settings, con = warehouse
    books = tuple(p for p in select(("books",)) if p.kind == "book")
    history, _, data, _ = load_history(con, settings.market.source_preference, ["BTC", "ETH"])
    days = trading_days(history, SPEC.start, SPEC.end, 2)
    base = default_parameter_set()
    sets = [base.with_changes({PARAM: v}).to_model_params() for v in (0.12, 0.2)]
    engine = base.to_model_params()
    for count in (1, 3, 7, len(days) + 5):
        chunks = day_chunks(days, count)
        assert [d for chunk in chunks for d in chunk] == days  # every day once, in order
        assert len(chunks) == min(count, len(days)) and all(chunks)
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
        whole = joined(
            [chunk_margins(history, books, c, 2, data, "deribit-pm", engine, sets) for c in chunks]
        )
        pd.testing.assert_frame_equal(
            whole.standard, point_margins(history, books, days, 2, data, "standard", engine)
        )
        for params, rows in zip(sets, whole.sets, strict=True):
            alone = point_margins(history, books, days, 2, data, "deribit-pm", params)
            pd.testing.assert_frame_equal(rows, alone, check_exact=True)


class CountingMapper:
    """The built-in map, saying it has ``workers`` slots (as a Dask mapper does)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.calls: list[int] = []

    def __call__(self, fn, items):
        items = list(items)
        self.calls.append(len(items))
        return [fn(item) for item in items]


def test_a_mapper_with_slots_gets_the_days_in_chunks_and_the_same_numbers(warehouse, serial):
    settings, con = warehouse
    mapper = CountingMapper(workers=3)
    run = run_sweep(con, settings, default_parameter_set(), PARAM, VALUES, SPEC, mapper=mapper)
    assert mapper.calls == [12, len(VALUES)]  # 4 chunks of days a slot, then one summary a value
    assert run.payload()["points"] == serial.payload()["points"]
    assert run.active == serial.active and run.knee == serial.knee


def test_a_sweep_of_the_standard_model_tests_its_own_series(warehouse) -> None:
    # the standard model is also every point's efficiency baseline: its series are tested
    # once, not doubled with the baseline's rows nor dropped with them
    from pipelines.backtest import ParamSource, run_backtest

    settings, con = warehouse
    base = default_parameter_set()
    param = "underlyings.ETH.standard.option_a"
    run = run_sweep(con, settings, base, param, (0.10, 0.15, 0.20), SPEC, model="standard")
    points = run.payload()["points"]
    capital = [p["mean_capital_usd"] for p in points]
    assert capital == sorted(capital) and capital[0] < capital[-1]
    spec = dataclasses.replace(SPEC, models=("standard",))
    plain = run_backtest(con, settings, [ParamSource("current", base)], spec, store=False)
    daily = plain.daily[plain.daily["model"] == "standard"]
    current = next(p for p in points if p["value"] == 0.15)
    assert current["observations"] == len(daily) > 0
    assert current["breaches"] == int(daily["breach"].sum())


def test_refusals_name_the_value(warehouse) -> None:
    settings, con = warehouse
    with pytest.raises(BadInputError, match=r"--param underlyings.ETH.pm.price_range = -0.1"):
        run_sweep(con, settings, default_parameter_set(), PARAM, (0.1, -0.1), SPEC)
    with pytest.raises(BadInputError, match="no such"):
        run_sweep(con, settings, default_parameter_set(), "underlyings.ETH.pm.nope", (0.1,), SPEC)
    with pytest.raises(BadInputError, match="--model"):
        run_sweep(con, settings, default_parameter_set(), PARAM, (0.1,), SPEC, model="haircut")


def test_a_proposal_frontier_brackets_the_change_and_agrees_with_the_backtest(warehouse) -> None:
    from types import SimpleNamespace

    from pipelines.backtest import ParamSource, run_backtest
    from pipelines.report import proposal_frontier

    settings, con = warehouse
    base = default_parameter_set()
    change = SimpleNamespace(path=PARAM, old=0.18, new=0.16)
    spec = dataclasses.replace(SPEC, start=date(2024, 10, 1))
    frontier = proposal_frontier(con, settings, base, [change], spec)
    values = [p["value"] for p in frontier["points"]]
    # one whole change below the current value to one whole change beyond the proposed one
    assert values == pytest.approx([0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.20])
    assert (frontier["current_value"], frontier["proposed_value"]) == (0.18, 0.16)
    assert frontier["model"] == "deribit-pm" and frontier["parameter"] == PARAM
    # the current point is the set in force: a plain backtest of it (another code path, through
    # the warehouse) ties up the same capital on the same days
    run = run_backtest(con, settings, [ParamSource("current", base)], spec, store=False)
    daily = run.daily[run.daily["model"] == "deribit-pm"]
    capital = (daily["margin"] * daily["fx_usd"]).groupby(daily["date"]).sum()
    current = frontier["points"][values.index(pytest.approx(0.18))]
    assert current["mean_capital_usd"] == pytest.approx(capital.mean(), rel=1e-12)
    assert current["breaches"] == int(daily["breach"].sum())
    assert frontier["active"]["mean_capital_usd"] == current["mean_capital_usd"]
    # several changes read by one model move together, as fractions of the change
    both = [change, SimpleNamespace(path="underlyings.BTC.pm.price_range", old=0.16, new=0.14)]
    together = proposal_frontier(con, settings, base, both, spec)
    assert [p["value"] for p in together["points"]] == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert together["points"][2]["mean_capital_usd"] == current["mean_capital_usd"]
    # a change no swept model reads has no frontier, and says why
    haircut = SimpleNamespace(path="collateral.ETH.haircut", old=0.1, new=0.08)
    assert "not all read" in proposal_frontier(con, settings, base, [haircut], spec)["reason"]


def test_the_dagster_sweep_asset_runs_on_its_dask_resource(warehouse, serial) -> None:
    import dagster as dg

    from pipelines.defs.backtest.assets import parameter_sweep
    from pipelines.defs.resources import DaskResource, WarehouseResource, WorkbenchResource

    settings, con = warehouse
    con.execute("CHECKPOINT")
    config = {
        "parameter": PARAM,
        "values": "0.14,0.18,0.22",
        "start": str(SPEC.start),
        "end": str(SPEC.end),
    }
    result = dg.materialize(
        [parameter_sweep],
        resources={
            "workbench": WorkbenchResource(home=str(settings.home)),
            "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
            "dask": DaskResource(workers=1),
        },
        run_config={"ops": {"bt__parameter_sweep": {"config": config}}},
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("bt__parameter_sweep")
    meta = {k: v.value for k, v in event.metadata.items()}
    stored = json.loads(Path(meta["sweep_json"]).read_text())
    # the asset's numbers are the serial sweep's at the same values, one task per value
    expected = {p["value"]: p for p in serial.payload()["points"]}
    for point in stored["points"]:
        same = expected[point["value"]]
        for key in ("breaches", "zone", "mean_capital_usd", "peak_capital_usd", "min_pvalue"):
            assert point[key] == same[key], key
    assert meta["frontier_parameter"] == PARAM and meta["current_value"] == 0.18
    assert "|    0.22 |" in meta["frontier"]
    assert Path(meta["frontier_chart"]).read_bytes().startswith(b"\x89PNG")


def test_the_command_prints_the_frontier_and_writes_its_chart(warehouse, tmp_path) -> None:
    settings, con = warehouse
    con.execute("CHECKPOINT")
    con.close()
    try:
        (settings.home / "config.yaml").write_text("compute:\n  workers: 1\n")
        chart = tmp_path / "frontier.svg"
        args = ["sweep", "--param", PARAM, "--from", "2024-10-01", "--to", "2024-12-31"]
        result = run_mwb(
            *args, "--values", "0.12:0.24:0.06", "--chart", str(chart), "--json",
            home=settings.home, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        payload = json.loads(result.stdout)
        assert [p["value"] for p in payload["points"]] == [0.12, 0.18, 0.24]
        assert chart.read_text().startswith("<svg") and "http" not in chart.read_text()
        bad = run_mwb(*args, "--values", "0.3:0.1:0.01", home=settings.home)
        assert bad.returncode == 2 and bad.stderr.startswith("error: --values")
        assert len(bad.stderr.strip().splitlines()) == 1
        png = run_mwb(*args, "--values", "0.1", "--chart", str(tmp_path), home=settings.home)
        assert png.returncode == 2 and "--chart" in png.stderr
    finally:
        (settings.home / "config.yaml").unlink(missing_ok=True)


def test_compute_settings_are_checked_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MWB__compute__workers", "0")
    with pytest.raises(BadInputError, match=r"^settings \(MWB__ variables\): compute.workers"):
        load_settings(tmp_path)
    monkeypatch.setenv("MWB__compute__workers", "2")
    monkeypatch.setenv("MWB__compute__scheduler", "http://x")
    with pytest.raises(BadInputError, match="compute.scheduler: .*tcp://host:8786"):
        load_settings(tmp_path)
    monkeypatch.setenv("MWB__compute__scheduler", "tcp://10.0.0.5:8786")
    assert load_settings(tmp_path).compute.scheduler == "tcp://10.0.0.5:8786"


def test_a_chunk_without_books_changes_no_column_type() -> None:
    # days missing from the data give a chunk no rows: its empty frame (generic column types)
    # must not turn the other chunks' string columns into objects
    from backtesting.replay import empty_rows
    from backtesting.sweep import ChunkMargins, joined

    frame = pd.DataFrame(
        {"date": pd.to_datetime(["2024-07-01"]), "portfolio": ["a"], "margin": [1.0]}
    )
    empty = empty_rows()[["date", "portfolio", "margin"]]
    whole = joined(
        [
            ChunkMargins(frame, (frame,)),
            ChunkMargins(empty, (empty,)),
            ChunkMargins(frame, (frame,)),
        ]
    )
    assert len(whole.standard) == 2 and whole.standard.dtypes.equals(frame.dtypes)
    assert joined([ChunkMargins(empty, (empty,))]).standard.empty
