"""The `sample_data` section: the synthetic marketplace `recsys sample-data` writes for the demo."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.config.checks import Problems

__all__ = ["SampleDataConfig", "validate"]


@dataclass
class SampleDataConfig:
    """The embedded synthetic marketplace written by `recsys sample-data`.

    Attributes:
      n_users: Number of users.
      n_items: Number of catalog items.
      n_categories: Number of categories (at most 20 are defined).
      days: Length of the simulated log in days.
      sessions_per_user: Mean number of sessions a user has over the log.
      cold_item_fraction: Share of items added near the end of the log (few or no events).
      seed: Seed of the generator; the same seed gives byte-identical files.
      format: File format written: `jsonl`, `csv` or `parquet`.
    """

    n_users: int = 2000
    n_items: int = 3000
    n_categories: int = 20
    days: int = 120
    sessions_per_user: float = 8.0
    cold_item_fraction: float = 0.08
    seed: int = 7
    format: str = "jsonl"


def validate(sample_data: SampleDataConfig, problems: Problems) -> None:
    """Records each semantic error of the `sample_data` section."""
    problems.check(
        sample_data.n_users >= 10, "sample_data.n_users", sample_data.n_users, "must be at least 10"
    )
    problems.check(
        sample_data.n_items >= 20, "sample_data.n_items", sample_data.n_items, "must be at least 20"
    )
    problems.check(
        2 <= sample_data.n_categories <= 20,
        "sample_data.n_categories",
        sample_data.n_categories,
        "must be between 2 and 20",
    )
    problems.check(
        sample_data.days >= 2, "sample_data.days", sample_data.days, "must be at least 2"
    )
    problems.check(
        sample_data.sessions_per_user > 0,
        "sample_data.sessions_per_user",
        sample_data.sessions_per_user,
        "must be positive",
    )
    problems.check(
        0 <= sample_data.cold_item_fraction < 0.5,
        "sample_data.cold_item_fraction",
        sample_data.cold_item_fraction,
        "must be in [0, 0.5)",
    )
    problems.choice("sample_data.format", sample_data.format, ("jsonl", "csv", "parquet"))
