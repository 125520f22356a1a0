"""The pipeline's configuration: one YAML file parsed into documented dataclasses.

One module per section holds its dataclasses, whose docstrings document every key, and the
checks of their fields (`data`, `sample_data`, `preprocess`, `text`, `model`, `train`,
`evaluate`, `serving`, `gate`, `beam`, `run`); `root` holds `Config`, the whole, and `validate`,
which runs every section's checks; `loader` reads the YAML, applies `--set a.b=value` overrides
and builds the dataclasses. Every error names the dotted field and the offending value.
"""

from pipeline.core.config.beam import RUNNING_MODES, BeamConfig
from pipeline.core.config.data import (
    FORMATS,
    TIMESTAMP_UNITS,
    DataConfig,
    EventFields,
    EventsInput,
    ItemFields,
    ItemsInput,
)
from pipeline.core.config.evaluate import EvaluateConfig
from pipeline.core.config.gate import GateConfig
from pipeline.core.config.loader import apply_overrides, config_from_dict, load_config
from pipeline.core.config.model import HISTORY_POOLINGS, RETRIEVAL_NEGATIVES, ModelConfig
from pipeline.core.config.preprocess import (
    SPLIT_METHODS,
    PreprocessConfig,
    SplitConfig,
    ValidationConfig,
    VocabConfig,
)
from pipeline.core.config.root import Config, validate
from pipeline.core.config.run import RunConfig
from pipeline.core.config.sample_data import SampleDataConfig
from pipeline.core.config.serving import (
    INDEXES,
    MMR_EMBEDDINGS,
    MODEL_NAME,
    PARTITIONED_FROM,
    RELEVANCES,
    ServingBatching,
    ServingConfig,
)
from pipeline.core.config.text import TEXT_FIELDS, TEXT_POOLINGS, TextConfig
from pipeline.core.config.train import STRATEGIES, TrainConfig

__all__ = [
    "FORMATS",
    "HISTORY_POOLINGS",
    "INDEXES",
    "MMR_EMBEDDINGS",
    "MODEL_NAME",
    "PARTITIONED_FROM",
    "RELEVANCES",
    "RETRIEVAL_NEGATIVES",
    "RUNNING_MODES",
    "SPLIT_METHODS",
    "STRATEGIES",
    "TEXT_FIELDS",
    "TEXT_POOLINGS",
    "TIMESTAMP_UNITS",
    "BeamConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "EventFields",
    "EventsInput",
    "GateConfig",
    "ItemFields",
    "ItemsInput",
    "ModelConfig",
    "PreprocessConfig",
    "RunConfig",
    "SampleDataConfig",
    "ServingBatching",
    "ServingConfig",
    "SplitConfig",
    "TextConfig",
    "TrainConfig",
    "ValidationConfig",
    "VocabConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "validate",
]
