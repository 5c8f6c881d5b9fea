"""The DuckDB warehouse: connections, ordered migrations and transactions."""

from pipelines.warehouse.connection import connect, transaction
from pipelines.warehouse.migrations import applied_versions, migrate

__all__ = ["applied_versions", "connect", "migrate", "transaction"]
