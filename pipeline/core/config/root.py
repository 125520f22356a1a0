"""The whole configuration: `Config`, one field per section, and `validate`, which runs every
section's checks and raises one ConfigError naming each bad field and value."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

# Each section module is imported whole for its `validate`, and its dataclass by name for
# `Config`'s annotations, which `typing.get_type_hints` resolves in this module's globals.
from pipeline.core.config import (
    beam,
    data,
    evaluate,
    gate,
    model,
    preprocess,
    run,
    sample_data,
    serving,
    text,
    train,
)
from pipeline.core.config.beam import BeamConfig
from pipeline.core.config.checks import Problems
from pipeline.core.config.data import DataConfig
from pipeline.core.config.evaluate import EvaluateConfig
from pipeline.core.config.gate import GateConfig
from pipeline.core.config.model import ModelConfig
from pipeline.core.config.preprocess import PreprocessConfig
from pipeline.core.config.run import RunConfig
from pipeline.core.config.sample_data import SampleDataConfig
from pipeline.core.config.serving import ServingConfig
from pipeline.core.config.text import TextConfig
from pipeline.core.config.train import TrainConfig

__all__ = ["Config", "validate"]


@dataclass
class Config:
    """The whole configuration.

    Attributes:
      work_dir: Every step reads its inputs from and writes its outputs under this directory.
      data: See `DataConfig`.
      sample_data: See `SampleDataConfig`.
      preprocess: See `PreprocessConfig`.
      text: See `TextConfig`.
      model: See `ModelConfig`.
      train: See `TrainConfig`.
      evaluate: See `EvaluateConfig`.
      serving: See `ServingConfig`.
      gate: See `GateConfig`.
      beam: See `BeamConfig`.
      run: See `RunConfig`.
    """

    work_dir: str = "work"
    data: DataConfig = field(default_factory=DataConfig)
    sample_data: SampleDataConfig = field(default_factory=SampleDataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def data_path(self) -> str:
        """`data.path` with `{work_dir}` substituted."""
        return self.data.path.replace("{work_dir}", self.work_dir)

    def step_dir(self, step: str) -> str:
        """The output folder of a pipeline step."""
        return os.path.join(self.work_dir, step)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate(config: Config) -> None:
    """Checks every semantic rule; raises one ConfigError naming each bad field and value."""
    problems = Problems()
    problems.check(bool(config.work_dir.strip()), "work_dir", config.work_dir, "must not be empty")
    data.validate(config.data, problems)
    sample_data.validate(config.sample_data, problems)
    preprocess.validate(config.preprocess, problems)
    text.validate(config.text, problems)
    model.validate(config.model, problems)
    train.validate(config.train, problems)
    # The serving checks come in two parts around the gate and evaluate checks: the order
    # in which a config with several errors lists them is the order it always had.
    serving.validate_paths(config.serving, problems)
    gate.validate(config.gate, problems)
    evaluate.validate(config.evaluate, problems)
    serving.validate_requests_and_server(config.serving, problems)
    serving.validate_index(config.serving, problems)
    beam.validate(config.beam, problems)
    run.validate(config.run, problems)
    # No rule relates two sections yet; one that does belongs here, after the sections' own.
    problems.raise_if_any()
