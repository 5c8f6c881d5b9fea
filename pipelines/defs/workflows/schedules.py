"""The daily calibration at 00:30 UTC, ingesting the day that has just closed."""

from datetime import timedelta

import dagster as dg

from pipelines.defs.workflows.jobs import daily_calibration, daily_run
from pipelines.settings import load_settings


@dg.schedule(
    job=daily_calibration,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    description="Recalibrate every day at 00:30 UTC on the day that closed at midnight.",
)
def daily_calibration_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date()
    partition, config = daily_run(day, list(load_settings().market.assets))
    return dg.RunRequest(
        run_key=f"daily-{partition}",
        partition_key=partition,
        run_config=config,
        tags={"market_day": partition},
    )
