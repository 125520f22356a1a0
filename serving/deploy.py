"""TF Serving deployment files for an exported model base, written from a `ServingConfig`.

`write_deployment(model_base, config)` writes four files next to the model's version folders
(`<model_base>/<model_name>/N/`), each atomically:

* `models.config`: a text `ModelServerConfig` serving one model from `/models/<model_name>`
  (the path inside the container) with a "latest N versions" policy
  (`--model_config_file`, re-read every `POLL_WAIT_SECONDS`).
* `batching.config`: a text `BatchingParameters` (`--enable_batching`
  `--batching_parameters_file`). `pad_variable_length_inputs` is on: our signatures take
  variable-length 2-D inputs (`history_item_ids`, `item_ids`, `relevance`), and without it the
  server refuses to merge requests whose second dimension differs. The server pads with the
  first element of each request's own tensor, not with "", and cannot pad an empty tensor
  (shape [n, 0]) up to a non-empty one, so clients send at least one element per row.
* `monitoring.config`: a text `MonitoringConfig` that exposes Prometheus metrics on the REST
  port at `PROMETHEUS_PATH` (`--monitoring_config_file`).
* `docker-compose.yml`: the official `tensorflow/serving` image with the model base mounted
  read-only at `/models` and the gRPC and REST ports published; with `serving.xla` on, the
  server is started with `--xla_cpu_compilation_enabled=true` (its XLA:CPU JIT is off by
  default, and the export's compiled functions then fail at warmup).

Message and field names follow TF Serving's protos: `config/model_server_config.proto`,
`servables/tensorflow/session_bundle_config.proto` (`BatchingParameters`, whose scalar fields
are `google.protobuf.*Value` wrappers, hence `max_batch_size { value: 32 }`) and
`config/monitoring_config.proto`; flag names follow `model_servers/main.cc`.
"""

from __future__ import annotations

import os

import yaml
from google.protobuf import text_encoding

from pipeline.core.config import ServingBatching, ServingConfig
from pipeline.core.manifest import write_text_atomic

__all__ = [
    "BATCHING_CONFIG",
    "COMPOSE_FILE",
    "CONTAINER_GRPC_PORT",
    "CONTAINER_MODEL_ROOT",
    "CONTAINER_REST_PORT",
    "MODELS_CONFIG",
    "MONITORING_CONFIG",
    "POLL_WAIT_SECONDS",
    "PROMETHEUS_PATH",
    "batching_config_text",
    "compose_text",
    "models_config_text",
    "monitoring_config_text",
    "server_flags",
    "write_deployment",
]

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"
MONITORING_CONFIG = "monitoring.config"
COMPOSE_FILE = "docker-compose.yml"

CONTAINER_MODEL_ROOT = "/models"  # where the image's entry point expects models
CONTAINER_GRPC_PORT = 8500  # fixed by the image's entry point (--port=8500)
CONTAINER_REST_PORT = 8501  # fixed by the image's entry point (--rest_api_port=8501)
POLL_WAIT_SECONDS = 60
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
BATCH_THREAD_POOL = "model_server_batch_threads"  # the server's name when no file is given


def _container_path(name: str) -> str:
    return f"{CONTAINER_MODEL_ROOT}/{name}"


