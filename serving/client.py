"""Clients for the recommender behind TensorFlow Serving: REST (standard library) and gRPC.

Both take the inputs of one or more request rows, check them against the serving contract
(`serving/signatures.py`), fill what the caller left out from `DEFAULTS`, and send tensors of
exactly the signature's dtypes, so a request never depends on how TF Serving would guess a
type. Inputs come either as columns or as rows:

    client.predict("serving_default", {"user_id": ["u1", "u2"], "k": 5})   # k for both rows
    client.predict("serving_default", [recommend_request("u1", history=["i3"]),
                                       recommend_request("u2", k=3)])

In the column form a single value (a scalar, or one list for a list-valued input such as
`history_item_ids`) is repeated over the rows; lists of different lengths are padded with ""
(numbers with 0) into the rectangle TF Serving needs, at least one element wide: the server's
batching cannot pad an empty [n, 0] tensor when it merges requests.

TF Serving's REST API has its own JSON rules (`tensorflow_serving/util/json_tensor.cc`): the
row format stacks each input over `instances`, integers must be written as whole numbers,
booleans as `true`/`false`, and bytes that are not UTF-8 text as `{"b64": ...}`. String
outputs come back as plain JSON strings (base64 only for outputs named `*_bytes`), so output
strings are decoded as UTF-8 text here, over REST and gRPC alike.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
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

from pipeline.errors import RecsysError
from serving.signatures import DEFAULTS, SIGNATURES, Signature, numpy_dtype

__all__ = [
    "GrpcClient",
    "RestClient",
    "ServingError",
    "predict_request",
    "prepare_inputs",
    "recommend_request",
    "rest_predict_body",
]

Inputs = Mapping[str, Any] | Sequence[Mapping[str, Any]]

_FORMATS = ("row", "columnar")
_BYTES_SUFFIX = "_bytes"  # TF Serving base64-encodes string outputs with this name suffix
_MAX_GRPC_MESSAGE = 64 * 1024 * 1024
_KNOWN_INPUTS = frozenset(spec.name for sig in SIGNATURES.values() for spec in sig.inputs)


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


# ----------------------------------------------------------------------------- requests


def recommend_request(
    user_id: str | bytes,
    history: Sequence[str | bytes] = (),
    query: str = "",
    k: int | None = None,
    mmr_lambda: float | None = None,
    exclude_seen: bool = True,
    timestamp: int = 0,
) -> dict[str, Any]:
    """One `serving_default` request row; `k`/`mmr_lambda` left None take the defaults."""
    row: dict[str, Any] = {
        "user_id": user_id,
        "history_item_ids": list(history),
        "query": query,
        "timestamp": timestamp,
        "exclude_seen": exclude_seen,
    }
    if k is not None:
        row["k"] = k
    if mmr_lambda is not None:
        row["mmr_lambda"] = mmr_lambda
    return row


def prepare_inputs(
    signature: str, inputs: Inputs, defaults: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Checks, completes and converts request inputs to the signature's tensors.

    Args:
      signature: a name in `SIGNATURES`.
      inputs: columns (input name → one value, or a list of values, one per row) or a list
        of rows (each a mapping input name → value).
      defaults: overrides of `DEFAULTS` (e.g. the export's own `k` and `mmr_lambda`).

    Returns:
      Input name → array of the signature's dtype (object arrays of bytes for strings), every
      array with the batch as its first dimension, in the signature's input order.

    Raises:
      ValueError: an unknown signature or input name, a missing input without a default, row
        counts that differ, or a value that does not convert to the input's dtype.
    """
    sig = _signature(signature)
    fill = _merged_defaults(defaults)
    if isinstance(inputs, Mapping):
        columns = _columns_from_mapping(sig, inputs, fill)
    else:
        columns = _columns_from_rows(sig, inputs, fill)
    batch = _batch_size(sig, columns)
    return {spec.name: _tensor(spec, *columns[spec.name], batch, sig.name) for spec in sig.inputs}


def _signature(name: str) -> Signature:
    if name not in SIGNATURES:
        raise ValueError(f"unknown signature {name!r}; known: {', '.join(SIGNATURES)}")
    return SIGNATURES[name]


def _merged_defaults(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(defaults or {}) - _KNOWN_INPUTS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_INPUTS))
        raise ValueError(f"defaults for unknown inputs {unknown}; known inputs: {known}")
    return {**DEFAULTS, **(defaults or {})}


def _check_names(sig: Signature, names: Sequence[str]) -> None:
    known = [spec.name for spec in sig.inputs]
    for name in names:
        if name not in known:
            raise ValueError(
                f"unknown input {name!r} for signature {sig.name!r}; "
                f"known inputs: {', '.join(known)}"
            )


