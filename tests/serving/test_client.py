"""REST and gRPC clients against in-process TF Serving stand-ins serving a toy SavedModel.

The toy export has every signature of the serving contract with exactly its input specs and
output names; each output echoes or derives from the inputs, so a test sees whether every
value survived the client's encoding, TF Serving's decoding and the reply's way back.
"""

from __future__ import annotations

import json
import math
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.errors import RecsysError
from serving.client import (
    GrpcClient,
    RequestError,
    RestClient,
    ServingError,
    predict_request,
    prepare_inputs,
    recommend_request,
    rest_predict_body,
)
from serving.signatures import DEFAULTS, SIGNATURES, input_specs
from tests.serving.fake_servers import (
    FakeGrpcServer,
    FakeRestServer,
    ServedModel,
    canned_rest_server,
    rest_post,
    silent_server,
    trickling_server,
)
from tests.serving.tf_serving_rest import (
    JsonTensorError,
    decode_predict_request,
    encode_predict_response,
)

MODEL = "recsys"
BUCKETS = 1_000_000  # the toy `rank` scores an id by its hash bucket: exact bytes matter
NOT_UTF8 = b"\xff\xfe\x00id"


# ----------------------------------------------------------------------------- toy export


def _k_positive(k: tf.Tensor) -> tf.Operation:
    return tf.debugging.assert_positive(k, message="k must be positive")


def _column(x: tf.Tensor) -> tf.Tensor:
    return tf.expand_dims(x, 1)


class _ToyRecommender(tf.Module):
    """The serving contract's signatures over echoes of their inputs."""

    @tf.function(input_signature=input_specs("serving_default"))
    def serving_default(
        self, user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen
    ):
        with tf.control_dependencies([_k_positive(k)]):
            ids = tf.concat([_column(user_id), _column(query), history_item_ids], axis=1)
        numbers = tf.stack([tf.cast(timestamp, tf.float32), tf.cast(k, tf.float32), mmr_lambda], 1)
        return {
            "item_ids": ids,
            "scores": numbers,
            "relevance": _column(tf.cast(exclude_seen, tf.float32)),
            "explanation_item_ids": history_item_ids,
            "explanation_scores": tf.cast(tf.strings.length(history_item_ids), tf.float32),
        }

    @tf.function(input_signature=input_specs("retrieve"))
    def retrieve(self, user_id, history_item_ids, query, timestamp, k, exclude_seen):
        with tf.control_dependencies([_k_positive(k)]):
            ids = tf.concat([_column(user_id), _column(query), history_item_ids], axis=1)
        flags = tf.cast(exclude_seen, tf.float32)
        return {"item_ids": ids, "scores": tf.stack([tf.cast(k, tf.float32), flags], 1)}

    @tf.function(input_signature=input_specs("rank"))
    def rank(self, user_id, history_item_ids, query, timestamp, item_ids):
        buckets = tf.cast(tf.strings.to_hash_bucket_fast(item_ids, BUCKETS), tf.float32)
        return {"scores": tf.where(item_ids == "", 0.0, buckets)}

    @tf.function(input_signature=input_specs("mmr"))
    def mmr(self, item_ids, relevance, k, mmr_lambda):
        with tf.control_dependencies([_k_positive(k)]):
            scaled = relevance * _column(mmr_lambda)
        return {"item_ids": item_ids, "scores": scaled, "relevance": relevance}

    @tf.function(input_signature=input_specs("similar_items"))
    def similar_items(self, item_ids, k):
        with tf.control_dependencies([_k_positive(k)]):
            ids = _column(tf.strings.join([item_ids, "~"]))
        return {"item_ids": ids, "scores": _column(tf.cast(k, tf.float32))}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> ServedModel:
    toy = _ToyRecommender()
    path = tmp_path_factory.mktemp("toy_export")
    tf.saved_model.save(toy, str(path), signatures={n: getattr(toy, n) for n in SIGNATURES})
    return ServedModel(path, MODEL, version=1)


@pytest.fixture(scope="module")
def rest_server(served):
    with FakeRestServer(served) as server:
        yield server


@pytest.fixture(scope="module")
def grpc_server(served):
    with FakeGrpcServer(served) as server:
        yield server


@pytest.fixture
def rest(rest_server) -> RestClient:
    return RestClient(rest_server.url, MODEL, timeout=10.0)


