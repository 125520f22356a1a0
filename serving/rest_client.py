"""The REST client of TF Serving (port 8501), with the standard library only.

TF Serving's REST API has its own JSON rules (`tensorflow_serving/util/json_tensor.cc`): the
row format stacks each input over `instances`, integers must be written as whole numbers,
booleans as `true`/`false`, and bytes that are not UTF-8 text as `{"b64": ...}`. String
outputs come back as plain JSON strings (base64 only for outputs named `*_bytes`). A call's
deadline covers the whole exchange (`serving/http_deadline.py`).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.http_deadline import urlopen_with_deadline
from serving.replies import (
    ReplyError,
    ServingError,
    checked_outputs,
    checked_timeout,
    no_reply,
    readable_metadata,
    unfit_reply,
)
from serving.requests import Inputs, prepare_inputs
from serving.signatures import SIGNATURES

__all__ = ["RestClient", "rest_predict_body"]

_FORMATS = ("row", "columnar")


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


def _rest_columns(signature: str, reply: Any, format: str) -> dict[str, Any]:
    """Output name → (nested) value of a REST reply; the bare value of a single output is
    named from the contract, as TF Serving drops the name."""
    names = list(SIGNATURES[signature].outputs)
    key = "predictions" if format == "row" else "outputs"
    if not isinstance(reply, dict) or key not in reply:
        raise ReplyError(f"no {key!r} in the reply {reply!r:.80}")
    value = reply[key]
    if format == "row":
        if not isinstance(value, list) or not value:
            raise ReplyError(f"'predictions' must be a non-empty list (got {value!r:.80})")
        if all(_is_named(row) for row in value):
            if any(set(row) != set(value[0]) for row in value):
                raise ReplyError("the rows of 'predictions' name different outputs")
            columns = {name: [row[name] for row in value] for name in value[0]}
        else:  # TF Serving drops the name when the signature has a single output
            columns = {names[0]: value}
    else:
        columns = dict(value) if _is_named(value) else {names[0]: value}
    try:
        return {name: _from_json(v) for name, v in columns.items()}
    except (binascii.Error, TypeError) as e:
        raise ReplyError(f"a {{'b64': ...}} value is not base64 ({e})") from None


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
        self.timeout = checked_timeout(timeout)

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
            return checked_outputs(signature, _rest_columns(signature, reply, format), arrays)
        except ReplyError as e:
            raise unfit_reply(f"POST {url}", signature, e) from None

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
            return readable_metadata(
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
            raise no_reply(call, e.reason, self.timeout, "cannot connect") from e
        except OSError as e:  # while waiting for the reply (TimeoutError is an OSError)
            raise no_reply(call, e, self.timeout, "connection lost") from e
        except http.client.InvalidURL as e:
            raise ServingError(f"invalid URL: {e}", call=call) from e
        except http.client.HTTPException as e:  # e.g. a reply cut short
            raise ServingError(f"bad HTTP reply ({type(e).__name__}: {e})", call=call) from e
        try:
            return json.loads(payload.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as e:
            raise ServingError(f"reply is not JSON ({e})", call=call) from e


def _http_error_message(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):  # the body did not come (in time)
        return str(error.reason)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip() or str(error.reason)
