"""SavedModel warmup requests: one Predict request per signature, replayed by TF Serving at load.

TF Serving reads `<saved_model>/assets.extra/tf_serving_warmup_requests`, a TFRecord file of
serialized `PredictionLog`s (at most 1000), and runs each before the version serves traffic, so
the first real request does not pay for lazy initialization. `replay_warmup` runs the same
records against `tf.saved_model.load(...).signatures[...]`, which is what the server calls, so
an export whose warmup would fail on the server fails here first.

Requests carry exactly the inputs of their signature in `serving/signatures.py`, in its dtypes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from pipeline.core.errors import RecsysError
from pipeline.core.manifest import temp_path_beside
from serving.signatures import SIGNATURES, numpy_dtype

__all__ = [
    "MAX_WARMUP_RECORDS",
    "WARMUP_FILE",
    "WarmupError",
    "read_warmup",
    "replay_warmup",
    "warmup_path",
    "warmup_requests",
    "write_warmup",
]

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # the server refuses to load a model with more

PredictionLog = prediction_log_pb2.PredictionLog


class WarmupError(RecsysError):
    """A warmup request does not run against the SavedModel; the message names the signature."""


def warmup_path(saved_model_dir: str) -> str:
    """Where TF Serving looks for a SavedModel's warmup requests."""
    return os.path.join(saved_model_dir, WARMUP_FILE)


def _check_input_names(signature: str, given: set[str]) -> None:
    expected = {spec.name for spec in SIGNATURES[signature].inputs}
    missing = sorted(expected - given)
    extra = sorted(given - expected)
    if missing:
        raise ValueError(f"signature {signature!r}: missing input(s) {missing}")
    if extra:
        raise ValueError(
            f"signature {signature!r}: unknown input(s) {extra}; it takes {sorted(expected)}"
        )


def _tensor_proto(signature: str, spec: tf.TensorSpec, value: object) -> tensor_pb2.TensorProto:
    array = np.asarray(value, dtype=numpy_dtype(spec))
    if array.ndim != spec.shape.rank:
        raise ValueError(
            f"signature {signature!r}: input {spec.name!r} must have rank {spec.shape.rank} "
            f"(got shape {array.shape})"
        )
    return tf.make_tensor_proto(array, dtype=spec.dtype)


def _request(
    model_name: str, signature: str, inputs: Mapping[str, object]
) -> predict_pb2.PredictRequest:
    if signature not in SIGNATURES:
        raise ValueError(f"unknown signature {signature!r}; known: {sorted(SIGNATURES)}")
    _check_input_names(signature, set(inputs))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    batch_sizes = set()
    for spec in SIGNATURES[signature].inputs:
        proto = _tensor_proto(signature, spec, inputs[spec.name])
        batch_sizes.add(proto.tensor_shape.dim[0].size)
        request.inputs[spec.name].CopyFrom(proto)
    if len(batch_sizes) != 1:
        raise ValueError(
            f"signature {signature!r}: inputs disagree on the batch size {sorted(batch_sizes)}"
        )
    return request


def warmup_requests(
    model_name: str, examples: Mapping[str, Mapping[str, object]]
) -> list[PredictionLog]:
    """One PredictionLog holding a Predict request per signature.

    Args:
      model_name: The model's name on the server (`model_spec.name`).
      examples: Signature name → input name → array (NumPy or nested lists; strings as str or
        bytes). Each signature must get exactly its inputs, each of the signature's rank and
        all with the same first (batch) dimension.

    Returns:
      The logs, in the order of `examples`.

    Raises:
      ValueError: An unknown signature, a missing or extra input, a wrong rank or mismatched
        batch sizes; the message names the signature and the input.
    """
    logs = []
    for signature, inputs in examples.items():
        log = PredictionLog()
        log.predict_log.request.CopyFrom(_request(model_name, signature, inputs))
        logs.append(log)
    return logs


def write_warmup(saved_model_dir: str, logs: list[PredictionLog]) -> str:
    """Writes the logs as `assets.extra/tf_serving_warmup_requests` (TFRecord) and returns it.

    A local file is written to a temporary name and renamed, so the server never reads a
    partial file; object stores (gs://, s3://) write whole objects. The file gets the mode of
    a new file (0o666 less the umask), so a server running as another user can read it.
    """
    if not 1 <= len(logs) <= MAX_WARMUP_RECORDS:
        raise ValueError(f"warmup needs 1 to {MAX_WARMUP_RECORDS} records (got {len(logs)})")
    path = warmup_path(saved_model_dir)
    if "://" in path:
        tf.io.gfile.makedirs(os.path.dirname(path))
        _write_records(path, logs)
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_path_beside(path)  # created by the writer, as any new file (not mkstemp's 0o600)
    try:
        _write_records(tmp, logs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write_records(path: str, logs: list[PredictionLog]) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def read_warmup(saved_model_dir: str) -> list[PredictionLog]:
    """The PredictionLogs in a SavedModel's warmup file."""
    logs = []
    for record in tf.data.TFRecordDataset(warmup_path(saved_model_dir)).as_numpy_iterator():
        logs.append(PredictionLog.FromString(record))
    return logs


def _run(loaded: object, log: PredictionLog) -> tuple[str, dict[str, np.ndarray]]:
    if log.WhichOneof("log_type") != "predict_log":
        raise WarmupError(f"warmup record is a {log.WhichOneof('log_type')!r}, not a predict_log")
    request = log.predict_log.request
    signature = request.model_spec.signature_name or "serving_default"
    if signature not in loaded.signatures:
        raise WarmupError(
            f"warmup signature {signature!r} is not in the SavedModel "
            f"(it has {sorted(loaded.signatures)})"
        )
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    try:
        outputs = loaded.signatures[signature](**inputs)
    except (tf.errors.OpError, TypeError, ValueError) as e:
        raise WarmupError(f"warmup request for signature {signature!r} failed: {e}") from e
    return signature, {name: value.numpy() for name, value in outputs.items()}


def replay_warmup(
    saved_model_dir: str, loaded: object | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Runs every warmup record against the SavedModel's signatures, as the server does at load.

    Args:
      saved_model_dir: The SavedModel folder holding `assets.extra/tf_serving_warmup_requests`.
      loaded: The SavedModel already loaded with `tf.saved_model.load`; loaded here if None.

    Returns:
      Signature name → output name → NumPy array (the last record's, where a signature has
      several).

    Raises:
      WarmupError: A record names a signature the model lacks, or running it fails; the
        message names the signature.
    """
    logs = read_warmup(saved_model_dir)
    if loaded is None:
        loaded = tf.saved_model.load(saved_model_dir)
    results = {}
    for log in logs:
        signature, outputs = _run(loaded, log)
        results[signature] = outputs
    return results