@pytest.fixture
def grpc_client(grpc_server):
    with GrpcClient(grpc_server.target, MODEL, timeout=10.0) as client:
        yield client


def _contract_dtypes(signature: str) -> dict[str, tf.DType]:
    return {spec.name: spec.dtype for spec in SIGNATURES[signature].inputs}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_USERS = [
    recommend_request("u1", history=["i1", "i22"], query="jazz", k=3, timestamp=100),
    recommend_request("u2", mmr_lambda=0.25, exclude_seen=False),
]


def _expected_two_users() -> dict[str, np.ndarray]:
    # Row 2 has no history: padded with "" to row 1's two items; its k and λ: the defaults.
    return {
        "item_ids": np.array([["u1", "jazz", "i1", "i22"], ["u2", "", "", ""]], dtype=object),
        "scores": np.array(
            [[100, 3, DEFAULTS["mmr_lambda"]], [0, DEFAULTS["k"], 0.25]], dtype=np.float32
        ),
        "relevance": np.array([[1.0], [0.0]], dtype=np.float32),
        "explanation_item_ids": np.array([["i1", "i22"], ["", ""]], dtype=object),
        "explanation_scores": np.array([[2, 3], [0, 0]], dtype=np.float32),
    }


def _assert_outputs(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        if want.dtype == object:
            assert got[name].tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got[name], want, err_msg=name)


# ----------------------------------------------------------------------------- inputs


def test_prepare_inputs_fills_defaults_pads_and_converts():
    arrays = prepare_inputs("serving_default", TWO_USERS)

    assert list(arrays) == [spec.name for spec in input_specs("serving_default")]
    assert arrays["user_id"].tolist() == [b"u1", b"u2"]
    assert arrays["history_item_ids"].tolist() == [[b"i1", b"i22"], [b"", b""]]
    assert arrays["k"].dtype == np.int32 and arrays["k"].tolist() == [3, DEFAULTS["k"]]
    assert arrays["mmr_lambda"].dtype == np.float32
    np.testing.assert_array_equal(arrays["mmr_lambda"], np.float32([DEFAULTS["mmr_lambda"], 0.25]))
    assert arrays["timestamp"].dtype == np.int64 and arrays["timestamp"].tolist() == [100, 0]
    assert arrays["exclude_seen"].tolist() == [True, False]


def test_prepare_inputs_columns_repeat_single_values_over_rows():
    columns = {
        "user_id": np.array(["a", "b"]),
        "history_item_ids": ["h1"],  # one list: every row's history
        "k": np.int64(4),
    }
    arrays = prepare_inputs("retrieve", columns, defaults={"k": 7})

    assert arrays["user_id"].tolist() == [b"a", b"b"]
    assert arrays["history_item_ids"].tolist() == [[b"h1"], [b"h1"]]
    assert arrays["k"].tolist() == [4, 4]  # given beats the defaults override
    assert prepare_inputs("retrieve", {"user_id": "a"}, defaults={"k": 7})["k"].tolist() == [7]
    assert prepare_inputs("retrieve", {"user_id": 196})["user_id"].tolist() == [b"196"]


def test_empty_lists_become_one_padding_element_per_row():
    arrays = prepare_inputs("retrieve", {"user_id": ["a", "b"], "history_item_ids": []})
    mmr = prepare_inputs("mmr", {"item_ids": [[]], "relevance": [[]]})

    assert arrays["history_item_ids"].tolist() == [[b""], [b""]]
    assert mmr["item_ids"].tolist() == [[b""]] and mmr["relevance"].tolist() == [[0.0]]


def test_unknown_input_name_is_named_with_the_known_ones(rest_server, rest):
    with pytest.raises(ValueError, match=r"unknown input 'histroy'.*known inputs: user_id, "):
        prepare_inputs("serving_default", {"user_id": "u", "histroy": ["i1"]})
    sent = len(rest_server.requests)
    with pytest.raises(ValueError, match="'histroy'"):
        rest.predict("serving_default", [{"user_id": "u", "histroy": []}])
    assert len(rest_server.requests) == sent  # nothing went to the server