def _quote(value: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text_encoding.CEscape(value, as_utf8=True) + '"'


def _header(what: str, flag: str) -> str:
    return (
        f"# {what}\n"
        "# Written by recsys-pipeline (serving/deploy.py).\n"
        f"# Read by tensorflow_model_server {flag}\n"
    )


def models_config_text(config: ServingConfig) -> str:
    """`models.config`: a text ModelServerConfig with one model and its version policy."""
    flag = f"--model_config_file={_container_path(MODELS_CONFIG)}"
    return _header("TF Serving ModelServerConfig (text format).", flag) + (
        "model_config_list {\n"
        "  config {\n"
        f"    name: {_quote(config.model_name)}\n"
        f"    base_path: {_quote(_container_path(config.model_name))}\n"
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        "      latest {\n"
        f"        num_versions: {config.keep_versions}\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def batching_config_text(batching: ServingBatching) -> str:
    """`batching.config`: a text BatchingParameters with variable-length inputs padded."""
    flag = f"--batching_parameters_file={_container_path(BATCHING_CONFIG)}"
    wrapped = {
        "max_batch_size": batching.max_batch_size,
        "batch_timeout_micros": batching.batch_timeout_micros,
        "max_enqueued_batches": batching.max_enqueued_batches,
        "num_batch_threads": batching.num_batch_threads,
    }
    lines = [f"{name} {{ value: {value} }}" for name, value in wrapped.items()]
    lines.append(f"thread_pool_name {{ value: {_quote(BATCH_THREAD_POOL)} }}")
    lines.append(
        "# Requests of one batch may differ in the length of their 2-D inputs; the server pads"
    )
    lines.append("# each to the batch's longest with the tensor's own first element.")
    lines.append("pad_variable_length_inputs: true")
    return _header("TF Serving BatchingParameters (text format).", flag) + "\n".join(lines) + "\n"


def monitoring_config_text() -> str:
    """`monitoring.config`: a text MonitoringConfig exposing Prometheus metrics."""
    flag = f"--monitoring_config_file={_container_path(MONITORING_CONFIG)}"
    return _header("TF Serving MonitoringConfig (text format).", flag) + (
        f"prometheus_config {{\n  enable: true\n  path: {_quote(PROMETHEUS_PATH)}\n}}\n"
    )


def server_flags(xla: bool = True) -> list[str]:
    """The flags appended to the image's entry point (which sets the ports itself); `xla`:
    the export compiles with XLA (`serving.xla`), which the server runs only when asked."""
    flags = [
        f"--model_config_file={_container_path(MODELS_CONFIG)}",
        f"--model_config_file_poll_wait_seconds={POLL_WAIT_SECONDS}",
        "--enable_batching",
        f"--batching_parameters_file={_container_path(BATCHING_CONFIG)}",
        f"--monitoring_config_file={_container_path(MONITORING_CONFIG)}",
    ]
    return [*flags, "--xla_cpu_compilation_enabled=true"] if xla else flags


def compose_text(config: ServingConfig) -> str:
    """`docker-compose.yml`: TF Serving with this folder mounted read-only at /models."""
    service = {
        "image": config.image,
        # The entry point passes --model_name/--model_base_path from these; --model_config_file
        # overrides them, and setting them keeps the two consistent.
        "environment": {"MODEL_NAME": config.model_name, "MODEL_BASE_PATH": CONTAINER_MODEL_ROOT},
        "ports": [
            f"{config.grpc_port}:{CONTAINER_GRPC_PORT}",
            f"{config.rest_port}:{CONTAINER_REST_PORT}",
        ],
        "volumes": [
            {"type": "bind", "source": ".", "target": CONTAINER_MODEL_ROOT, "read_only": True}
        ],
        "command": server_flags(config.xla),
        "restart": "unless-stopped",
    }
    header = (
        "# TF Serving for the exported recommender: run `docker compose up` in this folder.\n"
        "# Written by recsys-pipeline (serving/deploy.py). This folder is mounted at /models;\n"
        f"# gRPC on port {config.grpc_port}, REST on port {config.rest_port}.\n"
    )
    body = yaml.safe_dump({"services": {"tf-serving": service}}, sort_keys=False, width=100)
    return header + body


def write_deployment(model_base: str, config: ServingConfig) -> list[str]:
    """Writes the deployment files into the local folder `model_base`.

    Every file is rendered before the first is written, and each is written atomically (temp
    file + rename), so a failure leaves each file either complete (old or new) or absent. Each
    gets the umask's mode (normally 644): the server may run as another user.

    Args:
      model_base: The folder holding `<model_name>/N/` version folders; it is mounted at
        /models in the container.
      config: The serving section of the pipeline config.

    Returns:
      The paths written, in order.
    """
    texts = {
        MODELS_CONFIG: models_config_text(config),
        BATCHING_CONFIG: batching_config_text(config.batching),
        MONITORING_CONFIG: monitoring_config_text(),
        COMPOSE_FILE: compose_text(config),
    }
    os.makedirs(model_base, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = os.path.join(model_base, name)
        write_text_atomic(path, text)
        written.append(path)
    return written
