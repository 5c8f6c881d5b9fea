"""Pure calibration numerics: returns, GARCH-family volatility, EWMA/CCC/DCC
correlation, implied-vol dynamics and policy-driven parameter recommendations.

No Dagster, no DuckDB: inputs are arrays and pandas objects, outputs frozen dataclasses that
carry what is needed to reproduce them (data window, fingerprint, library versions).

Conventions: returns are decimal log returns; ``arch`` works on percent returns,
so the wrappers scale by 100 inside and report parameters on arch's (percent) scale, saying so;
variances and volatilities they return are decimal; horizons are days; 365 days a year.
"""

from vocabulary import DAYS_PER_YEAR

__all__ = ["DAYS_PER_YEAR"]
