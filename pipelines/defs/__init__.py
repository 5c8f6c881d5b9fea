"""Dagster definitions, one folder per domain (assets, checks, schedules, sensors)."""
