"""Warmup requests: written where TF Serving reads them, parsed back, replayed on a toy SavedModel.

The toy module has every signature of `serving/signatures.py` with exactly its TensorSpecs and a
small arithmetic body per output, so each replayed output can be checked against a value
computed here by hand.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import warmup
from serving.signatures import SIGNATURES, input_specs
from tests.serving.conftest import modes_under


def _f32(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)


class _Toy(tf.Module):
    """Every serving signature; outputs are simple functions of the inputs."""

    @tf.function(input_signature=input_specs("serving_default"))
    def recommend(self, user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen):
        return {
            "item_ids": tf.strings.join([user_id, query], "|")[:, None],
            "scores": (_f32(k) * mmr_lambda)[:, None],
            "relevance": _f32(timestamp)[:, None],
            "explanation_item_ids": history_item_ids,
            "explanation_scores": _f32(exclude_seen)[:, None],
        }

    @tf.function(input_signature=input_specs("retrieve"))
    def retrieve(self, user_id, history_item_ids, query, timestamp, k, exclude_seen):
        return {
            "item_ids": tf.strings.join([history_item_ids, "@"]),
            "scores": (_f32(k) * _f32(exclude_seen) + _f32(timestamp))[:, None],
        }

    @tf.function(input_signature=input_specs("rank"))
    def rank(self, user_id, history_item_ids, query, timestamp, item_ids):
        return {"scores": _f32(tf.strings.length(item_ids)) + _f32(timestamp)[:, None]}

    @tf.function(input_signature=input_specs("mmr"))
    def mmr(self, item_ids, relevance, k, mmr_lambda):
        return {
            "item_ids": tf.reverse(item_ids, axis=[1]),
            "scores": relevance * mmr_lambda[:, None],
            "relevance": relevance + _f32(k)[:, None],
        }

    @tf.function(input_signature=input_specs("similar_items"))
    def similar_items(self, item_ids, k):
        return {
            "item_ids": tf.strings.join([item_ids, "~"])[:, None],
            "scores": _f32(k)[:, None],
        }


_FUNCTIONS = {
    "serving_default": "recommend",
    "retrieve": "retrieve",
    "rank": "rank",
    "mmr": "mmr",
    "similar_items": "similar_items",
}

# Batch of 2 for every signature; strings given as str, as callers write them.
EXAMPLES = {
    "serving_default": {
        "user_id": ["u1", "u2"],
        "history_item_ids": [["a", "b"], ["c", ""]],
        "query": ["space", ""],
        "timestamp": [100, 0],
        "k": [3, 5],
        "mmr_lambda": [0.5, 1.0],
        "exclude_seen": [True, False],
    },
    "retrieve": {
        "user_id": ["u1", "u2"],
        "history_item_ids": [["a"], ["b"]],
        "query": ["", ""],
        "timestamp": [7, 9],
        "k": [2, 4],
        "exclude_seen": [True, False],
    },
    "rank": {
        "user_id": ["u1", "u2"],
        "history_item_ids": [["a"], ["b"]],
        "query": ["", "q"],
        "timestamp": [10, 20],
        "item_ids": [["x", "yy", "zzz"], ["wwww", "", ""]],
    },
    "mmr": {
        "item_ids": [["p", "q"], ["r", "s"]],
        "relevance": [[1.0, 0.5], [2.0, 4.0]],
        "k": [1, 2],
        "mmr_lambda": [0.5, 0.25],
    },
    "similar_items": {"item_ids": ["i1", "i2"], "k": [3, 1]},
}

# The toy's outputs for EXAMPLES, computed by hand from its bodies.
EXPECTED = {
    "serving_default": {
        "item_ids": [[b"u1|space"], [b"u2|"]],
        "scores": [[1.5], [5.0]],  # k * λ: 3 * 0.5, 5 * 1.0
        "relevance": [[100.0], [0.0]],
        "explanation_item_ids": [[b"a", b"b"], [b"c", b""]],
        "explanation_scores": [[1.0], [0.0]],
    },
    "retrieve": {
        "item_ids": [[b"a@"], [b"b@"]],
        "scores": [[9.0], [9.0]],  # k * exclude_seen + timestamp: 2 * 1 + 7, 4 * 0 + 9
    },
    "rank": {"scores": [[11.0, 12.0, 13.0], [24.0, 20.0, 20.0]]},  # len(id) + timestamp
    "mmr": {
        "item_ids": [[b"q", b"p"], [b"s", b"r"]],
        "scores": [[0.5, 0.25], [0.5, 1.0]],  # relevance * λ
        "relevance": [[2.0, 1.5], [4.0, 6.0]],  # relevance + k
    },
    "similar_items": {"item_ids": [[b"i1~"], [b"i2~"]], "scores": [[3.0], [1.0]]},
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The toy SavedModel (saved once) with warmup records for every signature."""
    folder = str(tmp_path_factory.mktemp("toy") / "1")
    toy = _Toy()
    signatures = {
        name: getattr(toy, method).get_concrete_function() for name, method in _FUNCTIONS.items()
    }
    tf.saved_model.save(toy, folder, signatures=signatures)
    warmup.write_warmup(folder, warmup.warmup_requests("movies", EXAMPLES))
    return folder, tf.saved_model.load(folder)


