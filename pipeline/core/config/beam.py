"""The `beam` section: which runner the Beam jobs (preprocess, embed-items) use, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = ["RUNNING_MODES", "BeamConfig", "validate"]

RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")


@dataclass
class BeamConfig:
    """How Beam jobs run. Any runner works by flags, e.g. `--runner DataflowRunner`.

    Attributes:
      runner: Beam runner name. DirectRunner jobs run on Beam's FnApiRunner, without the
        DirectRunner's attempt to download Prism (`pipeline/core/beam_step.py`).
      direct_num_workers: DirectRunner worker count; 0 means one per CPU core.
      direct_running_mode: `in_memory`, `multi_threading` or `multi_processing`.
      options: Further pipeline flags, as on a command line (e.g. `--project=p`).
    """

    runner: str = "DirectRunner"
    direct_num_workers: int = 0
    direct_running_mode: str = "multi_processing"
    options: list[str] = field(default_factory=list)


def validate(beam: BeamConfig, problems: Problems) -> None:
    """Records each semantic error of the `beam` section."""
    problems.check(
        beam.direct_num_workers >= 0,
        "beam.direct_num_workers",
        beam.direct_num_workers,
        "must be at least 0",
    )
    problems.choice("beam.direct_running_mode", beam.direct_running_mode, RUNNING_MODES)