def _default(sig: Signature, name: str, fill: Mapping[str, Any]) -> Any:
    if name not in fill:
        raise ValueError(f"input {name!r} of signature {sig.name!r} has no default: pass it")
    return fill[name]


def _columns_from_mapping(
    sig: Signature, inputs: Mapping[str, Any], fill: Mapping[str, Any]
) -> dict[str, tuple[Any, bool]]:
    """Input name → (value, whether it holds one entry per row)."""
    _check_names(sig, list(inputs))
    columns = {}
    for spec in sig.inputs:
        value = _plain(inputs[spec.name] if spec.name in inputs else _default(sig, spec.name, fill))
        depth = _depth(value, spec.name)
        if depth not in (spec.shape.rank - 1, spec.shape.rank):
            raise ValueError(
                f"input {spec.name!r} needs {_shape_words(spec.shape.rank - 1)} per row, "
                f"got {value!r:.80}"
            )
        columns[spec.name] = (value, depth == spec.shape.rank)
    return columns


def _columns_from_rows(
    sig: Signature, rows: Sequence[Mapping[str, Any]], fill: Mapping[str, Any]
) -> dict[str, tuple[Any, bool]]:
    if isinstance(rows, str | bytes) or not all(isinstance(row, Mapping) for row in rows):
        raise ValueError("inputs must be a mapping of columns or a list of row mappings")
    columns: dict[str, list[Any]] = {spec.name: [] for spec in sig.inputs}
    for row in rows:
        _check_names(sig, list(row))
        for spec in sig.inputs:
            value = _plain(row[spec.name] if spec.name in row else _default(sig, spec.name, fill))
            if _depth(value, spec.name) != spec.shape.rank - 1:
                raise ValueError(
                    f"input {spec.name!r} needs {_shape_words(spec.shape.rank - 1)} per row, "
                    f"got {value!r:.80}"
                )
            columns[spec.name].append(value)
    return {name: (values, True) for name, values in columns.items()}


def _shape_words(rank: int) -> str:
    return "a single value" if rank == 0 else "a list of values"


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars as Python lists and scalars; tuples as lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _depth(value: Any, name: str) -> int:
    if not isinstance(value, list):
        return 0
    depths = {_depth(v, name) for v in value}
    if len(depths) > 1:
        raise ValueError(f"input {name!r} mixes lists and single values: {value!r:.80}")
    return 1 + (depths.pop() if depths else 0)


def _batch_size(sig: Signature, columns: Mapping[str, tuple[Any, bool]]) -> int:
    counts = {name: len(value) for name, (value, batched) in columns.items() if batched}
    sizes = set(counts.values())
    if len(sizes) > 1:
        listed = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise ValueError(f"inputs of {sig.name!r} give different numbers of rows ({listed})")
    batch = sizes.pop() if sizes else 1
    if batch == 0:
        raise ValueError(f"no request rows for {sig.name!r}")
    return batch


def _tensor(spec: tf.TensorSpec, value: Any, batched: bool, batch: int, sig: str) -> np.ndarray:
    rows = value if batched else [value] * batch
    convert = _converter(spec, sig)
    dtype = numpy_dtype(spec)
    if spec.shape.rank == 1:
        array = np.empty(batch, dtype=dtype)
        array[:] = [convert(v) for v in rows]
        return array
    width = max(1, *(len(row) for row in rows))  # TF Serving's batching cannot pad [n, 0]
    pad = b"" if spec.dtype == tf.string else 0
    array = np.empty((batch, width), dtype=dtype)
    for i, row in enumerate(rows):
        array[i, :] = [convert(v) for v in row] + [pad] * (width - len(row))
    return array


