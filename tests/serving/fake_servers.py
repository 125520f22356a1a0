"""In-process stand-ins for TensorFlow Serving's REST and gRPC APIs, serving any SavedModel.

The stock model server cannot run here, so tests serve a SavedModel with these instead. Both
run the requested signature of `tf.saved_model.load(path).signatures[name]` and answer like
TF Serving: the same URLs and JSON (`tf_serving_rest.py`), the same protos and status codes,
the same messages where it matters to a client (servable not found, input-size mismatch,
a model's own `InvalidArgumentError`).

    model = ServedModel(export_dir, "recsys")          # load once, share between servers
    with FakeRestServer(model) as rest, FakeGrpcServer(model) as grpc_server:
        RestClient(rest.url, "recsys").predict(...)    # rest.url: "http://127.0.0.1:<port>"
        GrpcClient(grpc_server.target, "recsys")       # target: "127.0.0.1:<port>"
    with silent_server() as address:                   # accepts connections, never answers
        ...
    with trickling_server() as url:                    # answers, one byte at a time
        ...
    with canned_rest_server(b'{"predictions": 1}') as url:   # the same reply to everything
        ...

Unlike the real server, the fakes reject an input whose shape does not fit the signature's
(rank or fixed sizes) with INVALID_ARGUMENT, so client shape bugs show up early; classify,
regress and version labels are not emulated.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text ops the real export's graph uses)
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.serving.tf_serving_rest import (
    JsonTensorError,
    decode_predict_request,
    encode_error,
    encode_predict_response,
)

__all__ = [
    "HTTP_STATUS",
    "FakeGrpcServer",
    "FakeRestServer",
    "ServedModel",
    "ServingStatus",
    "canned_rest_server",
    "silent_server",
    "trickling_server",
]

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"

# TF Serving's status code → HTTP status (model_servers/http_server.cc); anything else is 500.
HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "UNAUTHENTICATED": 401,
}

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class ServingStatus(Exception):
    """A non-OK status as TF Serving returns it: a gRPC code name and the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- the model


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


# ----------------------------------------------------------------------------- REST

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_MODEL_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE,
)


def rest_post(model: ServedModel, path: str, body: bytes) -> tuple[int, bytes]:
    """The reply (HTTP status, body) TF Serving gives to a POST of `body` to `path`."""
    match = _PREDICT_PATH.fullmatch(path)
    if match is None:
        return _error("INVALID_ARGUMENT", f"Malformed request: POST {path}")
    name, version, label, method = _route(match)
    if method.lower() != "predict":
        return _error("UNIMPLEMENTED", f"{method} is not emulated by the fake server")

    def input_dtypes(signature_name: str) -> dict[str, tf.DType]:
        model.check_servable(name, version, label)
        return model.input_dtypes(signature_name)

    try:
        request = decode_predict_request(body, input_dtypes)
        outputs = model.predict(request.signature_name, request.inputs)
        return 200, encode_predict_response(outputs, request.format)
    except (JsonTensorError, ServingStatus) as e:
        return _error(e.code, e.message)


def rest_get(model: ServedModel, path: str) -> tuple[int, bytes]:
    """The reply (HTTP status, body) TF Serving gives to a GET of `path` (status, metadata)."""
    match = _MODEL_PATH.fullmatch(path)
    if match is None:
        return _error("INVALID_ARGUMENT", f"Malformed request: GET {path}")
    name, version, label, subresource = _route(match)
    if not name:
        return _error("INVALID_ARGUMENT", "Missing model name in request.")
    try:
        if subresource:
            model.check_servable(name, version, label)
            return 200, _metadata_json(model.metadata_response())
        if label:
            model.check_servable(name, version, label)
        response = model.status_response(name, version)
        text = json_format.MessageToJson(response, always_print_fields_with_no_presence=True)
        return 200, text.encode("utf-8")
    except ServingStatus as e:
        return _error(e.code, e.message)


def _route(match: re.Match[str]) -> tuple[str, int | None, str | None, str]:
    name, version, label, last = match.groups()
    return (
        urllib.parse.unquote(name or ""),
        int(version) if version else None,
        urllib.parse.unquote(label) if label else None,
        last or "",
    )


def _metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> bytes:
    """TF Serving's REST metadata: the spec and the unpacked signature map, proto field names."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    options = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}
    model_spec = json_format.MessageToJson(response.model_spec, **options)
    signatures = json_format.MessageToJson(signature_map, **options)
    text = f'{{\n"model_spec":{model_spec},\n"metadata": {{"signature_def": {signatures}}}\n}}\n'
    return text.encode("utf-8")


def _error(code: str, message: str) -> tuple[int, bytes]:
    return HTTP_STATUS.get(code, 500), encode_error(message)


class _RestHandler(BaseHTTPRequestHandler):
    server: _RestHttpServer

    def do_GET(self) -> None:
        path = self._path()
        self.server.requests.append(("GET", path, b""))
        self._reply(*rest_get(self.server.model, path))

    def do_POST(self) -> None:
        path = self._path()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(("POST", path, body))
        self._reply(*rest_post(self.server.model, path, body))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output stays readable."""

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _RestHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: ServedModel) -> None:
        super().__init__(("127.0.0.1", 0), _RestHandler)
        self.model = model
        self.requests: list[tuple[str, str, bytes]] = []


class FakeRestServer:
    """TF Serving's REST API for one model on 127.0.0.1 (random port), in a thread.

    Attributes:
      url: "http://127.0.0.1:<port>", for `RestClient(url, model.name)`.
      requests: (method, path, body) of every request received, oldest first.
    """

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self._httpd: _RestHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._running().server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str, bytes]]:
        return self._running().requests

    def start(self) -> FakeRestServer:
        self._httpd = _RestHttpServer(self.model)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = None

    def __enter__(self) -> FakeRestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _running(self) -> _RestHttpServer:
        if self._httpd is None:
            raise RuntimeError("the fake REST server is not running: call start()")
        return self._httpd


# ----------------------------------------------------------------------------- gRPC

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


# ----------------------------------------------------------------------------- no server


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A "host:port" that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@contextlib.contextmanager
def trickling_server(
    interval: float = 0.05, duration: float = 3.0, whole_reply: bool = False
) -> Iterator[str]:
    """An "http://host:port" that answers each request with a 200 header at once and then a
    JSON body one byte every `interval` seconds (`whole_reply`: the header too); after
    `duration` seconds it closes the connection, the reply unfinished. Each byte comes well
    within any per-read timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.05)
        stop = threading.Event()

        def trickle(connection: socket.socket) -> None:
            body = b'{"predictions": [' + b" " * 100_000 + b"]}"
            header = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            with connection:
                connection.recv(1 << 16)  # the request (small): read, not parsed
                end = time.monotonic() + duration
                try:
                    if not whole_reply:
                        connection.sendall(header)
                    for byte in header + body if whole_reply else body:
                        if stop.is_set() or time.monotonic() > end:
                            return
                        connection.sendall(bytes([byte]))
                        time.sleep(interval)
                except OSError:  # the client gave up
                    return

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=trickle, args=(connection,), daemon=True).start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()


@contextlib.contextmanager
def canned_rest_server(body: bytes, status: int = 200) -> Iterator[str]:
    """An "http://host:port" that gives every GET and POST the same reply (a JSON `body`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
