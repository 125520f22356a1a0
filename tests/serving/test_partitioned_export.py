"""The exported model with a partitioned index (`serving.index: partitioned`), over the exported
fixture's trained model: it loads in a fresh process and every signature answers, its warmup
runs, its ops are the stock server's; probing every partition, each signature answers as the
exact export does; probing few, a request still gets every item it asks for. (The search itself:
tests/serving/test_probe.py; the k-means: tests/serving/test_partitions.py.)"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from models.train import load_feature_space, load_trained_model
from serving.export import export
from serving.module import RecommenderServing
from serving.warmup import replay_warmup
from tests.serving.test_export import fresh_process_calls_every_signature
from tests.serving.test_ops import assert_stock_server_ops


@pytest.fixture(scope="module")
def partitioned(exported, tmp_path_factory):
    """(config, version folder) of the exported fixture's model exported again with a
    partitioned index, into a base of its own. Its catalog (60 items) is below what a request
    may ask for plus its history, so every partition is probed: the answers are exact."""
    config, _ = exported
    base = tmp_path_factory.mktemp("partitioned") / "export"
    serving = dataclasses.replace(config.serving, index="partitioned", export_base=str(base))
    config = dataclasses.replace(config, serving=serving)
    manifest = export(config)
    return config, os.path.join(base, serving.model_name, str(manifest["version"]))


def test_a_fresh_process_calls_every_signature_of_a_partitioned_export(partitioned):
    config, path = partitioned
    fresh_process_calls_every_signature(path, load_feature_space(config).catalog_ids)
    outputs = replay_warmup(path)  # the export replayed them too, before publishing
    assert set(outputs) == {"serving_default", "retrieve", "rank", "mmr", "similar_items"}


def test_a_partitioned_export_runs_on_the_stock_server_ops(partitioned):
    _, path = partitioned
    used = assert_stock_server_ops(path)
    assert "TensorScatterMin" in used  # the exclusions of the probed slots


def test_the_manifest_names_the_index_and_the_model_has_no_exact_table(partitioned):
    _, path = partitioned
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
        index = json.load(f)["index"]
    assert index["kind"] == "partitioned" and index["probes"] == index["partitions"] > 1
    assert index["partitions"] <= 8  # about √60
    variables = os.path.join(path, "variables", "variables")
    names = {name.split("/.ATTRIBUTES")[0] for name, _ in tf.train.list_variables(variables)}
    assert {"partitioned/centroids", "partitioned/vectors", "partitioned/rows"} <= names
    assert "index" not in names  # the exact table: not needed, and as large as the vectors


def _query(items, queries):
    n = len(queries)
    return {
        "user_id": tf.constant(["stranger", "u1", "u2"][:n]),
        "history_item_ids": tf.constant([items[:3], [*items[3:5], ""], ["", "", ""]][:n]),
        "query": tf.constant(queries),
        "timestamp": tf.constant([1_700_000_000] * n, tf.int64),
    }


def test_probing_every_partition_each_signature_answers_as_the_exact_export(exported, partitioned):
    """Without and with a free-text query (blended over the probed candidates), excluding the
    history or not."""
    config, exact_path = exported
    items = load_feature_space(config).catalog_ids
    exact, ivf = (tf.saved_model.load(p) for p in (exact_path, partitioned[1]))
    queries = ["", "a warm winter coat", ""]
    n = len(queries)
    calls = {
        "serving_default": {
            **_query(items, queries),
            "k": tf.constant([5, 7, 4]),
            "mmr_lambda": tf.constant([1.0, 0.5, 0.8]),
            "exclude_seen": tf.constant([True, False, True]),
        },
        "retrieve": {
            **_query(items, queries),
            "k": tf.constant([30, 12, 9]),
            "exclude_seen": tf.constant([True, True, False]),
        },
        "similar_items": {
            "item_ids": tf.constant([items[0], "no-such-item", items[7]][:n]),
            "k": tf.constant([4, 2, 6]),
        },
    }
    for signature, inputs in calls.items():
        want = exact.signatures[signature](**inputs)
        got = ivf.signatures[signature](**inputs)
        assert sorted(got) == sorted(want)
        for name, value in want.items():
            if value.dtype == tf.string:
                np.testing.assert_array_equal(got[name].numpy(), value.numpy(), err_msg=signature)
            else:
                np.testing.assert_allclose(
                    got[name], value, rtol=1e-5, atol=1e-5, err_msg=signature
                )


@pytest.mark.parametrize("xla", [False, True])
def test_asked_for_one_probe_a_request_still_gets_every_item_it_asks_for(exported, xla):
    """12 partitions of at most 8 of the 60 items, one probe asked: the module probes as many
    as always hold the 20 items a request may take plus its 4 history items; a request whose
    history sits in its closest partition gets its 20 items, none from the history."""
    config, _ = exported
    space = load_feature_space(config)
    serving = dataclasses.replace(
        config.serving,
        index="partitioned",
        index_partitions=12,
        index_probes=1,
        num_candidates=20,
        max_candidates=20,
        max_history=4,
        xla=xla,
    )
    module = RecommenderServing(
        load_trained_model(config, space), space.catalog_ids, None, None, serving
    )
    assert module.index is None
    partitioned = module.partitioned
    assert 1 < partitioned.probes < partitioned.centroids.shape[0]
    # The partition closest to a stranger without history, and 4 of its items as the history.
    base = {**_query(space.catalog_ids, [""])}
    base["history_item_ids"] = tf.constant([[""] * 4])
    first = module.retrieve(**base, k=tf.constant([1]), exclude_seen=tf.constant([True]))
    row = space.catalog_ids.index(first["item_ids"].numpy()[0, 0].decode())
    place = int(partitioned.places.numpy()[row]) // partitioned.width
    offsets = partitioned.offsets.numpy()
    rows = partitioned.rows.numpy()[offsets[place] : offsets[place + 1]][:4]
    history = [space.catalog_ids[r] for r in rows]
    request = {**base, "history_item_ids": tf.constant([history + [""] * (4 - len(history))])}
    got = module.retrieve(**request, k=tf.constant([20]), exclude_seen=tf.constant([True]))
    ids = got["item_ids"].numpy()[0].astype(str).tolist()
    assert all(ids) and len(set(ids)) == 20 and not set(ids) & set(history)
    recommended = module.recommend(
        **request,
        k=tf.constant([20]),
        mmr_lambda=tf.constant([1.0]),
        exclude_seen=tf.constant([True]),
    )
    ids = recommended["item_ids"].numpy()[0].astype(str).tolist()
    assert all(ids) and len(set(ids)) == 20 and not set(ids) & set(history)
