"""TF Serving's JSON → tensor rules for a REST predict request, emulated for tests.

TensorFlow Serving decodes a `:predict` body with `tensorflow_serving/util/json_tensor.cc` and
encodes the reply with the same file (`json_reply.py`). This module follows that file's rules
(read, not translated line by line), so a client that passes here builds bodies the real server
accepts:

* Top level: a JSON object; `signature_name` (optional, a string) and exactly one of
  `instances` (row format) or `inputs` (columnar format). Other keys are ignored, and so is
  anything after the top-level value (rapidjson's "stop when done").
* Row format: a non-empty list. With several signature inputs each instance is an object whose
  keys are exactly the input names; a signature with one input may also take bare values. Each
  input is stacked over the instances, so every instance must give it the same shape.
* Columnar format: an object of name → (nested) list, every input present; a single-input
  signature may take the bare value.
* A tensor's shape comes from the first element at each nesting level; every leaf must sit at
  the same depth and every list at a level must have that level's length (no ragged lists).
* Values are checked against the signature's dtype: floats take any JSON number, integer types
  take whole JSON numbers only (`1.0` is not an int32), DT_BOOL takes only `true`/`false`,
  DT_STRING takes a JSON string (its UTF-8 bytes) or `{"b64": "..."}` (binary bytes).
  `NaN`, `Infinity` and `-Infinity` are accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "DecodedRequest",
    "JsonTensorError",
    "decode_predict_request",
]

ROW, COLUMNAR = "row", "columnar"
_B64 = "b64"
_DEBUG_LIMIT = 256


class JsonTensorError(ValueError):
    """A body that TF Serving rejects; `code` is the status it would return."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class DecodedRequest:
    """What the server makes of a predict body.

    Attributes:
      signature_name: as sent; "" when the body names none (the server then uses
        "serving_default").
      inputs: input name → array (object arrays of bytes for DT_STRING).
      format: "row" (`instances`) or "columnar" (`inputs`); the reply uses the same format.
    """

    signature_name: str
    inputs: dict[str, np.ndarray]
    format: str


# ----------------------------------------------------------------------------- decoding


