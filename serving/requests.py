"""Request rows → the tensors a signature takes, by the serving contract.

`prepare_inputs` checks input names against `serving/signatures.py`, fills what the caller left
out from `DEFAULTS` (or the export's own defaults), converts every value to the signature's
dtype, and pads ragged lists with "" (numbers with 0) into the rectangle TF Serving needs, at
least one element wide: the server's batching cannot pad an empty [n, 0] tensor. Inputs come
as columns (input name → one value for every row, or a list with one value per row) or as a
list of row mappings. The REST and gRPC clients and the in-process caller all build requests
here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.core.errors import RecsysError
from serving.signatures import DEFAULTS, SIGNATURES, Signature, numpy_dtype

__all__ = ["Inputs", "RequestError", "prepare_inputs", "recommend_request"]

Inputs = Mapping[str, Any] | Sequence[Mapping[str, Any]]

_KNOWN_INPUTS = frozenset(spec.name for sig in SIGNATURES.values() for spec in sig.inputs)


class RequestError(RecsysError, ValueError):
    """Request inputs the serving contract refuses; the message names the input and the value.

    A ValueError too, as these were before; a RecsysError, so the CLI reports it in one line.
    """


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
      RequestError: an unknown signature or input name, a missing input without a default, row
        counts that differ, or a value that does not convert to the input's dtype (a string
        that is not UTF-8 text included).
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
        raise RequestError(f"unknown signature {name!r}; known: {', '.join(SIGNATURES)}")
    return SIGNATURES[name]


def _merged_defaults(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(defaults or {}) - _KNOWN_INPUTS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_INPUTS))
        raise RequestError(f"defaults for unknown inputs {unknown}; known inputs: {known}")
    return {**DEFAULTS, **(defaults or {})}


def _check_names(sig: Signature, names: Sequence[str]) -> None:
    known = [spec.name for spec in sig.inputs]
    for name in names:
        if name not in known:
            raise RequestError(
                f"unknown input {name!r} for signature {sig.name!r}; "
                f"known inputs: {', '.join(known)}"
            )


def _default(sig: Signature, name: str, fill: Mapping[str, Any]) -> Any:
    if name not in fill:
        raise RequestError(f"input {name!r} of signature {sig.name!r} has no default: pass it")
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
            raise RequestError(
                f"input {spec.name!r} needs {_shape_words(spec.shape.rank - 1)} per row, "
                f"got {value!r:.80}"
            )
        columns[spec.name] = (value, depth == spec.shape.rank)
    return columns


def _columns_from_rows(
    sig: Signature, rows: Sequence[Mapping[str, Any]], fill: Mapping[str, Any]
) -> dict[str, tuple[Any, bool]]:
    if isinstance(rows, str | bytes) or not all(isinstance(row, Mapping) for row in rows):
        raise RequestError("inputs must be a mapping of columns or a list of row mappings")
    columns: dict[str, list[Any]] = {spec.name: [] for spec in sig.inputs}
    for row in rows:
        _check_names(sig, list(row))
        for spec in sig.inputs:
            value = _plain(row[spec.name] if spec.name in row else _default(sig, spec.name, fill))
            if _depth(value, spec.name) != spec.shape.rank - 1:
                raise RequestError(
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
        raise RequestError(f"input {name!r} mixes lists and single values: {value!r:.80}")
    return 1 + (depths.pop() if depths else 0)


def _batch_size(sig: Signature, columns: Mapping[str, tuple[Any, bool]]) -> int:
    counts = {name: len(value) for name, (value, batched) in columns.items() if batched}
    sizes = set(counts.values())
    if len(sizes) > 1:
        listed = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise RequestError(f"inputs of {sig.name!r} give different numbers of rows ({listed})")
    batch = sizes.pop() if sizes else 1
    if batch == 0:
        raise RequestError(f"no request rows for {sig.name!r}")
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
    def fail(value: Any) -> RequestError:
        return RequestError(
            f"input {spec.name!r} of {sig!r} is {spec.dtype.name}: cannot use {value!r:.80}"
        )

    def to_string(value: Any) -> bytes:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates, e.g. argv bytes that are not UTF-8
                raise RequestError(
                    f"input {spec.name!r} of {sig!r} is not UTF-8 text: {value!r:.80}"
                ) from None
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