@pytest.mark.parametrize(
    ("signature", "inputs", "message"),
    [
        ("serving_default", {"query": "q"}, "'user_id'.*has no default"),
        ("serving_default", {"user_id": "u", "k": 2.5}, "'k'.*int32.*2.5"),
        ("serving_default", {"user_id": "u", "k": 2**40}, "'k'"),
        ("serving_default", {"user_id": "u", "exclude_seen": 1}, "'exclude_seen'.*bool"),
        ("serving_default", {"user_id": ["a", "b"], "k": [1, 2, 3]}, "different numbers of rows"),
        ("serving_default", {"user_id": "u", "history_item_ids": "i1"}, "list of values per row"),
        ("serving_default", {"user_id": [["a"]]}, "single value per row"),
        ("serving_default", {"user_id": []}, "no request rows"),
        ("recommend", {"user_id": "u"}, "unknown signature 'recommend'"),
        ("rank", {"user_id": "u", "item_ids": [1.5]}, "'item_ids'.*string"),
    ],
)
def test_prepare_inputs_rejects_bad_values(signature, inputs, message):
    with pytest.raises(ValueError, match=message):
        prepare_inputs(signature, inputs)


def test_a_string_that_is_not_utf8_text_is_a_request_error_naming_the_input():
    user = b"caf\xe9".decode("utf-8", "surrogateescape")  # argv bytes in Latin-1
    with pytest.raises(RequestError) as info:
        prepare_inputs("serving_default", {"user_id": user})
    assert str(info.value) == (
        "input 'user_id' of 'serving_default' is not UTF-8 text: 'caf\\udce9'"
    )
    assert isinstance(info.value, RecsysError) and isinstance(info.value, ValueError)


def test_defaults_override_must_name_known_inputs():
    with pytest.raises(ValueError, match="unknown inputs \\['kk'\\]"):
        prepare_inputs("serving_default", {"user_id": "u"}, defaults={"kk": 3})


# ----------------------------------------------------------------------------- REST bodies

SAMPLE_INPUTS = {
    "serving_default": TWO_USERS,
    "retrieve": {"user_id": ["a", "b"], "history_item_ids": [["x"], ["y", "z"]], "k": 2},
    "rank": {"user_id": "a", "item_ids": [["i1", "i2", "i3"], ["i4"]], "query": "q"},
    "mmr": {"item_ids": [["a", "b"], ["c"]], "relevance": [[0.5, 0.25], [1.0]], "k": 1},
    "similar_items": {"item_ids": ["a", NOT_UTF8], "k": [1, 2]},
}


@pytest.mark.parametrize("format", ["row", "columnar"])
@pytest.mark.parametrize("signature", sorted(SIGNATURES))
def test_rest_bodies_decode_the_tf_serving_way_to_the_prepared_tensors(signature, format):
    arrays = prepare_inputs(signature, SAMPLE_INPUTS[signature])
    body = json.dumps(rest_predict_body(signature, arrays, format)).encode()

    decoded = decode_predict_request(body, _contract_dtypes)

    assert decoded.signature_name == signature
    assert decoded.format == format
    assert set(decoded.inputs) == set(arrays)
    for name, array in arrays.items():
        assert decoded.inputs[name].dtype == array.dtype, name
        assert decoded.inputs[name].shape == array.shape, name
        assert decoded.inputs[name].tolist() == array.tolist(), name


def test_rest_body_sends_non_utf8_bytes_as_b64_and_text_as_strings():
    arrays = prepare_inputs("similar_items", {"item_ids": ["é", NOT_UTF8], "k": 1})
    body = rest_predict_body("similar_items", arrays, "columnar")

    assert body["inputs"]["item_ids"] == ["é", {"b64": "//4AaWQ="}]
    assert body["inputs"]["k"] == [1, 1]


