"""A SavedModel round trip of the trained model, reloaded in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import tensorflow as tf

from models.saved import save_recommender
from models.train import load_feature_space, load_trained_model
from models.train import train as train_model
from tests.models.conftest import small_config

_RELOAD = """
import json, sys
# TF_USE_LEGACY_KERAS=1: inherited from the test process (tests/conftest.py sets it)
import tensorflow as tf
inputs = json.loads(sys.argv[2])
loaded = tf.saved_model.load(sys.argv[1])
query = dict(user_id=tf.constant(inputs["user_id"]),
             history_item_ids=tf.constant(inputs["history_item_ids"]),
             timestamp=tf.constant(inputs["timestamp"], tf.int64))
out = {
    "query": loaded.signatures["query_embedding"](**query)["embeddings"].numpy().tolist(),
    "candidates": loaded.signatures["candidate_embedding"](
        item_id=tf.constant(inputs["item_id"]))["embeddings"].numpy().tolist(),
    "rank": loaded.signatures["rank"](**query, item_id=tf.constant(inputs["item_id"]))[
        "predictions"].numpy().tolist(),
}
print(json.dumps(out))
"""


def test_trained_model_reloads_in_a_fresh_process(workspace, tmp_path):
    work, checkpoint = workspace
    config = small_config(work, f"text.checkpoint={checkpoint}", "train.epochs=1")
    train_model(config)
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    items = space.catalog_ids[:3]
    inputs = {
        "user_id": [space.user_ids[0], "someone-new", space.user_ids[1]],
        "history_item_ids": [[items[1], items[2]], ["", ""], [items[0], ""]],
        "timestamp": [1_704_067_200, 1_704_070_000, 1_704_080_000],
        "item_id": [items[0], items[1], "not-in-catalog"],
    }
    features = {
        "user_id": tf.constant(inputs["user_id"]),
        "history_item_ids": tf.RaggedTensor.from_tensor(
            tf.constant(inputs["history_item_ids"]), padding=""
        ),
        "timestamp": tf.constant(inputs["timestamp"], tf.int64),
    }
    path = str(tmp_path / "saved")
    save_recommender(model, path)
    result = subprocess.run(
        [sys.executable, "-c", _RELOAD, path, json.dumps(inputs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    query = model.query_embedding(features).numpy()
    candidates = model.candidate_embedding(tf.constant(inputs["item_id"])).numpy()
    np.testing.assert_allclose(reloaded["query"], query, atol=1e-5)
    np.testing.assert_allclose(reloaded["candidates"], candidates, atol=1e-5)
    ranks = model.rank(
        model.query_vector(features), model.candidate_vector(tf.constant(inputs["item_id"]))
    ).numpy()
    np.testing.assert_allclose(reloaded["rank"], ranks, atol=1e-4)