def decode_predict_request(
    body: bytes, input_dtypes: Callable[[str], Mapping[str, tf.DType]]
) -> DecodedRequest:
    """Decodes a `:predict` body the way TF Serving does.

    Args:
      body: the raw request body.
      input_dtypes: signature name ("" for the default) → {input name: dtype}; it raises
        (e.g. `JsonTensorError`) for a signature the model lacks.

    Raises:
      JsonTensorError: with TF Serving's message, for any body the real server rejects.
    """
    doc = _parse(body)
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise JsonTensorError(
            f"JSON Value: {_debug(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    dtypes = dict(input_dtypes(signature_name))
    if not dtypes:
        raise JsonTensorError(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    if "instances" in doc and "inputs" in doc:
        raise JsonTensorError(
            f"JSON Value: {_debug(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise JsonTensorError(
                f"JSON Value: {_debug(doc)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise JsonTensorError(f"JSON Value: {_debug(doc)} No values in 'instances' array")
        return DecodedRequest(signature_name, _decode_rows(instances, dtypes), ROW)
    if "inputs" in doc:
        return DecodedRequest(signature_name, _decode_columns(doc["inputs"], dtypes), COLUMNAR)
    raise JsonTensorError("Missing 'inputs' or 'instances' key")


def _parse(body: bytes) -> dict[str, Any]:
    # rapidjson parses without validating UTF-8, so raw bytes pass through into strings;
    # surrogateescape keeps them, and _string() turns them back into the same bytes.
    text = body.decode("utf-8", errors="surrogateescape").lstrip(" \t\r\n")
    if not text:
        raise JsonTensorError("JSON Parse error: The document is empty")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise JsonTensorError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from e
    if not isinstance(doc, dict):
        raise JsonTensorError(f"JSON Value: {_debug(doc)} Is not object")
    return doc


def _decode_rows(instances: list[Any], dtypes: dict[str, tf.DType]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(dtypes) > 1:
        raise JsonTensorError(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = _is_named_object(instances[0])
    stacks: dict[str, _Stack] = {}
    for index, item in enumerate(instances):
        if objects:
            _add_named_instance(item, index, dtypes, stacks)
        else:
            _add_bare_instance(item, index, dtypes, stacks)
    return {name: stack.array(len(instances), dtypes[name]) for name, stack in stacks.items()}


def _add_named_instance(
    item: Any, index: int, dtypes: dict[str, tf.DType], stacks: dict[str, _Stack]
) -> None:
    if not _is_named_object(item):
        raise JsonTensorError(f"Expecting object but got list at item {index} of input list")
    for name, value in item.items():
        try:
            _add_item(name, value, dtypes, stacks)
        except JsonTensorError as e:
            raise JsonTensorError(
                f"Failed to process element: {index} key: {name} of 'instances' list. "
                f"Error: {e.code}: {e.message}"
            ) from e
    if set(item) != set(dtypes):
        raise JsonTensorError(
            f"Failed to process element: {index} of 'instances' list. JSON object: "
            f"{_debug(item)} keys must be equal to: {','.join(sorted(dtypes))}"
        )


def _add_bare_instance(
    item: Any, index: int, dtypes: dict[str, tf.DType], stacks: dict[str, _Stack]
) -> None:
    if _is_named_object(item):
        raise JsonTensorError(f"Expecting value/list but got object at item {index} of input list")
    name = next(iter(dtypes))
    try:
        _add_item(name, item, dtypes, stacks)
    except JsonTensorError as e:
        raise JsonTensorError(
            f"Failed to process element: {index} of 'instances' list. Error: {e.code}: {e.message}"
        ) from e


@dataclass
class _Stack:
    """One input's values over the instances seen so far, and the shape each must have."""

    shape: list[int]
    values: list[Any]

    def array(self, count: int, dtype: tf.DType) -> np.ndarray:
        return _to_array(self.values, [count, *self.shape], dtype)


def _add_item(
    name: str, value: Any, dtypes: dict[str, tf.DType], stacks: dict[str, _Stack]
) -> None:
    if name not in dtypes:
        raise JsonTensorError(f"JSON object: does not have named input: {name}")
    shape = _dense_shape(value)
    values: list[Any] = []
    _fill(value, 0, shape, dtypes[name], values)
    stack = stacks.get(name)
    if stack is None:
        stacks[name] = _Stack(shape, values)
        return
    expected_size = math.prod(stack.shape)
    if expected_size != len(values):
        raise JsonTensorError(f"Expecting tensor size: {expected_size} but got: {len(values)}")
    if stack.shape != shape:
        raise JsonTensorError(
            f"Expecting shape {_shape_text(stack.shape)} but got: {_shape_text(shape)}"
        )
    stack.values.extend(values)


def _decode_columns(value: Any, dtypes: dict[str, tf.DType]) -> dict[str, np.ndarray]:
    if not _is_named_object(value):
        if len(dtypes) > 1:
            raise JsonTensorError(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: _decode_tensor(value, dtypes[name])}
    tensors = {}
    for name, dtype in dtypes.items():
        if name not in value:
            raise JsonTensorError(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _decode_tensor(value[name], dtype)
    return tensors


def _decode_tensor(value: Any, dtype: tf.DType) -> np.ndarray:
    shape = _dense_shape(value)
    values: list[Any] = []
    _fill(value, 0, shape, dtype, values)
    return _to_array(values, shape, dtype)


def _dense_shape(value: Any) -> list[int]:
    """The shape read from the first element at each level, as json_tensor.cc reads it."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: tf.DType, out: list[Any]) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise JsonTensorError(
                f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise JsonTensorError(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise JsonTensorError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for element in value:
        _fill(element, level + 1, shape, dtype, out)


def _leaf(value: Any, dtype: tf.DType) -> Any:
    if isinstance(value, dict):
        if dtype != tf.string:
            raise _type_error(value, dtype)
        return _b64_decode(value)
    if dtype == tf.string:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return _string(value)
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype in (tf.float32, tf.float64):
        if not is_number:
            raise _type_error(value, dtype)
        return float(value)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (is_number and isinstance(value, int) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    raise JsonTensorError(
        f"Conversion of JSON Value: {_debug(value)} to type: {_dtype_string(dtype)}",
        code="UNIMPLEMENTED",
    )


# rapidjson's IsInt / IsInt64 / IsUint / IsUint64 decide what an integer dtype accepts; the
# narrow types go through IsInt (and are cut to size later, as in the real server).
_INT_RANGES: dict[tf.DType, tuple[int, int]] = {
    tf.int8: (-(2**31), 2**31 - 1),
    tf.int16: (-(2**31), 2**31 - 1),
    tf.int32: (-(2**31), 2**31 - 1),
    tf.uint8: (-(2**31), 2**31 - 1),
    tf.int64: (-(2**63), 2**63 - 1),
    tf.uint32: (0, 2**32 - 1),
    tf.uint64: (0, 2**64 - 1),
}


def _string(value: str) -> bytes:
    try:
        return value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as e:
        raise JsonTensorError(
            "JSON Parse error: The surrogate pair in string is invalid. at offset: 0"
        ) from e


def _b64_decode(value: dict[str, Any]) -> bytes:
    if not _is_b64(value):
        raise JsonTensorError(
            f"JSON Value: {_debug(value)} not formatted correctly for base64 data"
        )
    try:
        return base64.b64decode(value[_B64].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise JsonTensorError("Unable to base64 decode") from e


def _to_array(values: list[Any], shape: list[int], dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        flat = np.empty(len(values), dtype=object)
        flat[:] = values
        return flat.reshape(shape)
    return np.asarray(values, dtype=dtype.as_numpy_dtype).reshape(shape)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_B64), str)


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _type_error(value: Any, dtype: tf.DType) -> JsonTensorError:
    return JsonTensorError(
        f"JSON Value: {_debug(value)} Type: {_json_type(value)} is not of expected type: "
        f"{_dtype_string(dtype)}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _dtype_string(dtype: tf.DType) -> str:
    return {"float32": "float", "float64": "double"}.get(dtype.name, dtype.name)


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _debug(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text[:_DEBUG_LIMIT]
