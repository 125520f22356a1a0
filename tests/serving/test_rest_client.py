"""The REST client (`serving/rest_client.py`): the bodies it builds, decoded as TF Serving
decodes them, and its calls to the REST stand-in serving the toy export."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tensorflow as tf

from serving.client import RestClient, ServingError, prepare_inputs, rest_predict_body
from serving.signatures import SIGNATURES
from tests.serving.fake_tf_serving import decode_predict_request, silent_server, trickling_server
from tests.serving.toy_recommender import (
    BUCKETS,
    MODEL,
    NOT_UTF8,
    SAMPLE_INPUTS,
    TWO_USERS,
    assert_contract,
    assert_outputs,
    closed_port,
    contract_dtypes,
    expected_two_users,
)

# ----------------------------------------------------------------------------- REST bodies


@pytest.mark.parametrize("format", ["row", "columnar"])
@pytest.mark.parametrize("signature", sorted(SIGNATURES))
def test_rest_bodies_decode_the_tf_serving_way_to_the_prepared_tensors(signature, format):
    arrays = prepare_inputs(signature, SAMPLE_INPUTS[signature])
    body = json.dumps(rest_predict_body(signature, arrays, format)).encode()

    decoded = decode_predict_request(body, contract_dtypes)

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


# ----------------------------------------------------------------------------- REST calls


@pytest.mark.parametrize("format", ["row", "columnar"])
def test_rest_predict_returns_the_models_outputs(rest, format):
    outputs = rest.predict("serving_default", TWO_USERS, format=format)

    assert_outputs(outputs, expected_two_users())


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
    assert_contract(metadata["signatures"])


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


def test_rest_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ServingError, match=f"GET {url}/v1/models/recsys failed: cannot connect"):
        RestClient(url, MODEL, timeout=2).status()
