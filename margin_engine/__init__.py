"""Pure margin numerics: instruments, Black-76 pricing, the risk-array book and the margin
models (standard, SPAN, Deribit-style portfolio margin, VaR/ES, collateral haircuts), reached
through one registry (:mod:`margin_engine.models`). No Dagster, no DuckDB.
"""
