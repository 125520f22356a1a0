"""Tests of the semantic validation that each config section's checks make."""

from __future__ import annotations

import re

import pytest

from pipeline.core.config import PARTITIONED_FROM, config_from_dict, load_config, validate
from pipeline.core.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        (["preprocess.split.method=bogus"], "preprocess.split.method", "'bogus'"),
        (["preprocess.split.eval_fraction=1.5"], "preprocess.split.eval_fraction", "1.5"),
        (["preprocess.split.eval_fraction=0"], "preprocess.split.eval_fraction", "0.0"),
        (
            ["preprocess.split.method=random", "preprocess.split.cutoff=978300760"],
            "preprocess.split.cutoff",
            "'978300760'",
        ),
        (["preprocess.split.cutoff=yesterday"], "preprocess.split.cutoff", "'yesterday'"),
        (["preprocess.split.eval_count=100"], "preprocess.split.eval_count", "100"),
        (
            ["preprocess.split.method=random", "preprocess.split.eval_count=0"],
            "preprocess.split.eval_count",
            "0",
        ),
        (["data.format=xml"], "data.format", "'xml'"),
        (["data.csv_delimiter=;;"], "data.csv_delimiter", "';;'"),
        (["data.events.timestamp_unit=us"], "data.events.timestamp_unit", "'us'"),
        (["data.events.fields.user_id= "], "data.events.fields.user_id", "''"),
        (["work_dir="], "work_dir", "''"),
        (["preprocess.history_length=0"], "preprocess.history_length", "0"),
        (["preprocess.vocab.min_count=0"], "preprocess.vocab.min_count", "0"),
        (["preprocess.validation.max_id_bytes=0"], "preprocess.validation.max_id_bytes", "0"),
        (["preprocess.event_type_weights.click=-1"], "preprocess.event_type_weights.click", "-1.0"),
        (["sample_data.cold_item_fraction=0.5"], "sample_data.cold_item_fraction", "0.5"),
        (["sample_data.format=movielens"], "sample_data.format", "'movielens'"),
        (["beam.direct_running_mode=fast"], "beam.direct_running_mode", "'fast'"),
        (["model.cross_projection_dim=0"], "model.cross_projection_dim", "0"),
        (["serving.keep_exports=-1"], "serving.keep_exports", "-1"),
        (["serving.index=ivf"], "serving.index", "'ivf'"),
        (["serving.index_probes=0"], "serving.index_probes", "0"),
        (["serving.index_partitions=0"], "serving.index_partitions", "0"),
    ],
)
def test_validate_errors_name_field_and_value(overrides, field, value):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert message.startswith("invalid config: ")
    assert f"{field} " in message
    assert f"(got {value})" in message


@pytest.mark.parametrize(
    "overrides",
    [
        ["preprocess.split.cutoff=978300760"],
        ["preprocess.split.cutoff='2001-01-01T00:00:00Z'"],
        ["preprocess.split.method=random", "preprocess.split.eval_count=20000"],
        ["preprocess.split.method=leave_last_out"],
        ["preprocess.vocab.item_min_count=0", "preprocess.output_shards=0"],
        ["model.cross_projection_dim=32"],
        ["model.cross_projection_dim=null"],
        ["serving.index=partitioned", "serving.index_probes=1", "serving.index_partitions=1"],
        ["serving.index=exact", "serving.index_partitions=null"],
    ],
)
def test_valid_settings_pass(overrides):
    load_config(None, overrides)


def test_an_auto_index_partitions_a_catalog_from_the_crossover_on():
    serving = load_config(None).serving
    assert serving.index == "auto"
    assert serving.index_kind(PARTITIONED_FROM - 1) == "exact"
    assert serving.index_kind(PARTITIONED_FROM) == "partitioned"
    exact = load_config(None, ["serving.index=exact"]).serving
    assert exact.index_kind(10 * PARTITIONED_FROM) == "exact"
    assert load_config(None, ["serving.index=partitioned"]).serving.index_kind(2) == "partitioned"


@pytest.mark.parametrize(
    "name", ["..", ".", "", "a/b", "../victim", ".rolled-back", "-x", "rec:1", "my model", "é"]
)
def test_a_model_name_that_is_no_folder_and_url_name_is_refused(name):
    config = config_from_dict({"serving": {"model_name": name}})
    with pytest.raises(ConfigError) as info:
        validate(config)
    message = str(info.value)
    assert "\n" not in message
    assert "serving.model_name must be a letter or digit followed by letters, digits" in message
    assert message.endswith(f"(got {name!r})")


@pytest.mark.parametrize("name", ["recommender", "shop-v2", "Rec.2_x", "7"])
def test_tf_serving_model_names_pass(name):
    validate(config_from_dict({"serving": {"model_name": name}}))


def test_all_errors_of_one_config_are_reported_together():
    overrides = [
        "preprocess.split.method=bogus",
        "preprocess.split.eval_fraction=1.5",
        "preprocess.history_length=0",
        "data.format=xml",
        "beam.direct_num_workers=-1",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    for fragment in (
        "preprocess.split.method must be one of temporal, leave_last_out, random (got 'bogus')",
        "preprocess.split.eval_fraction must be in (0, 1) (got 1.5)",
        "preprocess.history_length must be at least 1 (got 0)",
        "data.format must be one of jsonl, csv, parquet, movielens (got 'xml')",
        "beam.direct_num_workers must be at least 0 (got -1)",
    ):
        assert fragment in message
    assert message.count(";") == 4


def test_validate_can_be_called_on_a_built_config():
    config = config_from_dict({"preprocess": {"split": {"method": "random", "cutoff": "5"}}})
    message = "preprocess.split.cutoff is only used by the temporal split"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(config)
