"""The gRPC client of TF Serving (port 8500): Predict, GetModelMetadata, GetModelStatus.

A call's `timeout` is gRPC's deadline of the whole call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.replies import (
    ReplyError,
    ServingError,
    checked_outputs,
    checked_timeout,
    decode_strings,
    readable_metadata,
    unfit_reply,
)
from serving.requests import Inputs, prepare_inputs
from serving.signatures import SIGNATURES

__all__ = ["GrpcClient", "predict_request"]

_BYTES_SUFFIX = "_bytes"  # TF Serving base64-encodes string outputs with this name suffix
_MAX_GRPC_MESSAGE = 64 * 1024 * 1024


def predict_request(
    model_name: str,
    signature: str,
    arrays: Mapping[str, np.ndarray],
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    """The gRPC `PredictRequest` for prepared inputs (see `prepare_inputs`)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    specs = {spec.name: spec for spec in SIGNATURES[signature].inputs}
    for name, array in arrays.items():
        proto = tf.make_tensor_proto(array, dtype=specs[name].dtype)
        request.inputs[name].CopyFrom(proto)
    return request


class GrpcClient:
    """TF Serving's gRPC API (port 8500 by default): Predict, GetModelMetadata, GetModelStatus.

    Args:
      target: "host:port".
      model_name: the served model's name.
      version: a model version to pin; None uses the latest.
      timeout: the deadline of each call, in seconds.

    Raises:
      ValueError: `timeout` is not a positive number.
    """

    def __init__(
        self, target: str, model_name: str, version: int | None = None, timeout: float = 10.0
    ) -> None:
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = checked_timeout(timeout)
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", _MAX_GRPC_MESSAGE),
                ("grpc.max_receive_message_length", _MAX_GRPC_MESSAGE),
            ],
        )
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(
        self, signature: str, inputs: Inputs, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Runs a signature; returns output name → array (strings as Python str).

        Raises:
          RequestError: inputs the serving contract refuses (a ValueError).
          ServingError: the call failed, or its reply does not fit the contract.
        """
        arrays = prepare_inputs(signature, inputs, defaults)
        request = predict_request(self.model_name, signature, arrays, self.version)
        reply = self._call("Predict", self._predictions.Predict, request, signature)
        try:
            columns = {name: _from_tensor_proto(name, p) for name, p in reply.outputs.items()}
            return checked_outputs(signature, columns, arrays)
        except ReplyError as e:
            raise unfit_reply(self._describe("Predict", signature), signature, e) from None

    def metadata(self) -> dict[str, Any]:
        """The served signatures: `{"model", "version", "signatures"}`, see `readable_metadata`."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        reply = self._call("GetModelMetadata", self._predictions.GetModelMetadata, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(signature_defs)
        version = reply.model_spec.version.value if reply.model_spec.HasField("version") else None
        return readable_metadata(reply.model_spec.name, version, signature_defs)

    def status(self) -> dict[str, Any]:
        """The model's version status, in the JSON form the REST API returns."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        reply = self._call("GetModelStatus", self._models.GetModelStatus, request)
        return json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fill_spec(self, spec: Any) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)

    def _describe(self, method: str, signature: str = "") -> str:
        on = f"model {self.model_name!r}" + (f", signature {signature!r}" if signature else "")
        return f"gRPC {method} at {self.target} ({on})"

    def _call(self, method: str, stub_method: Any, request: Any, signature: str = "") -> Any:
        call = self._describe(method, signature)
        try:
            return stub_method(request, timeout=self.timeout)  # the deadline of the whole call
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                message = f"no complete reply within the {self.timeout:g} s timeout"
            elif code == grpc.StatusCode.UNAVAILABLE:
                message = f"cannot connect: {e.details()}"
            else:
                message = e.details() or ""
            raise ServingError(message, call=call, status=code.name) from e


def _from_tensor_proto(name: str, proto: Any) -> Any:
    try:
        array = tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise ReplyError(f"output {name!r} is not a readable tensor ({e})") from None
    if array.dtype == object and not name.endswith(_BYTES_SUFFIX):
        return decode_strings(array)
    return array