def test_tf_serving_rules_reject_what_the_real_server_rejects():
    dtypes = lambda _: {"x": tf.int32, "flag": tf.bool}  # noqa: E731

    def error(body: object) -> str:
        with pytest.raises(JsonTensorError) as info:
            decode_predict_request(json.dumps(body).encode(), dtypes)
        return info.value.message

    assert "is not of expected type: int32" in error({"inputs": {"x": [1.0], "flag": [True]}})
    assert "is not of expected type: bool" in error({"inputs": {"x": [1], "flag": [1]}})
    assert "Expecting tensor size: 2 but got: 1" in error(
        {"instances": [{"x": [1, 2], "flag": True}, {"x": [3], "flag": False}]}
    )
    assert "Expecting shape [1,2] but got: [2,1]" in error(
        {"instances": [{"x": [[1, 2]], "flag": True}, {"x": [[1], [2]], "flag": False}]}
    )
    assert "Encountered list at unexpected size: 1" in error({"inputs": {"x": [[1, 2], [3]]}})
    assert "keys must be equal to: flag,x" in error({"instances": [{"x": 1}]})
    assert "Missing named input: flag" in error({"inputs": {"x": [1]}})
    assert "plain list" in error({"instances": [1, 2]})
    assert "only one of 'inputs' or 'instances'" in error({"inputs": {}, "instances": [{}]})


def test_tf_serving_rules_single_input_and_reply_formats():
    single = decode_predict_request(b'{"instances": [[1, 2], [3, 4]]}', lambda _: {"v": tf.int64})
    assert single.inputs["v"].tolist() == [[1, 2], [3, 4]] and single.format == "row"

    one_output = {"scores": np.float32([[0.1, 2.0]])}
    assert json.loads(encode_predict_response(one_output, "row")) == {"predictions": [[0.1, 2.0]]}
    two = {"a": np.array([b"x"], dtype=object), "b_bytes": np.array([b"\xff"], dtype=object)}
    assert json.loads(encode_predict_response(two, "row")) == {
        "predictions": [{"a": "x", "b_bytes": {"b64": "/w=="}}]
    }
    assert json.loads(encode_predict_response(two, "columnar")) == {
        "outputs": {"a": ["x"], "b_bytes": [{"b64": "/w=="}]}
    }
    assert b"2.0" in encode_predict_response(one_output, "row")  # whole floats keep ".0"


# ----------------------------------------------------------------------------- REST calls


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_predict_returns_the_models_outputs(rest, format):
    outputs = rest.predict("serving_default", TWO_USERS, format=format)

    _assert_outputs(outputs, _expected_two_users())


def test_rest_single_output_signature_is_named_from_the_contract(rest):
    outputs = rest.predict("rank", {"user_id": "u", "item_ids": [["i1", "i2"], ["i3"]]})

    expected = tf.strings.to_hash_bucket_fast([["i1", "i2"], ["i3", "i3"]], BUCKETS).numpy()
    assert list(outputs) == ["scores"]
    np.testing.assert_array_equal(outputs["scores"][0], expected[0].astype(np.float32))
    assert outputs["scores"][1].tolist() == [float(expected[1][0]), 0.0]  # "" pads score 0


def test_rest_b64_bytes_reach_the_model_exactly(rest_server, rest):
    outputs = rest.predict("rank", {"user_id": "u", "item_ids": [[NOT_UTF8, "plain"]]})

    expected = tf.strings.to_hash_bucket_fast([NOT_UTF8, b"plain"], BUCKETS).numpy()
    np.testing.assert_array_equal(outputs["scores"][0], expected.astype(np.float32))
    sent = json.loads(rest_server.requests[-1][2])
    assert sent["instances"][0]["item_ids"] == [{"b64": "//4AaWQ="}, "plain"]


def test_rest_non_utf8_output_strings_come_back_replaced(rest):
    # TF Serving writes DT_STRING outputs raw (base64 only for names ending in "_bytes").
    outputs = rest.predict("similar_items", {"item_ids": [b"ok", b"\xffx"], "k": 1})

    assert outputs["item_ids"].tolist() == [["ok~"], ["\ufffdx~"]]


def test_rest_model_invalid_argument_is_a_serving_error(rest):
    with pytest.raises(ServingError) as info:
        rest.predict("serving_default", {"user_id": ["u1", "u2"], "k": [2, 0]})

    error = info.value
    assert error.status == 400
    assert "k must be positive" in error.message
    assert error.call.startswith("POST http://127.0.0.1:") and error.call.endswith(":predict")
    assert "\n" not in str(error) and "HTTP 400" in str(error)


def test_rest_unknown_model_or_version_is_not_found(rest_server):
    with pytest.raises(ServingError, match=r"Latest\(other\)") as info:
        RestClient(rest_server.url, "other").predict("similar_items", {"item_ids": "a"})
    assert info.value.status == 404
    pinned = RestClient(rest_server.url, MODEL, version=2)
    with pytest.raises(ServingError, match=r"Specific\(recsys, 2\)"):
        pinned.metadata()
    assert RestClient(rest_server.url, MODEL, version=1).status()["model_version_status"]


