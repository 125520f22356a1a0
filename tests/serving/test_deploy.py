"""Deployment files: each parses with TF Serving's message for it and carries the config's values.

`ModelServerConfig` comes from the installed `tensorflow-serving-api`. That package ships no
`BatchingParameters` (`servables/tensorflow/session_bundle_config.proto`) and no
`MonitoringConfig` (`config/monitoring_config.proto`), so `_server_schema` rebuilds both
messages from those protos: the same package, names, field numbers and types (the wrapper types
included), enough for `text_format.Parse` to reject any unknown or mistyped field as the server's
parser would.
"""

from __future__ import annotations

import os

import pytest
import yaml
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from pipeline.core.config import ServingBatching, ServingConfig
from serving import deploy
from tests.serving.conftest import modes_under

_F = descriptor_pb2.FieldDescriptorProto

# (name, number, type, type_name, label) per field, as in TF Serving's protos (master, 2026-07).
_BATCHING_FIELDS = [
    ("max_batch_size", 1, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value", _F.LABEL_OPTIONAL),
    ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value", _F.LABEL_OPTIONAL),
    ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value", _F.LABEL_OPTIONAL),
    ("num_batch_threads", 4, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value", _F.LABEL_OPTIONAL),
    ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue", _F.LABEL_OPTIONAL),
    ("allowed_batch_sizes", 6, _F.TYPE_INT64, None, _F.LABEL_REPEATED),
    ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, None, _F.LABEL_OPTIONAL),
    (
        "enable_large_batch_splitting",
        8,
        _F.TYPE_MESSAGE,
        ".google.protobuf.BoolValue",
        _F.LABEL_OPTIONAL,
    ),
    (
        "max_execution_batch_size",
        9,
        _F.TYPE_MESSAGE,
        ".google.protobuf.Int64Value",
        _F.LABEL_OPTIONAL,
    ),
]
_PROMETHEUS_FIELDS = [
    ("enable", 1, _F.TYPE_BOOL, None, _F.LABEL_OPTIONAL),
    ("path", 2, _F.TYPE_STRING, None, _F.LABEL_OPTIONAL),
]
_MONITORING_FIELDS = [
    (
        "prometheus_config",
        1,
        _F.TYPE_MESSAGE,
        ".tensorflow.serving.PrometheusConfig",
        _F.LABEL_OPTIONAL,
    ),
]


def _message(name: str, fields: list[tuple]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, type_name, label in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    return message


def _server_schema() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    schema = descriptor_pb2.FileDescriptorProto(
        name="test_server_schema.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    schema.message_type.extend(
        [
            _message("BatchingParameters", _BATCHING_FIELDS),
            _message("PrometheusConfig", _PROMETHEUS_FIELDS),
            _message("MonitoringConfig", _MONITORING_FIELDS),
        ]
    )
    pool.Add(schema)
    names = ("BatchingParameters", "MonitoringConfig")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
        for n in names
    }


SCHEMA = _server_schema()

CONFIG = ServingConfig(
    model_name="movies",
    keep_versions=5,
    image="tensorflow/serving:2.20.0",
    grpc_port=9100,
    rest_port=9101,
    batching=ServingBatching(
        max_batch_size=64, batch_timeout_micros=500, num_batch_threads=4, max_enqueued_batches=7
    ),
)


@pytest.fixture()
def written(tmp_path):
    paths = deploy.write_deployment(str(tmp_path), CONFIG)
    return tmp_path, paths


def _read(folder, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


def test_write_deployment_returns_the_four_files(written):
    folder, paths = written
    names = ["models.config", "batching.config", "monitoring.config", "docker-compose.yml"]
    assert paths == [str(folder / n) for n in names]
    assert sorted(os.listdir(folder)) == sorted(names)


def test_models_config_parses_as_model_server_config(written):
    folder, _ = written
    parsed = text_format.Parse(
        _read(folder, "models.config"), model_server_config_pb2.ModelServerConfig()
    )
    (model,) = parsed.model_config_list.config
    assert model.name == "movies"
    assert model.base_path == "/models/movies"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 5


def test_model_name_is_escaped_in_text_format(tmp_path):
    config = ServingConfig(model_name='rec"o\\mm')
    deploy.write_deployment(str(tmp_path), config)
    parsed = text_format.Parse(
        _read(tmp_path, "models.config"), model_server_config_pb2.ModelServerConfig()
    )
    assert parsed.model_config_list.config[0].name == 'rec"o\\mm'


def test_batching_config_parses_and_pads_variable_length_inputs(written):
    folder, _ = written
    parsed = text_format.Parse(_read(folder, "batching.config"), SCHEMA["BatchingParameters"]())
    assert parsed.max_batch_size.value == 64
    assert parsed.batch_timeout_micros.value == 500
    assert parsed.num_batch_threads.value == 4
    assert parsed.max_enqueued_batches.value == 7
    assert parsed.pad_variable_length_inputs is True
    assert list(parsed.allowed_batch_sizes) == []  # any size up to max_batch_size


def test_batching_schema_rejects_scalar_form_of_wrapper_fields():
    # The schema is strict enough to catch the usual mistake: wrappers need `{ value: N }`.
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size: 32", SCHEMA["BatchingParameters"]())


def test_monitoring_config_enables_prometheus(written):
    folder, _ = written
    parsed = text_format.Parse(_read(folder, "monitoring.config"), SCHEMA["MonitoringConfig"]())
    assert parsed.prometheus_config.enable is True
    assert parsed.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_every_file_starts_with_a_comment_naming_its_flag(written):
    folder, _ = written
    flags = {
        "models.config": "--model_config_file=/models/models.config",
        "batching.config": "--batching_parameters_file=/models/batching.config",
        "monitoring.config": "--monitoring_config_file=/models/monitoring.config",
    }
    for name, flag in flags.items():
        header = [line for line in _read(folder, name).splitlines() if line.startswith("#")]
        assert any(flag in line for line in header), name
    assert _read(folder, "docker-compose.yml").startswith("# ")


def test_compose_runs_tf_serving_with_the_written_files(written):
    folder, _ = written
    compose = yaml.safe_load(_read(folder, "docker-compose.yml"))
    (service,) = compose["services"].values()
    assert service["image"] == "tensorflow/serving:2.20.0"
    assert service["ports"] == ["9100:8500", "9101:8501"]
    (volume,) = service["volumes"]
    assert volume == {"type": "bind", "source": ".", "target": "/models", "read_only": True}
    assert service["command"] == [
        "--model_config_file=/models/models.config",
        "--model_config_file_poll_wait_seconds=60",
        "--enable_batching",
        "--batching_parameters_file=/models/batching.config",
        "--monitoring_config_file=/models/monitoring.config",
        "--xla_cpu_compilation_enabled=true",  # the export compiles with XLA by default
    ]
    # Every file a flag names exists in the folder the compose file mounts at /models.
    for flag in service["command"]:
        value = flag.partition("=")[2]
        if value.startswith("/models/"):
            assert (folder / value.removeprefix("/models/")).is_file(), flag


def test_compose_leaves_xla_off_for_an_executor_export(tmp_path):
    deploy.write_deployment(str(tmp_path), ServingConfig(xla=False))
    compose = yaml.safe_load(_read(tmp_path, "docker-compose.yml"))
    (service,) = compose["services"].values()
    assert not [flag for flag in service["command"] if "xla" in flag]


def test_rewrite_replaces_old_files(written):
    folder, _ = written
    deploy.write_deployment(str(folder), ServingConfig(model_name="other", keep_versions=1))
    parsed = text_format.Parse(
        _read(folder, "models.config"), model_server_config_pb2.ModelServerConfig()
    )
    assert parsed.model_config_list.config[0].name == "other"
    assert parsed.model_config_list.config[0].model_version_policy.latest.num_versions == 1


def test_failed_rename_keeps_old_file_and_leaves_no_temp(written, monkeypatch):
    folder, _ = written
    before = _read(folder, "batching.config")
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(dst) == "batching.config":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    changed = ServingConfig(batching=ServingBatching(max_batch_size=8))
    with pytest.raises(OSError, match="disk full"):
        deploy.write_deployment(str(folder), changed)
    assert _read(folder, "batching.config") == before
    assert [n for n in os.listdir(folder) if n.startswith(".")] == []


def test_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        deploy.write_deployment(str(tmp_path), CONFIG)
    assert os.listdir(tmp_path) == []


def test_render_failure_writes_nothing(tmp_path, monkeypatch):
    def broken(config):
        raise RuntimeError("cannot render")

    monkeypatch.setattr(deploy, "compose_text", broken)
    with pytest.raises(RuntimeError, match="cannot render"):
        deploy.write_deployment(str(tmp_path), CONFIG)
    assert os.listdir(tmp_path) == []


def test_deployment_files_have_the_mode_of_the_umask(tmp_path, umask):
    (tmp_path / "models.config").write_text("old")
    os.chmod(tmp_path / "models.config", 0o600)  # as an older release wrote it
    deploy.write_deployment(str(tmp_path), CONFIG)
    names = ["models.config", "batching.config", "monitoring.config", "docker-compose.yml"]
    modes = modes_under(tmp_path)
    assert {name: modes[name] for name in sorted(modes) if name != "."} == dict.fromkeys(
        sorted(names), 0o640
    )
