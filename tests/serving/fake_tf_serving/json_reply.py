"""TF Serving's tensor → JSON rules for a REST predict reply, emulated for tests
(`tensorflow_serving/util/json_tensor.cc`, as `json_request.py` follows it for requests):

* Reply: row format → `{"predictions": [...]}`, one entry per batch row, an object keyed by
  output name when the signature has several outputs, the bare value when it has one; every
  output must share the batch size. Columnar → `{"outputs": {...}}` (or the bare value).
  Floats are written with the shortest of `%.6g` / full precision that round-trips, with `.0`
  on whole numbers. DT_STRING outputs are written as raw JSON strings, *not* base64, unless
  the output name ends with `_bytes`; the real server writes non-UTF-8 bytes as they are,
  which makes the reply invalid JSON, and so does this emulation.
* Errors: `{"error": "<message>"}`; the HTTP status follows the error code (see
  `rest_server.HTTP_STATUS`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tests.serving.fake_tf_serving.json_request import COLUMNAR, ROW, JsonTensorError

__all__ = ["encode_error", "encode_predict_response"]

_BYTES_SUFFIX = "_bytes"


def encode_predict_response(outputs: Mapping[str, np.ndarray], format: str) -> bytes:
    """The reply body TF Serving writes for these outputs (arrays as the model returned them).

    Raises:
      JsonTensorError: no outputs, a scalar output in row format, or outputs whose batch
        sizes differ in row format (the real server's errors).
    """
    if not outputs:
        raise JsonTensorError("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if format == ROW:
        text = _row_json(arrays)
    elif format == COLUMNAR:
        text = _columnar_json(arrays)
    else:
        raise JsonTensorError("Invalid request format")
    # Strings went in as surrogate-escaped text: their raw bytes come back out unchanged.
    return text.encode("utf-8", errors="surrogateescape")


def encode_error(message: str) -> bytes:
    """The body of an error reply."""
    return json.dumps({"error": message}, ensure_ascii=False, indent=4).encode(
        "utf-8", errors="surrogateescape"
    )


def _row_json(arrays: dict[str, np.ndarray]) -> str:
    batch = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise JsonTensorError(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise JsonTensorError(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch}"
            )
        batch = array.shape[0]
    rows = []
    for i in range(batch):
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            rows.append(_tensor_json(array[i, ...], _is_bytes_output(name, array)))
        else:
            rows.append(_object_json({name: array[i, ...] for name, array in arrays.items()}))
    return '{"predictions": [' + ", ".join(rows) + "]}"


def _columnar_json(arrays: dict[str, np.ndarray]) -> str:
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        return '{"outputs": ' + _tensor_json(array, _is_bytes_output(name, array)) + "}"
    return '{"outputs": ' + _object_json(arrays) + "}"


def _object_json(arrays: dict[str, np.ndarray]) -> str:
    members = [
        _json_str(name) + ": " + _tensor_json(array, _is_bytes_output(name, array))
        for name, array in arrays.items()
    ]
    return "{" + ", ".join(members) + "}"


def _tensor_json(array: np.ndarray, as_bytes: bool) -> str:
    # a[i, ...] keeps a 0-d array (not a NumPy scalar, which would cut trailing NULs of bytes)
    if array.ndim == 0:
        return _scalar_json(array[()], array.dtype, as_bytes)
    parts = (_tensor_json(array[i, ...], as_bytes) for i in range(array.shape[0]))
    return "[" + ",".join(parts) + "]"


def _scalar_json(value: Any, dtype: np.dtype, as_bytes: bool) -> str:
    if dtype.kind in "OSU":
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if as_bytes:
            return '{"b64": "' + base64.b64encode(raw).decode("ascii") + '"}'
        return _json_str(raw.decode("utf-8", errors="surrogateescape"))
    if dtype.kind == "b":
        return "true" if value else "false"
    if dtype.kind in "iu":
        return str(int(value))
    if dtype == np.float32:
        return _decimal(float(value), 9, np.float32)
    if dtype == np.float64:
        return _decimal(float(value), 17, np.float64)
    raise JsonTensorError(f"Failed to write JSON value for tensor type: {dtype}")


def _decimal(value: float, max_digits: int, np_type: type) -> str:
    """TF Serving's float text: six digits if they round-trip, else full precision."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if np_type(float(text)) != np_type(value):
        text = f"{value:.{max_digits}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _json_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return name.endswith(_BYTES_SUFFIX) and array.dtype.kind in "OS"
