"""Clients for the recommender behind TensorFlow Serving: REST (standard library) and gRPC.

Both take the inputs of one or more request rows, check them against the serving contract
(`serving/signatures.py`), fill what the caller left out from `DEFAULTS`, and send tensors of
exactly the signature's dtypes, so a request never depends on how TF Serving would guess a
type. Inputs come either as columns or as rows:

    client.predict("serving_default", {"user_id": ["u1", "u2"], "k": 5})   # k for both rows
    client.predict("serving_default", [recommend_request("u1", history=["i3"]),
                                       recommend_request("u2", k=3)])

Requests are built by `serving/requests.py` (`prepare_inputs`), shared with in-process calls.

TF Serving's REST API has its own JSON rules (`tensorflow_serving/util/json_tensor.cc`): the
row format stacks each input over `instances`, integers must be written as whole numbers,
booleans as `true`/`false`, and bytes that are not UTF-8 text as `{"b64": ...}`. String
outputs come back as plain JSON strings (base64 only for outputs named `*_bytes`), so output
strings are decoded as UTF-8 text here, over REST and gRPC alike.

A client's `timeout` is the deadline of a whole call, from connecting to the reply's last byte
(gRPC's call deadline; over REST `serving/http_deadline.py`), so a server that trickles its
reply cannot stretch it. A reply that does not fit the contract (an output missing, of the
wrong type or shape) is a `ServingError` too.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
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

from pipeline.core.errors import RecsysError
from serving.http_deadline import urlopen_with_deadline
from serving.requests import Inputs, RequestError, prepare_inputs, recommend_request
from serving.signatures import SIGNATURES

__all__ = [
    "GrpcClient",
    "RequestError",
    "RestClient",
    "ServingError",
    "decode_strings",
    "predict_request",
    "prepare_inputs",
    "recommend_request",
    "rest_predict_body",
]

_FORMATS = ("row", "columnar")
_BYTES_SUFFIX = "_bytes"  # TF Serving base64-encodes string outputs with this name suffix
_MAX_GRPC_MESSAGE = 64 * 1024 * 1024


class ServingError(RecsysError):
    """A call to the model server failed.

    Attributes:
      message: the server's message (or why no reply came), unchanged.
      status: the HTTP status (int), the gRPC status code name (str), or None when no reply
        came at all.
      call: what was called, e.g. "POST http://host:8501/v1/models/recsys:predict".
    """

    def __init__(self, message: str, *, call: str, status: int | str | None = None) -> None:
        self.message = message
        self.status = status
        self.call = call
        label = f"HTTP {status}" if isinstance(status, int) else status
        reason = " ".join(message.split())  # TF messages span lines; the CLI prints one
        super().__init__(f"{call} failed{f' with {label}' if label else ''}: {reason}")


# ----------------------------------------------------------------------------- REST


def rest_predict_body(
    signature: str, arrays: Mapping[str, np.ndarray], format: str = "row"
) -> dict[str, Any]:
    """The JSON body of a REST `:predict` call for prepared inputs (see `prepare_inputs`).

    "row" sends one `instances` object per request row; "columnar" sends `inputs` as whole
    tensors. Strings that are not valid UTF-8 go as `{"b64": ...}`.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    columns = {name: _json_values(np.asarray(a).tolist()) for name, a in arrays.items()}
    if format == "columnar":
        return {"signature_name": signature, "inputs": columns}
    batch = len(next(iter(columns.values())))
    rows = [{name: values[i] for name, values in columns.items()} for i in range(batch)]
    return {"signature_name": signature, "instances": rows}


