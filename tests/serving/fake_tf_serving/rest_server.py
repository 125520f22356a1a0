"""TF Serving's REST API over a `ServedModel`: its URLs, its JSON (`json_request.py`,
`json_reply.py`) and its HTTP status for each error code."""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from tests.serving.fake_tf_serving.json_reply import encode_error, encode_predict_response
from tests.serving.fake_tf_serving.json_request import JsonTensorError, decode_predict_request
from tests.serving.fake_tf_serving.model import ServedModel, ServingStatus

__all__ = ["HTTP_STATUS", "FakeRestServer", "rest_get", "rest_post"]

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
