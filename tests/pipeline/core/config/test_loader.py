"""Tests of YAML config loading, `--set` overrides and the type checks of the build."""

from __future__ import annotations

import re

import pytest

from pipeline.core.config import Config, apply_overrides, load_config
from pipeline.core.errors import ConfigError
from tests.conftest import REPO_ROOT


def write(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_no_file_gives_defaults():
    config = load_config(None)
    assert config == Config()
    assert config.data.format == "jsonl"
    assert config.preprocess.history_length == 20
    assert config.preprocess.split.method == "temporal"
    assert config.preprocess.split.eval_fraction == 0.1


def test_yaml_values_override_defaults_and_keep_the_rest(tmp_path):
    path = write(
        tmp_path,
        "work_dir: out\n"
        "data:\n"
        "  format: csv\n"
        "  events:\n"
        "    fields: {rating: stars}\n"
        "preprocess:\n"
        "  history_length: 7\n"
        "  event_type_weights: {click: 0.5, buy: 2}\n",
    )
    config = load_config(path)
    assert config.work_dir == "out"
    assert config.data.format == "csv"
    assert config.data.events.fields.rating == "stars"
    assert config.data.events.fields.user_id == "user_id"
    assert config.data.items.category_delimiter == "|"
    assert config.preprocess.history_length == 7
    assert config.preprocess.event_type_weights == {"click": 0.5, "buy": 2.0}
    assert isinstance(config.preprocess.event_type_weights["buy"], float)
    assert config.preprocess.split.seed == 42
    assert config.step_dir("preprocess") == "out/preprocess"


def test_empty_yaml_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing\n")) == Config()


def test_work_dir_placeholder_in_data_path():
    config = load_config(None, ["work_dir=/tmp/w", "data.path={work_dir}/raw"])
    assert config.data_path() == "/tmp/w/raw"


@pytest.mark.parametrize(
    ("override", "getter", "expected"),
    [
        ("preprocess.history_length=5", lambda c: c.preprocess.history_length, 5),
        ("preprocess.split.eval_fraction=0.25", lambda c: c.preprocess.split.eval_fraction, 0.25),
        ("sample_data.sessions_per_user=3", lambda c: c.sample_data.sessions_per_user, 3.0),
        ("data.events.fields.event_type=null", lambda c: c.data.events.fields.event_type, None),
        ("data.events.fields.rating=stars", lambda c: c.data.events.fields.rating, "stars"),
        ("work_dir=123", lambda c: c.work_dir, "123"),
        (
            "data.items.extra_text_fields=[tags, notes]",
            lambda c: c.data.items.extra_text_fields,
            ["tags", "notes"],
        ),
        (
            "beam.options=[--project=p, --region=r]",
            lambda c: c.beam.options,
            ["--project=p", "--region=r"],
        ),
        (
            "preprocess.event_type_weights.click=0.5",
            lambda c: c.preprocess.event_type_weights,
            {"click": 0.5},
        ),
    ],
)
def test_overrides_are_typed_as_yaml(override, getter, expected):
    value = getter(load_config(None, [override]))
    assert value == expected
    assert type(value) is type(expected)


def test_override_wins_over_file_and_null_clears_a_value(tmp_path):
    path = write(
        tmp_path,
        "preprocess:\n  history_length: 7\n  split: {method: temporal, cutoff: '978300760'}\n",
    )
    assert load_config(path).preprocess.split.cutoff == "978300760"
    config = load_config(path, ["preprocess.history_length=9", "preprocess.split.cutoff=null"])
    assert config.preprocess.history_length == 9
    assert config.preprocess.split.cutoff is None


def test_apply_overrides_leaves_its_input_alone():
    raw = {"preprocess": {"split": {"seed": 1}}}
    result = apply_overrides(raw, ["preprocess.split.seed=2"])
    assert result == {"preprocess": {"split": {"seed": 2}}}
    assert raw == {"preprocess": {"split": {"seed": 1}}}


@pytest.mark.parametrize("override", ["history_length", "=5", " =5"])
def test_malformed_override_is_rejected(override):
    with pytest.raises(ConfigError, match=re.escape("key.path=value")):
        apply_overrides({}, [override])


def test_override_through_a_scalar_is_rejected():
    with pytest.raises(ConfigError, match="'work_dir' is not a section"):
        apply_overrides({}, ["work_dir=x", "work_dir.sub=1"])


def test_override_into_an_empty_yaml_section(tmp_path):
    path = write(tmp_path, "preprocess:\n")
    assert load_config(path, ["preprocess.history_length=5"]).preprocess.history_length == 5


@pytest.mark.parametrize(
    ("override", "dotted"),
    [
        ("preprocess.split.methd=random", "preprocess.split.methd"),
        ("colour=blue", "colour"),
        ("data.events.fields.user=u", "data.events.fields.user"),
    ],
)
def test_unknown_key_error_names_the_dotted_key(override, dotted):
    with pytest.raises(ConfigError, match=re.escape(f"unknown field '{dotted}'")):
        load_config(None, [override])


def test_unknown_key_in_file_names_the_dotted_key(tmp_path):
    path = write(tmp_path, "preprocess:\n  vocab:\n    min_cnt: 3\n")
    with pytest.raises(ConfigError, match=re.escape("'preprocess.vocab.min_cnt'")):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ("preprocess.history_length=abc", "preprocess.history_length", "'abc'"),
        ("preprocess.history_length=1.5", "preprocess.history_length", "1.5"),
        ("preprocess.history_length=true", "preprocess.history_length", "True"),
        ("preprocess.split.eval_fraction=half", "preprocess.split.eval_fraction", "'half'"),
        ("preprocess.split.eval_fraction=false", "preprocess.split.eval_fraction", "False"),
        ("work_dir=[a, b]", "work_dir", "['a', 'b']"),
        ("beam.options=--x", "beam.options", "'--x'"),
        ("data.items.extra_text_fields=[a, [b]]", "data.items.extra_text_fields[1]", "['b']"),
        ("preprocess.split=temporal", "preprocess.split", "'temporal'"),
        ("preprocess.event_type_weights=[1]", "preprocess.event_type_weights", "[1]"),
    ],
)
def test_wrong_type_error_names_field_and_value(override, field, value):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert f"'{field}'" in message
    assert f"(got {value})" in message


@pytest.mark.parametrize("cutoff", ["2001-01-01", "2001-01-01T00:00:00Z"])
def test_unquoted_iso_cutoff_is_accepted(cutoff):
    config = load_config(None, [f"preprocess.split.cutoff={cutoff}"])
    assert config.preprocess.split.cutoff is not None


def test_missing_file_is_a_config_error(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing)
    assert missing in str(info.value)


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = write(tmp_path, "data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_yaml_that_is_not_a_mapping_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, text))


SHIPPED = sorted((REPO_ROOT / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_load(path):
    config = load_config(str(path))
    assert isinstance(config, Config)
