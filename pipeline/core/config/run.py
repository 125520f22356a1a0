"""The `run` section: `recsys run` and the schedule its Airflow DAG or crontab follows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.core.config.checks import Problems

__all__ = ["RunConfig", "validate"]


@dataclass
class RunConfig:
    """`recsys run` and its schedule (the Airflow DAG in `pipeline/orchestrate/airflow_dag.py`, or
    cron).

    Attributes:
      sample_data: Start with the sample-data step (the demo); real data is read from
        `data.path` as it is.
      schedule: When the scheduler starts a run: a cron expression or a preset such as
        `@daily`; null runs only when triggered.
      start_date: ISO date from which the schedule counts (no catch-up of older runs).
      retries: How many times the scheduler retries a failed step (a failed gate is not
        retried: it fails the run).
      retry_delay_minutes: Wait before a retry.
      dag_id: The Airflow DAG's id; `{model_name}` becomes `serving.model_name`.
    """

    sample_data: bool = False
    schedule: str | None = "@daily"
    start_date: str = "2026-01-01"
    retries: int = 2
    retry_delay_minutes: float = 5.0
    dag_id: str = "recsys_{model_name}"


def validate(run: RunConfig, problems: Problems) -> None:
    """Records each semantic error of the `run` section."""
    if run.schedule is not None:
        problems.check(
            bool(run.schedule.strip()), "run.schedule", run.schedule, "must not be empty"
        )
    problems.check(
        _is_iso_date(run.start_date),
        "run.start_date",
        run.start_date,
        "must be an ISO date such as 2026-01-01",
    )
    problems.check(run.retries >= 0, "run.retries", run.retries, "must be at least 0")
    problems.check(
        run.retry_delay_minutes >= 0,
        "run.retry_delay_minutes",
        run.retry_delay_minutes,
        "must be at least 0",
    )
    problems.check(bool(run.dag_id.strip()), "run.dag_id", run.dag_id, "must not be empty")


def _is_iso_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True
