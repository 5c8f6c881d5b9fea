"""``mwb sweep``: backtest one parameter over a range of values on identical inputs.

The driver loads the history once and cuts the days into chunks; the ``mapper`` (a Dask
client's, or the built-in ``map``) replays each chunk as a task under the standard baseline and
every value (:func:`backtesting.sweep.chunk_margins`), so a worker builds only its own days'
books, once. The chunks come back to the driver, which puts each value's series together and
hands each value to the ``mapper`` again as a task that summarises it with the backtest's
coverage tests. Serially the days are one chunk. A history
model (VaR/ES, Monte Carlo) reads the rolling volatility a backtest would: from the
warehouse's cache, or fitted once (as tasks on the same ``mapper``) and cached there, the only
thing a sweep writes; no swept value changes it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backtesting.replay import trading_days
from backtesting.spec import BacktestSpec
from backtesting.sweep import SweepPoint, chunk_margins, day_chunks, joined, knee, summarise_point
from calibration.lineage import library_versions
from governance.parameters import ParameterSet, ParameterSetError
from margin_engine.portfolios import select
from pipelines.backtest import HISTORY_MODELS, history_days, history_inputs, load_history
from pipelines.errors import BadInputError
from pipelines.settings import WorkbenchSettings
from vocabulary import BACKTEST_MODELS, MarginModel

SWEEP_MODELS = tuple(MarginModel(m) for m in BACKTEST_MODELS)
CHUNKS_PER_SLOT = 4  # chunks of days per task slot of a cluster


@dataclass(frozen=True)
class SweepRun:
    parameter: str
    model: str
    current_value: float | None
    points: tuple[SweepPoint, ...]
    active: SweepPoint
    knee: float | None
    data_sha: str
    days: tuple[str, str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        """JSON-safe: every point, the active set's, the knee and the lineage."""
        return {
            "parameter": self.parameter,
            "model": self.model,
            "current_value": self.current_value,
            "points": [p.as_dict() for p in self.points],
            "active": self.active.as_dict(),
            "knee": self.knee,
            "data_sha256": self.data_sha,
            "days": {"from": self.days[0], "to": self.days[1], "count": self.days[2]},
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "library_versions": library_versions(),
        }


