"""The model behind the fake servers: a SavedModel's signatures, run on NumPy inputs and checked
first as TF Serving checks them, and the status replies both APIs share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops the real export's graph uses)
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

__all__ = ["DEFAULT_SIGNATURE", "ServedModel", "ServingStatus"]

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class ServingStatus(Exception):
    """A non-OK status as TF Serving returns it: a gRPC code name and the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ServedModel:
    """One version of one model, loaded from a SavedModel directory.

    Args:
      saved_model_dir: the export (the directory holding `saved_model.pb`).
      name: the model name clients use (TF Serving's `--model_name`).
      version: the version number it is served as.
    """

    def __init__(self, saved_model_dir: str | Path, name: str, version: int = 1) -> None:
        self.path = Path(saved_model_dir)
        self.name = name
        self.version = version
        self.signature_defs = _read_signature_defs(self.path)
        self._functions = tf.saved_model.load(str(self.path)).signatures

    def check_servable(self, name: str, version: int | None, label: str | None = None) -> None:
        """Raises NOT_FOUND, as TF Serving does, when the request names another servable."""
        if label:
            raise ServingStatus("NOT_FOUND", f"Unrecognized servable version label: {label}")
        if name != self.name or version not in (None, self.version):
            wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingStatus("NOT_FOUND", f"Servable not found for request: {wanted}")

    def input_dtypes(self, signature_name: str) -> dict[str, tf.DType]:
        """The REST decoder's view of a signature's inputs (TF Serving's GetInfoMap)."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise ServingStatus(
                "INVALID_ARGUMENT", f'Serving signature name: "{name}" not found in signature def'
            )
        inputs = self.signature_defs[name].inputs
        return {key: tf.dtypes.as_dtype(info.dtype) for key, info in inputs.items()}

    def predict(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """Runs a signature on NumPy inputs, checking them first as TF Serving does."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(name)
        if signature is None:
            raise ServingStatus("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        _check_input_names(signature, inputs)
        tensors = {key: _input_tensor(signature, key, value) for key, value in inputs.items()}
        wanted = _outputs_wanted(signature, output_filter)
        try:
            outputs = self._functions[name](**tensors)
        except tf.errors.OpError as e:
            raise ServingStatus(_CODE_NAMES.get(e.error_code, "UNKNOWN"), e.message) from e
        except (TypeError, ValueError) as e:
            raise ServingStatus("INVALID_ARGUMENT", str(e)) from e
        return {key: outputs[key].numpy() for key in wanted}

    def status_response(
        self, name: str, version: int | None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus: this version AVAILABLE, or NOT_FOUND."""
        if name != self.name:
            raise ServingStatus("NOT_FOUND", f"Could not find any versions of model {name}")
        if version not in (None, self.version):
            raise ServingStatus("NOT_FOUND", f"Could not find version {version} of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add(version=self.version)
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        status.status.SetInParent()  # OK, printed as TF Serving prints it
        return response

    def metadata_response(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata: every signature def of the export, packed as TF Serving packs it."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


def _read_signature_defs(path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path} has no meta graph tagged {SERVE_TAG!r}")


def _check_input_names(signature: meta_graph_pb2.SignatureDef, inputs: Mapping[str, Any]) -> None:
    sent, expected = set(inputs), set(signature.inputs)
    if len(sent) != len(expected):
        raise ServingStatus(
            "INVALID_ARGUMENT",
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.",
        )
    for alias in sorted(sent - expected):
        raise ServingStatus(
            "INVALID_ARGUMENT",
            f"input tensor alias not found in signature: {alias}. Inputs expected to be in "
            f"the set {{{','.join(sorted(expected))}}}.",
        )


def _input_tensor(signature: meta_graph_pb2.SignatureDef, key: str, value: np.ndarray) -> tf.Tensor:
    info = signature.inputs[key]
    want = tf.dtypes.as_dtype(info.dtype)
    got = tf.string if value.dtype == object else tf.dtypes.as_dtype(value.dtype)
    if got != want:
        index = sorted(signature.inputs).index(key)
        raise ServingStatus(
            "INVALID_ARGUMENT", f"Expects arg[{index}] to be {want.name} but {got.name} is provided"
        )
    expected = tf.TensorShape(info.tensor_shape)
    if not expected.is_compatible_with(value.shape):
        raise ServingStatus(
            "INVALID_ARGUMENT",
            f"input {key!r} has shape {list(value.shape)}, the signature wants "
            f"{expected.as_list()} (a check of the fake server)",
        )
    return tf.constant(value, dtype=want)


def _outputs_wanted(
    signature: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]
) -> list[str]:
    for alias in output_filter:
        if alias not in signature.outputs:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}.",
            )
    return list(output_filter) or list(signature.outputs)