def _converter(spec: tf.TensorSpec, sig: str) -> Callable[[Any], Any]:
    def fail(value: Any) -> ValueError:
        return ValueError(
            f"input {spec.name!r} of {sig!r} is {spec.dtype.name}: cannot use {value!r:.80}"
        )

    def to_string(value: Any) -> bytes:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value).encode("ascii")  # numeric ids, e.g. MovieLens user 196
        raise fail(value)

    def to_int(value: Any) -> int:
        info = np.iinfo(spec.dtype.as_numpy_dtype)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(value)
        if not info.min <= value <= info.max:
            raise fail(value)
        return value

    def to_float(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(value)
        return float(value)

    def to_bool(value: Any) -> bool:
        if not isinstance(value, bool):
            raise fail(value)
        return value

    if spec.dtype == tf.string:
        return to_string
    if spec.dtype == tf.bool:
        return to_bool
    return to_int if spec.dtype.is_integer else to_float


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


def _rest_outputs(signature: str, reply: Mapping[str, Any], format: str) -> dict[str, np.ndarray]:
    names = list(SIGNATURES[signature].outputs)
    if format == "row":
        rows = reply["predictions"]
        if rows and all(_is_named(row) for row in rows):
            columns = {name: [row[name] for row in rows] for name in rows[0]}
        else:  # TF Serving drops the name when the signature has a single output
            columns = {names[0]: rows}
    else:
        outputs = reply["outputs"]
        columns = dict(outputs) if _is_named(outputs) else {names[0]: outputs}
    return {name: _output_array(signature, name, _from_json(v)) for name, v in columns.items()}


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
      timeout: seconds to wait for each reply.
    """

    def __init__(
        self, base_url: str, model_name: str, version: int | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.timeout = timeout

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
        """Runs a signature; returns output name → array (strings as Python str)."""
        arrays = prepare_inputs(signature, inputs, defaults)
        body = rest_predict_body(signature, arrays, format)
        reply = self._call("POST", f"{self.model_url}:predict", body)
        return _rest_outputs(signature, reply, format)

    def status(self) -> dict[str, Any]:
        """The model's version status JSON (`{"model_version_status": [...]}`)."""
        return self._call("GET", self.model_url)

    def metadata(self) -> dict[str, Any]:
        """The served signatures, in the form `GrpcClient.metadata` returns."""
        reply = self._call("GET", f"{self.model_url}/metadata")
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(
            reply["metadata"]["signature_def"], signature_defs, ignore_unknown_fields=True
        )
        spec = reply.get("model_spec", {})
        version = spec.get("version")  # an Int64Value: JSON gives the bare number, as a string
        return _readable_metadata(
            spec.get("name", ""), int(version) if version else None, signature_defs
        )

    def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        call = f"{method} {url}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            raise ServingError(_http_error_message(e), call=call, status=e.code) from e
        except urllib.error.URLError as e:  # while connecting or sending
            raise _no_reply(call, e.reason, self.timeout, "cannot connect") from e
        except OSError as e:  # while waiting for the reply (TimeoutError is an OSError)
            raise _no_reply(call, e, self.timeout, "connection lost") from e
        try:
            return json.loads(payload.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as e:
            raise ServingError(f"reply is not JSON ({e})", call=call) from e


def _http_error_message(error: urllib.error.HTTPError) -> str:
    text = error.read().decode("utf-8", errors="replace")
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or str(error.reason)


def _no_reply(call: str, reason: Any, timeout: float, what: str) -> ServingError:
    if isinstance(reason, TimeoutError):
        return ServingError(f"no reply within the {timeout:g} s timeout", call=call)
    return ServingError(f"{what}: {reason}", call=call)


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
    """

    def __init__(
        self, target: str, model_name: str, version: int | None = None, timeout: float = 10.0
    ) -> None:
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
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
        """Runs a signature; returns output name → array (strings as Python str)."""
        arrays = prepare_inputs(signature, inputs, defaults)
        request = predict_request(self.model_name, signature, arrays, self.version)
        reply = self._call("Predict", self._predictions.Predict, request, signature)
        return {
            name: _output_array(signature, name, _from_tensor_proto(name, proto))
            for name, proto in reply.outputs.items()
        }

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

    def _call(self, method: str, stub_method: Any, request: Any, signature: str = "") -> Any:
        on = f"model {self.model_name!r}" + (f", signature {signature!r}" if signature else "")
        call = f"gRPC {method} at {self.target} ({on})"
        try:
            return stub_method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                message = f"no reply within the {self.timeout:g} s timeout"
            elif code == grpc.StatusCode.UNAVAILABLE:
                message = f"cannot connect: {e.details()}"
            else:
                message = e.details() or ""
            raise ServingError(message, call=call, status=code.name) from e


def _from_tensor_proto(name: str, proto: Any) -> Any:
    array = tf.make_ndarray(proto)
    if array.dtype == object and not name.endswith(_BYTES_SUFFIX):
        return _decode_strings(array)
    return array


def _decode_strings(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = value.decode("utf-8", errors="replace")
    return out


# ----------------------------------------------------------------------------- outputs


def _output_array(signature: str, name: str, value: Any) -> np.ndarray:
    dtype = SIGNATURES[signature].outputs.get(name)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value
    if dtype == tf.string or (dtype is None and _has_text(value)):
        return np.array(value, dtype=object)
    if dtype is None:
        return np.asarray(value)
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


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
