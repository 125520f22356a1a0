"""The gRPC client (`serving/grpc_client.py`): the Predict request it builds, and its calls to
the gRPC stand-in serving the toy export, which answer as the REST ones do."""

from __future__ import annotations

import pytest
import tensorflow as tf

from serving.client import GrpcClient, ServingError, predict_request, prepare_inputs
from tests.serving.fake_tf_serving import silent_server
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


def test_grpc_predict_matches_rest(grpc_client, rest):
    outputs = grpc_client.predict("serving_default", TWO_USERS)

    assert_outputs(outputs, expected_two_users())
    rest_outputs = rest.predict("mmr", SAMPLE_INPUTS["mmr"])
    assert_outputs(grpc_client.predict("mmr", SAMPLE_INPUTS["mmr"]), rest_outputs)


def test_grpc_request_carries_the_contract_dtypes_and_the_version(grpc_server):
    with GrpcClient(grpc_server.target, MODEL, version=1) as client:
        outputs = client.predict("rank", {"user_id": "u", "item_ids": [[NOT_UTF8]]})
    request = grpc_server.requests[-1]

    assert request.model_spec.version.value == 1
    assert request.model_spec.signature_name == "rank"
    dtypes = {name: tf.dtypes.as_dtype(p.dtype) for name, p in request.inputs.items()}
    assert dtypes == contract_dtypes("rank")
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
    assert_contract(metadata["signatures"])
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
    target = f"127.0.0.1:{closed_port()}"
    with GrpcClient(target, MODEL, timeout=5) as client, pytest.raises(ServingError) as info:
        client.status()

    assert info.value.status == "UNAVAILABLE"
    assert target in str(info.value) and "cannot connect" in str(info.value)
