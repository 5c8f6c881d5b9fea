"""Pure backtests of margin models: replaying history through the models, the coverage tests
of the breaches, procyclicality, calibrated parameter paths and the summaries of a run.

No Dagster, no DuckDB: inputs are arrays, pandas objects and frozen parameter objects; outputs
are frames and frozen results. :mod:`pipelines` loads the inputs, caches and stores the rows.
"""