def test_fake_rest_server_reports_a_missing_signature_like_tf_serving(served):
    status, body = rest_post(served, "/v1/models/recsys:predict", b'{"signature_name": "nope"}')

    assert status == 400
    assert json.loads(body) == {
        "error": 'Serving signature name: "nope" not found in signature def'
    }


def test_rest_status_and_metadata(rest):
    assert rest.status() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    metadata = rest.metadata()

    assert metadata["model"] == MODEL and metadata["version"] == 1
    _assert_contract(metadata["signatures"])


def _assert_contract(signatures: dict) -> None:
    assert set(signatures) == set(SIGNATURES)
    for name, sig in SIGNATURES.items():
        inputs = signatures[name]["inputs"]
        assert inputs == {
            spec.name: {"dtype": spec.dtype.name, "shape": [-1] * spec.shape.rank}
            for spec in sig.inputs
        }
        outputs = signatures[name]["outputs"]
        assert {k: v["dtype"] for k, v in outputs.items()} == {
            k: v.name for k, v in sig.outputs.items()
        }


def test_rest_timeout_names_the_url_and_the_timeout():
    with silent_server() as address:
        client = RestClient(f"http://{address}", MODEL, timeout=0.3)
        with pytest.raises(ServingError) as info:
            client.predict("similar_items", {"item_ids": "a"})

    message = str(info.value)
    assert f"POST http://{address}/v1/models/recsys:predict" in message
    assert "deadline exceeded: no complete reply within the 0.3 s timeout" in message
    assert info.value.status is None and "\n" not in message


def test_rest_timeout_is_the_deadline_of_the_whole_call_not_of_each_read():
    with trickling_server(interval=0.05, duration=3) as url:  # a byte every 50 ms
        client = RestClient(url, MODEL, timeout=1)
        started = time.monotonic()
        with pytest.raises(ServingError) as info:
            client.predict("similar_items", {"item_ids": "a"})
        elapsed = time.monotonic() - started

    assert elapsed < 1.5
    assert str(info.value) == (
        f"POST {url}/v1/models/recsys:predict failed: deadline exceeded: no complete reply "
        "within the 1 s timeout"
    )


@pytest.mark.parametrize("timeout", [-1, 0, math.nan, math.inf, "10"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout):
    for client in (RestClient, GrpcClient):
        with pytest.raises(ValueError) as info:
            client("localhost:1", MODEL, timeout=timeout)
        assert f"(got {timeout!r})" in str(info.value)


_GOOD_ROW = {
    "item_ids": ["i1", "i2"],
    "scores": [0.5, 0.25],
    "relevance": [1.0, 0.5],
    "explanation_item_ids": ["h1", ""],
    "explanation_scores": [0.9, 0.0],
}


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (
            {"predictions": [{**_GOOD_ROW, "scores": ["high", "low"]}]},
            "output 'scores' must hold float32 values (got [['high', 'low']])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "item_ids": [1, 2]}]},
            "output 'item_ids' must hold string values (got [[1, 2]])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "scores": [True, False]}]},
            "output 'scores' must hold float32 values (got [[True, False]])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "item_ids": [["i1"], "i2"]}]},
            "output 'item_ids' is not a rectangular tensor (got [[['i1'], 'i2']])",
        ),
        (
            {"predictions": [{k: v for k, v in _GOOD_ROW.items() if k != "relevance"}]},
            "output(s) 'relevance' missing",
        ),
        (
            {"predictions": [_GOOD_ROW, _GOOD_ROW]},
            "output 'item_ids' has shape [2, 2], not one row for each of the 1 request row(s)",
        ),
        ({"predictions": "none"}, "'predictions' must be a non-empty list (got 'none')"),
        (["a", "list"], "no 'predictions' in the reply ['a', 'list']"),
    ],
)
def test_a_reply_that_does_not_fit_the_contract_is_a_serving_error(reply, detail):
    with canned_rest_server(json.dumps(reply).encode()) as url:
        client = RestClient(url, MODEL, timeout=5)
        with pytest.raises(ServingError) as info:
            client.predict("serving_default", {"user_id": "u"})

    assert str(info.value) == (
        f"POST {url}/v1/models/recsys:predict failed: the reply does not fit signature "
        f"'serving_default': {detail}"
    )


