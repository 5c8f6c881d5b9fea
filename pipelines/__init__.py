"""Margin Workbench orchestration: the warehouse, data sources, Dagster definitions and the CLI.

This is the only package that imports Dagster, and only from ``pipelines.defs`` and
``pipelines.definitions``; the warehouse, sources and ingestion modules are plain Python so the
command line starts fast.
"""

__version__ = "0.1.0"
