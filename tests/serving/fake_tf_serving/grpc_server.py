"""TF Serving's gRPC API over a `ServedModel`: PredictionService and ModelService, with the
protos and status codes of the real server."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.serving.fake_tf_serving.model import DEFAULT_SIGNATURE, ServedModel, ServingStatus

__all__ = ["FakeGrpcServer"]


_PROTO_FIELDS = {
    tf.float32: "float_val",
    tf.float64: "double_val",
    tf.int8: "int_val",
    tf.int16: "int_val",
    tf.int32: "int_val",
    tf.uint8: "int_val",
    tf.int64: "int64_val",
    tf.uint32: "uint32_val",
    tf.uint64: "uint64_val",
    tf.bool: "bool_val",
    tf.string: "string_val",
}


def _as_proto_field(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto with typed value fields, as TF Serving's `Tensor::AsProtoField` writes."""
    dtype = tf.string if array.dtype == object else tf.dtypes.as_dtype(array.dtype)
    proto = tensor_pb2.TensorProto(
        dtype=dtype.as_datatype_enum, tensor_shape=tf.TensorShape(array.shape).as_proto()
    )
    getattr(proto, _PROTO_FIELDS[dtype]).extend(array.ravel().tolist())
    return proto


def _spec_version(model_spec: Any) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model: ServedModel, requests: list[Any]) -> None:
        self._model = model
        self._requests = requests

    def Predict(self, request: predict_pb2.PredictRequest, context: Any) -> Any:
        self._requests.append(request)
        spec = request.model_spec
        try:
            self._model.check_servable(spec.name, _spec_version(spec), spec.version_label)
            inputs = {name: _input_array(name, proto) for name, proto in request.inputs.items()}
            outputs = self._model.predict(spec.signature_name, inputs, request.output_filter)
        except ServingStatus as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self._model.name
        response.model_spec.version.value = self._model.version
        response.model_spec.signature_name = spec.signature_name or DEFAULT_SIGNATURE
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(_as_proto_field(array))
        return response

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Any
    ) -> Any:
        self._requests.append(request)
        try:
            _check_metadata_request(request)
            spec = request.model_spec
            self._model.check_servable(spec.name, _spec_version(spec), spec.version_label)
        except ServingStatus as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        return self._model.metadata_response()


def _input_array(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise ServingStatus("INVALID_ARGUMENT", f"tensor parsing error: {name}") from e


def _check_metadata_request(request: get_model_metadata_pb2.GetModelMetadataRequest) -> None:
    if not request.HasField("model_spec"):
        raise ServingStatus("INVALID_ARGUMENT", "Missing ModelSpec")
    if not request.metadata_field:
        raise ServingStatus(
            "INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field"
        )
    for field in request.metadata_field:
        if field != "signature_def":
            raise ServingStatus("INVALID_ARGUMENT", f"Metadata field {field} is not supported")


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, model: ServedModel) -> None:
        self._model = model

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        try:
            if not request.HasField("model_spec"):
                raise ServingStatus("INVALID_ARGUMENT", "Missing ModelSpec")
            spec = request.model_spec
            return self._model.status_response(spec.name, _spec_version(spec))
        except ServingStatus as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)


class FakeGrpcServer:
    """TF Serving's gRPC API for one model on 127.0.0.1 (random port).

    PredictionService.Predict and GetModelMetadata, ModelService.GetModelStatus; other
    methods answer UNIMPLEMENTED.

    Attributes:
      target: "127.0.0.1:<port>", for `GrpcClient(target, model.name)`.
      requests: every Predict / GetModelMetadata request proto received, oldest first.
    """

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.requests: list[Any] = []
        self._server: grpc.Server | None = None
        self._port = 0

    @property
    def target(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake gRPC server is not running: call start()")
        return f"127.0.0.1:{self._port}"

    def start(self) -> FakeGrpcServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self.model, self.requests), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelServicer(self.model), server
        )
        self._port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> FakeGrpcServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