def test_a_reply_that_fits_the_contract_comes_back_typed():
    with canned_rest_server(json.dumps({"predictions": [_GOOD_ROW]}).encode()) as url:
        outputs = RestClient(url, MODEL, timeout=5).predict("serving_default", {"user_id": "u"})

    assert outputs["scores"].dtype == np.float32 and outputs["scores"].tolist() == [[0.5, 0.25]]
    assert outputs["item_ids"].tolist() == [["i1", "i2"]]


def test_rest_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServingError, match=f"GET {url}/v1/models/recsys failed: cannot connect"):
        RestClient(url, MODEL, timeout=2).status()


# ----------------------------------------------------------------------------- gRPC


def test_grpc_predict_matches_rest(grpc_client, rest):
    outputs = grpc_client.predict("serving_default", TWO_USERS)

    _assert_outputs(outputs, _expected_two_users())
    rest_outputs = rest.predict("mmr", SAMPLE_INPUTS["mmr"])
    _assert_outputs(grpc_client.predict("mmr", SAMPLE_INPUTS["mmr"]), rest_outputs)


def test_grpc_request_carries_the_contract_dtypes_and_the_version(grpc_server):
    with GrpcClient(grpc_server.target, MODEL, version=1) as client:
        outputs = client.predict("rank", {"user_id": "u", "item_ids": [[NOT_UTF8]]})
    request = grpc_server.requests[-1]

    assert request.model_spec.version.value == 1
    assert request.model_spec.signature_name == "rank"
    dtypes = {name: tf.dtypes.as_dtype(p.dtype) for name, p in request.inputs.items()}
    assert dtypes == _contract_dtypes("rank")
    expected = tf.strings.to_hash_bucket_fast([NOT_UTF8], BUCKETS).numpy()
    assert outputs["scores"].tolist() == [[float(expected[0])]]


def test_predict_request_builds_the_tensor_protos():
    arrays = prepare_inputs("similar_items", {"item_ids": ["a", "b"], "k": 3})
    request = predict_request(MODEL, "similar_items", arrays)

    assert not request.model_spec.HasField("version")
    assert tf.make_ndarray(request.inputs["k"]).tolist() == [3, 3]
    assert tf.make_ndarray(request.inputs["item_ids"]).tolist() == [b"a", b"b"]


def test_grpc_model_invalid_argument_is_a_serving_error(grpc_client):
    with pytest.raises(ServingError) as info:
        grpc_client.predict("similar_items", {"item_ids": ["a"], "k": [0]})

    assert info.value.status == "INVALID_ARGUMENT"
    assert "k must be positive" in info.value.message
    assert "gRPC Predict at 127.0.0.1:" in str(info.value)


def test_grpc_metadata_and_status(grpc_client, rest):
    metadata = grpc_client.metadata()

    assert metadata["model"] == MODEL and metadata["version"] == 1
    _assert_contract(metadata["signatures"])
    assert metadata == rest.metadata()
    assert grpc_client.status() == rest.status()


def test_grpc_unknown_model_is_not_found(grpc_server):
    with GrpcClient(grpc_server.target, "other") as client, pytest.raises(ServingError) as info:
        client.metadata()

    assert info.value.status == "NOT_FOUND"
    assert "Latest(other)" in info.value.message


def test_grpc_timeout_names_the_target_and_the_timeout():
    with (
        silent_server() as address,
        GrpcClient(address, MODEL, timeout=0.3) as client,
        pytest.raises(ServingError) as info,
    ):
        client.predict("similar_items", {"item_ids": "a"})

    assert info.value.status == "DEADLINE_EXCEEDED"
    assert f"gRPC Predict at {address}" in str(info.value)
    assert "no complete reply within the 0.3 s timeout" in str(info.value)


def test_grpc_connection_refused_is_unavailable():
    target = f"127.0.0.1:{_closed_port()}"
    with GrpcClient(target, MODEL, timeout=5) as client, pytest.raises(ServingError) as info:
        client.status()

    assert info.value.status == "UNAVAILABLE"
    assert target in str(info.value) and "cannot connect" in str(info.value)