def test_toy_has_exactly_the_contract_signatures(saved_model):
    _, loaded = saved_model
    assert set(loaded.signatures) == set(SIGNATURES)
    for name, sig in SIGNATURES.items():
        _, kwargs = loaded.signatures[name].structured_input_signature
        assert {n: s.dtype for n, s in kwargs.items()} == {s.name: s.dtype for s in sig.inputs}
        assert set(loaded.signatures[name].structured_outputs) == set(sig.outputs)


def test_warmup_file_is_where_tf_serving_reads_it(saved_model):
    folder, _ = saved_model
    assert os.path.isfile(os.path.join(folder, "assets.extra", "tf_serving_warmup_requests"))
    assert [n for n in os.listdir(os.path.join(folder, "assets.extra")) if n.startswith(".")] == []


def test_records_parse_as_prediction_logs_with_typed_inputs(saved_model):
    folder, _ = saved_model
    path = os.path.join(folder, "assets.extra", "tf_serving_warmup_requests")
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(EXAMPLES)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "movies"
        specs = {s.name: s for s in input_specs(request.model_spec.signature_name)}
        assert set(request.inputs) == set(specs)
        for name, proto in request.inputs.items():
            assert proto.dtype == specs[name].dtype.as_datatype_enum, name
            assert len(proto.tensor_shape.dim) == specs[name].shape.rank, name
            assert proto.tensor_shape.dim[0].size == 2, name
    assert warmup.read_warmup(folder) == logs  # message equality: map order may differ


def test_replay_runs_every_signature_with_expected_outputs(saved_model):
    folder, loaded = saved_model
    results = warmup.replay_warmup(folder, loaded)
    assert set(results) == set(EXPECTED)
    for signature, outputs in EXPECTED.items():
        assert set(results[signature]) == set(outputs), signature
        for name, want in outputs.items():
            got = results[signature][name]
            if isinstance(want[0][0], bytes):
                assert got.tolist() == want, (signature, name)
            else:
                np.testing.assert_allclose(got, want, err_msg=f"{signature}.{name}")


def test_replay_loads_the_model_itself(saved_model):
    folder, _ = saved_model
    results = warmup.replay_warmup(folder)
    assert results["similar_items"]["item_ids"].tolist() == [[b"i1~"], [b"i2~"]]


def test_missing_input_is_rejected_by_name():
    inputs = {k: v for k, v in EXAMPLES["rank"].items() if k != "item_ids"}
    with pytest.raises(ValueError, match=r"'rank'.*missing.*'item_ids'"):
        warmup.warmup_requests("m", {"rank": inputs})


def test_extra_input_is_rejected_by_name():
    inputs = {**EXAMPLES["similar_items"], "mmr_lambda": [0.5, 0.5]}
    with pytest.raises(ValueError, match=r"'similar_items'.*unknown.*'mmr_lambda'"):
        warmup.warmup_requests("m", {"similar_items": inputs})


def test_unknown_signature_wrong_rank_and_batch_mismatch_are_rejected():
    with pytest.raises(ValueError, match="unknown signature 'recommend'"):
        warmup.warmup_requests("m", {"recommend": EXAMPLES["serving_default"]})
    flat = {**EXAMPLES["mmr"], "relevance": [1.0, 2.0]}
    with pytest.raises(ValueError, match=r"'relevance' must have rank 2"):
        warmup.warmup_requests("m", {"mmr": flat})
    short = {**EXAMPLES["similar_items"], "k": [3]}
    with pytest.raises(ValueError, match="batch size"):
        warmup.warmup_requests("m", {"similar_items": short})


def test_replay_names_the_failing_signature(saved_model, tmp_path):
    _, loaded = saved_model
    (log,) = warmup.warmup_requests("m", {"mmr": EXAMPLES["mmr"]})
    # A float `k` for the int32 input, written past warmup_requests' validation.
    log.predict_log.request.inputs["k"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], tf.float32))
    warmup.write_warmup(str(tmp_path), [log])
    with pytest.raises(warmup.WarmupError, match="signature 'mmr'"):
        warmup.replay_warmup(str(tmp_path), loaded)


def test_replay_rejects_a_signature_the_model_lacks(saved_model, tmp_path):
    _, loaded = saved_model
    (log,) = warmup.warmup_requests("m", {"similar_items": EXAMPLES["similar_items"]})
    log.predict_log.request.model_spec.signature_name = "similar"
    warmup.write_warmup(str(tmp_path), [log])
    with pytest.raises(warmup.WarmupError, match="'similar' is not in the SavedModel"):
        warmup.replay_warmup(str(tmp_path), loaded)


def test_write_warmup_enforces_the_server_record_limit(tmp_path):
    logs = warmup.warmup_requests("m", {"similar_items": EXAMPLES["similar_items"]})
    with pytest.raises(ValueError, match="1 to 1000"):
        warmup.write_warmup(str(tmp_path), logs * 1001)
    with pytest.raises(ValueError, match="1 to 1000"):
        warmup.write_warmup(str(tmp_path), [])
    assert not os.path.exists(os.path.join(tmp_path, "assets.extra", "tf_serving_warmup_requests"))


def test_the_warmup_file_has_the_mode_of_the_umask(tmp_path, umask):
    logs = warmup.warmup_requests("m", {"similar_items": EXAMPLES["similar_items"]})
    warmup.write_warmup(str(tmp_path / "version"), logs)
    modes = modes_under(tmp_path / "version")
    assert modes == {".": 0o750, "assets.extra": 0o750, warmup.WARMUP_FILE: 0o640}