def _json_values(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_values(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value  # float32.tolist() gives the exact double, which TF Serving reads back exactly


class _ReplyError(ValueError):
    """A reply that does not fit the serving contract; the message says how."""


def _rest_columns(signature: str, reply: Any, format: str) -> dict[str, Any]:
    """Output name → (nested) value of a REST reply; the bare value of a single output is
    named from the contract, as TF Serving drops the name."""
    names = list(SIGNATURES[signature].outputs)
    key = "predictions" if format == "row" else "outputs"
    if not isinstance(reply, dict) or key not in reply:
        raise _ReplyError(f"no {key!r} in the reply {reply!r:.80}")
    value = reply[key]
    if format == "row":
        if not isinstance(value, list) or not value:
            raise _ReplyError(f"'predictions' must be a non-empty list (got {value!r:.80})")
        if all(_is_named(row) for row in value):
            if any(set(row) != set(value[0]) for row in value):
                raise _ReplyError("the rows of 'predictions' name different outputs")
            columns = {name: [row[name] for row in value] for name in value[0]}
        else:  # TF Serving drops the name when the signature has a single output
            columns = {names[0]: value}
    else:
        columns = dict(value) if _is_named(value) else {names[0]: value}
    try:
        return {name: _from_json(v) for name, v in columns.items()}
    except (binascii.Error, TypeError) as e:
        raise _ReplyError(f"a {{'b64': ...}} value is not base64 ({e})") from None


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


class RestClient:
    """TF Serving's REST API (port 8501 by default), with the standard library only.

    Args:
      base_url: e.g. "http://localhost:8501".
      model_name: the served model's name (`--model_name`).
      version: a model version to pin; None uses the latest.
      timeout: seconds each call may take in all, from connecting to the reply's last byte.

    Raises:
      ValueError: `timeout` is not a positive number.
    """

    def __init__(
        self, base_url: str, model_name: str, version: int | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.timeout = _checked_timeout(timeout)

    @property
    def model_url(self) -> str:
        """The model's URL, with the version when one is pinned."""
        url = f"{self.base_url}/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        return url if self.version is None else f"{url}/versions/{int(self.version)}"

    def predict(
        self,
        signature: str,
        inputs: Inputs,
        format: str = "row",
        defaults: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a signature; returns output name → array (strings as Python str).

        Raises:
          RequestError: inputs the serving contract refuses (a ValueError).
          ServingError: the call failed, or its reply does not fit the contract.
        """
        arrays = prepare_inputs(signature, inputs, defaults)
        body = rest_predict_body(signature, arrays, format)
        url = f"{self.model_url}:predict"
        reply = self._call("POST", url, body)
        try:
            return _checked_outputs(signature, _rest_columns(signature, reply, format), arrays)
        except _ReplyError as e:
            raise _unfit_reply(f"POST {url}", signature, e) from None

    def status(self) -> dict[str, Any]:
        """The model's version status JSON (`{"model_version_status": [...]}`)."""
        return self._call("GET", self.model_url)

    def metadata(self) -> dict[str, Any]:
        """The served signatures, in the form `GrpcClient.metadata` returns."""
        url = f"{self.model_url}/metadata"
        reply = self._call("GET", url)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        try:
            json_format.ParseDict(
                reply["metadata"]["signature_def"], signature_defs, ignore_unknown_fields=True
            )
            spec = reply.get("model_spec", {})
            version = spec.get("version")  # an Int64Value: JSON gives the bare number, a string
            return _readable_metadata(
                spec.get("name", ""), int(version) if version else None, signature_defs
            )
        except (KeyError, TypeError, ValueError, AttributeError, json_format.ParseError) as e:
            message = f"the reply is not model metadata ({type(e).__name__}: {e})"
            raise ServingError(message, call=f"GET {url}") from None

    def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        call = f"{method} {url}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urlopen_with_deadline(request, self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            raise ServingError(_http_error_message(e), call=call, status=e.code) from e
        except urllib.error.URLError as e:  # while connecting or sending
            raise _no_reply(call, e.reason, self.timeout, "cannot connect") from e
        except OSError as e:  # while waiting for the reply (TimeoutError is an OSError)
            raise _no_reply(call, e, self.timeout, "connection lost") from e
        except http.client.InvalidURL as e:
            raise ServingError(f"invalid URL: {e}", call=call) from e
        except http.client.HTTPException as e:  # e.g. a reply cut short
            raise ServingError(f"bad HTTP reply ({type(e).__name__}: {e})", call=call) from e
        try:
            return json.loads(payload.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as e:
            raise ServingError(f"reply is not JSON ({e})", call=call) from e


def _checked_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds (got {timeout!r})")
    return float(timeout)


def _http_error_message(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):  # the body did not come (in time)
        return str(error.reason)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or str(error.reason)


def _no_reply(call: str, reason: Any, timeout: float, what: str) -> ServingError:
    if isinstance(reason, TimeoutError):
        return ServingError(
            f"deadline exceeded: no complete reply within the {timeout:g} s timeout", call=call
        )
    return ServingError(f"{what}: {reason}", call=call)


def _unfit_reply(call: str, signature: str, error: _ReplyError) -> ServingError:
    return ServingError(f"the reply does not fit signature {signature!r}: {error}", call=call)


# ----------------------------------------------------------------------------- gRPC


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
        self.timeout = _checked_timeout(timeout)
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
            return _checked_outputs(signature, columns, arrays)
        except _ReplyError as e:
            raise _unfit_reply(self._describe("Predict", signature), signature, e) from None

    def metadata(self) -> dict[str, Any]:
        """The served signatures: `{"model", "version", "signatures"}`, see `_readable_metadata`."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec)
        reply = self._call("GetModelMetadata", self._predictions.GetModelMetadata, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(signature_defs)
        version = reply.model_spec.version.value if reply.model_spec.HasField("version") else None
        return _readable_metadata(reply.model_spec.name, version, signature_defs)

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
        raise _ReplyError(f"output {name!r} is not a readable tensor ({e})") from None
    if array.dtype == object and not name.endswith(_BYTES_SUFFIX):
        return decode_strings(array)
    return array


def decode_strings(array: np.ndarray) -> np.ndarray:
    """String outputs (bytes) as text; bytes that are not UTF-8 become U+FFFD."""
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = value.decode("utf-8", errors="replace")
    return out


# ----------------------------------------------------------------------------- outputs


def _checked_outputs(
    signature: str, columns: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The reply's outputs as arrays, checked against the contract: every output there, of its
    dtype, one row per request row (`arrays`: the request's inputs).

    Raises:
      _ReplyError: the reply does not fit; the message names the output.
    """
    missing = [name for name in SIGNATURES[signature].outputs if name not in columns]
    if missing:
        raise _ReplyError(f"output(s) {', '.join(map(repr, missing))} missing")
    rows = len(next(iter(arrays.values())))
    outputs = {}
    for name, value in columns.items():
        array = _output_array(signature, name, value)
        if array.ndim == 0 or len(array) != rows:
            raise _ReplyError(
                f"output {name!r} has shape {list(array.shape)}, not one row for each of the "
                f"{rows} request row(s)"
            )
        outputs[name] = array
    return outputs


def _output_array(signature: str, name: str, value: Any) -> np.ndarray:
    """One output as an array of the contract's dtype (strings: an object array of str).

    Raises:
      _ReplyError: `value` is not a rectangular tensor of that dtype.
    """
    array = value if isinstance(value, np.ndarray) else np.array(value, dtype=object)
    if array.dtype == object and any(isinstance(v, list | dict) for v in array.flat):
        raise _ReplyError(f"output {name!r} is not a rectangular tensor (got {value!r:.80})")
    dtype = SIGNATURES[signature].outputs.get(name)
    if dtype is None:  # not in the contract: as it came
        keep = array.dtype != object or isinstance(value, np.ndarray) or _has_text(value)
        return array if keep else np.array(array.tolist())
    if dtype == tf.string:
        fits = array.dtype == object and all(isinstance(v, str | bytes) for v in array.flat)
    elif array.dtype == object:  # numbers from JSON: not strings, not true/false
        fits = all(isinstance(v, int | float) and not isinstance(v, bool) for v in array.flat)
    else:
        fits = np.issubdtype(array.dtype, np.number)
    if not fits:
        shown = value.tolist() if isinstance(value, np.ndarray) else value
        raise _ReplyError(f"output {name!r} must hold {dtype.name} values (got {shown!r:.80})")
    return array if dtype == tf.string else array.astype(dtype.as_numpy_dtype)


def _has_text(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str | bytes)


def _readable_metadata(
    model: str, version: int | None, signature_defs: get_model_metadata_pb2.SignatureDefMap
) -> dict[str, Any]:
    """Signature defs as plain data: dtype names and shapes (-1 for an unknown size).

    `{"model": str, "version": int | None, "signatures": {name: {"method_name": str,
    "inputs": {input: {"dtype": "string", "shape": [-1, -1]}}, "outputs": {...}}}}`; the
    SavedModel's internal `__saved_model_init_op` entry is left out.
    """
    signatures = {
        name: {
            "method_name": sig.method_name,
            "inputs": {k: _tensor_info(v) for k, v in sorted(sig.inputs.items())},
            "outputs": {k: _tensor_info(v) for k, v in sorted(sig.outputs.items())},
        }
        for name, sig in sorted(signature_defs.signature_def.items())
        if not name.startswith("__")
    }
    return {"model": model, "version": version, "signatures": signatures}


def _tensor_info(info: Any) -> dict[str, Any]:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else [int(d.size) for d in shape.dim]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": dims}
