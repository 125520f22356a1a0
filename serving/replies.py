"""What both clients of TF Serving share: `ServingError`, the checks that a reply fits the
serving contract (`serving/signatures.py`), and model metadata as plain data.

A reply that does not fit (an output missing, of the wrong type or shape) is a `ServingError`
like a failed call, with the output named; string outputs are decoded as UTF-8 text, over REST
and gRPC alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2

from pipeline.core.errors import RecsysError
from serving.signatures import SIGNATURES

__all__ = [
    "ReplyError",
    "ServingError",
    "checked_outputs",
    "checked_timeout",
    "decode_strings",
    "no_reply",
    "readable_metadata",
    "unfit_reply",
]


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


class ReplyError(ValueError):
    """A reply that does not fit the serving contract; the message says how."""


def checked_timeout(timeout: Any) -> float:
    """`timeout` as a float of seconds; ValueError unless it is a positive finite number."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds (got {timeout!r})")
    return float(timeout)


def no_reply(call: str, reason: Any, timeout: float, what: str) -> ServingError:
    """The error of a call that got no reply: past its deadline, or `what` went wrong."""
    if isinstance(reason, TimeoutError):
        return ServingError(
            f"deadline exceeded: no complete reply within the {timeout:g} s timeout", call=call
        )
    return ServingError(f"{what}: {reason}", call=call)


def unfit_reply(call: str, signature: str, error: ReplyError) -> ServingError:
    """The error of a reply that does not fit `signature`'s outputs."""
    return ServingError(f"the reply does not fit signature {signature!r}: {error}", call=call)


def decode_strings(array: np.ndarray) -> np.ndarray:
    """String outputs (bytes) as text; bytes that are not UTF-8 become U+FFFD."""
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = value.decode("utf-8", errors="replace")
    return out


def checked_outputs(
    signature: str, columns: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The reply's outputs as arrays, checked against the contract: every output there, of its
    dtype, one row per request row (`arrays`: the request's inputs).

    Raises:
      ReplyError: the reply does not fit; the message names the output.
    """
    missing = [name for name in SIGNATURES[signature].outputs if name not in columns]
    if missing:
        raise ReplyError(f"output(s) {', '.join(map(repr, missing))} missing")
    rows = len(next(iter(arrays.values())))
    outputs = {}
    for name, value in columns.items():
        array = _output_array(signature, name, value)
        if array.ndim == 0 or len(array) != rows:
            raise ReplyError(
                f"output {name!r} has shape {list(array.shape)}, not one row for each of the "
                f"{rows} request row(s)"
            )
        outputs[name] = array
    return outputs


def _output_array(signature: str, name: str, value: Any) -> np.ndarray:
    """One output as an array of the contract's dtype (strings: an object array of str).

    Raises:
      ReplyError: `value` is not a rectangular tensor of that dtype.
    """
    array = value if isinstance(value, np.ndarray) else np.array(value, dtype=object)
    if array.dtype == object and any(isinstance(v, list | dict) for v in array.flat):
        raise ReplyError(f"output {name!r} is not a rectangular tensor (got {value!r:.80})")
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
        raise ReplyError(f"output {name!r} must hold {dtype.name} values (got {shown!r:.80})")
    return array if dtype == tf.string else array.astype(dtype.as_numpy_dtype)


def _has_text(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str | bytes)


def readable_metadata(
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