def write_frontier(payload: dict, path: Path, proposed: float | None = None) -> Path:
    """The frontier chart of a sweep's ``payload`` at ``path`` (.svg or .png)."""
    from reports.charts import sweep_frontier

    figure = sweep_frontier(
        "sweep-frontier",
        payload["parameter"],
        payload["points"],
        payload["current_value"],
        proposed,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".svg":
        path.write_text(figure.svg, encoding="utf-8")
    else:
        path.write_bytes(figure.png)
    return path


def sweeps_dir(settings: WorkbenchSettings, run: SweepRun) -> Path:
    """Where a sweep's files go: one folder per parameter, model and data fingerprint."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in run.parameter)
    return settings.home / "reports" / "sweeps" / f"{name}-{run.model}-{run.data_sha[:12]}"


def _current_value(params: ParameterSet, parameter: str) -> float | None:
    try:
        value = params.get(parameter)
    except KeyError:
        return None
    return float(value) if isinstance(value, int | float) else None


def _replay(history, names, mpor, data, model, baseline, sets, inputs, days):
    # the books by name from the library: the same objects for every task a worker runs, so
    # its day books (memoised by portfolio and day) are built once
    books = tuple(p for p in select(names) if p.kind == "book")
    return chunk_margins(history, books, days, mpor, data, model, baseline, sets, inputs)


def _summary(standard, confidence, spec, mpor, item):
    value, rows, es_level = item
    return summarise_point(value, rows, standard, confidence, spec, mpor, None, es_level)


def _chunks(mapper: Callable) -> int:
    # a Dask mapper says how many tasks its cluster runs at once; the built-in map runs one
    slots = max(1, int(getattr(mapper, "workers", 1)))
    return CHUNKS_PER_SLOT * slots if slots > 1 else 1


def run_sweep(
    con,
    settings: WorkbenchSettings,
    current: ParameterSet,
    parameter: str,
    values: Sequence[float],
    spec: BacktestSpec,
    *,
    model: str = "deribit-pm",
    mapper: Callable = map,
) -> SweepRun:
    """Backtest ``parameter`` at every one of ``values`` against the set in force."""
    sets = []
    for value in values:
        try:
            sets.append((value, current.with_changes({parameter: value})))
        except (ParameterSetError, ValueError, KeyError, IndexError) as exc:
            raise BadInputError(f"--param {parameter} = {value:g}: {exc}") from None
    return sweep_sets(
        con,
        settings,
        current,
        parameter,
        _current_value(current, parameter),
        sets,
        spec,
        model=model,
        mapper=mapper,
    )


def sweep_sets(
    con,
    settings: WorkbenchSettings,
    current: ParameterSet,
    label: str,
    current_value: float | None,
    sets: Sequence[tuple[float, ParameterSet]],
    spec: BacktestSpec,
    *,
    model: str = "deribit-pm",
    mapper: Callable = map,
) -> SweepRun:
    """Backtest every ``(value, set)`` of ``sets`` against the set in force (``current``,
    whose own value of the swept quantity ``label`` is ``current_value``)."""
    started = time.perf_counter()
    if model not in SWEEP_MODELS:
        raise BadInputError(f"--model: {model!r} is not one of {', '.join(SWEEP_MODELS)}")
    books = tuple(p for p in select(spec.portfolios) if p.kind == "book")
    if not books:
        raise BadInputError("--portfolio: a sweep needs books of positions")
    assets = sorted({u for p in books for u in p.underlying_list})
    history, notes, data_sha, _ = load_history(con, settings.market.source_preference, assets)
    mpor = spec.mpor_days or current.var.mpor_days
    confidence = spec.confidence or current.var.var_confidence
    days = trading_days(history, spec.start, spec.end, mpor)
    if not days:
        raise BadInputError(f"no day in [{spec.start}, {spec.end}] has prices {mpor} days later")
    inputs = None
    if model in HISTORY_MODELS:
        # every swept set's look-back and MPOR is covered: the volatility is fitted once
        every = [current, *(s for _, s in sets)]
        fits = None if mapper is map else mapper  # serially: the local process pool
        _, inputs, _, horizon = history_inputs(
            con, history, data_sha, spec, mpor, every, days[0], fits
        )
        modelled = dataclasses.replace(spec, models=(model,))
        days = history_days(inputs, books, modelled, horizon, days, notes, history.days.min())
    engine = current.to_model_params()
    names = tuple(p.name for p in books)
    items = [(v, s.to_model_params()) for v, s in sets]
    own = next((k for k, (_, s) in enumerate(sets) if s.fingerprint == current.fingerprint), None)
    if own is None:
        # the set in force is one more series: every point, its own included, runs the same way
        items.append((current_value if current_value is not None else float("nan"), engine))
    # the days cut into a few chunks per task slot of a cluster (the last chunks even out
    # the slots' loads): each chunk replays every value on its days, so each worker builds only
    # its days' books; serially, one chunk
    replay = functools.partial(
        _replay, history, names, mpor, data_sha, model, engine, tuple(p for _, p in items), inputs
    )
    margins = joined(list(mapper(replay, day_chunks(days, _chunks(mapper)))))
    summary = functools.partial(_summary, margins.standard, confidence, spec, mpor)
    series = [
        (value, rows, params.var.es_confidence)
        for (value, params), rows in zip(items, margins.sets, strict=True)
    ]
    results = list(mapper(summary, series))
    active = results.pop() if own is None else results[own]
    points = tuple(
        dataclasses.replace(p, capital_vs_active=p.mean_capital_usd / active.mean_capital_usd)
        if active.mean_capital_usd
        else p
        for p in results
    )
    active = dataclasses.replace(active, capital_vs_active=1.0)
    return SweepRun(
        label,
        model,
        current_value,
        points,
        active,
        knee(points),
        data_sha,
        (days[0].date().isoformat(), days[-1].date().isoformat(), len(days)),
        time.perf_counter() - started,
        notes,
    )
