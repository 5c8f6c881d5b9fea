"""Other venues' margin models, each implemented from its published method and checked against
that venue's own published numbers. Pure: no Dagster, no DuckDB, no file reading.
"""
