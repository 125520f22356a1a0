"""A toy export for the client tests, served by the in-process TF Serving stand-ins
(`tests/serving/fake_tf_serving/`; the fixtures are in `conftest.py`).

The toy export has every signature of the serving contract with exactly its input specs and
output names; each output echoes or derives from the inputs, so a test sees whether every
value survived the client's encoding, TF Serving's decoding and the reply's way back.
"""

from __future__ import annotations

import socket

import numpy as np
import tensorflow as tf

from serving.client import recommend_request
from serving.signatures import DEFAULTS, SIGNATURES, input_specs

MODEL = "recsys"
BUCKETS = 1_000_000  # the toy `rank` scores an id by its hash bucket: exact bytes matter
NOT_UTF8 = b"\xff\xfe\x00id"


def _k_positive(k: tf.Tensor) -> tf.Operation:
    return tf.debugging.assert_positive(k, message="k must be positive")


def _column(x: tf.Tensor) -> tf.Tensor:
    return tf.expand_dims(x, 1)


class ToyRecommender(tf.Module):
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


def contract_dtypes(signature: str) -> dict[str, tf.DType]:
    return {spec.name: spec.dtype for spec in SIGNATURES[signature].inputs}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_USERS = [
    recommend_request("u1", history=["i1", "i22"], query="jazz", k=3, timestamp=100),
    recommend_request("u2", mmr_lambda=0.25, exclude_seen=False),
]


def expected_two_users() -> dict[str, np.ndarray]:
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


def assert_outputs(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        if want.dtype == object:
            assert got[name].tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got[name], want, err_msg=name)


SAMPLE_INPUTS = {
    "serving_default": TWO_USERS,
    "retrieve": {"user_id": ["a", "b"], "history_item_ids": [["x"], ["y", "z"]], "k": 2},
    "rank": {"user_id": "a", "item_ids": [["i1", "i2", "i3"], ["i4"]], "query": "q"},
    "mmr": {"item_ids": [["a", "b"], ["c"]], "relevance": [[0.5, 0.25], [1.0]], "k": 1},
    "similar_items": {"item_ids": ["a", NOT_UTF8], "k": [1, 2]},
}


def assert_contract(signatures: dict) -> None:
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
