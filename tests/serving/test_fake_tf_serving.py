"""The REST stand-in itself: it rejects what TF Serving rejects, and replies as it does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.serving.fake_tf_serving import (
    JsonTensorError,
    decode_predict_request,
    encode_predict_response,
    rest_post,
)


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


def test_fake_rest_server_reports_a_missing_signature_like_tf_serving(served):
    status, body = rest_post(served, "/v1/models/recsys:predict", b'{"signature_name": "nope"}')

    assert status == 400
    assert json.loads(body) == {
        "error": 'Serving signature name: "nope" not found in signature def'
    }
