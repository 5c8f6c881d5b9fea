"""The warehouse's stores: every SQL statement the services run, one module per schema.

- :mod:`pipelines.stores.market` — the one market-history loader (spliced series with
  provenance) and the day-level market queries;
- :mod:`pipelines.stores.calibration` — the ``calib`` schema;
- :mod:`pipelines.stores.backtest` — the ``bt`` schema and its caches;
- :mod:`pipelines.stores.reports` — the ``rpt`` schema.

The ``gov`` schema is governance's own store (:mod:`governance.store`); ingest writes the
``market`` schema through its validators (:mod:`pipelines.ingest`). Services load through a
store, call one pure function and store through it; they import no DuckDB.
"""
