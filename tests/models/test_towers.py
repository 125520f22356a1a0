"""The towers: output shapes, out-of-vocabulary ids, cold items placed by their text."""

import numpy as np
import pytest
import tensorflow as tf

from models.features import FeatureSpace
from models.towers import ItemEncoder, QueryTower, time_features


def _space(text_dim=4):
    rng = np.random.default_rng(0)
    text = rng.normal(size=(4, text_dim)).astype(np.float32)
    return FeatureSpace(
        user_ids=["u1", "u2"],
        trained_item_ids=["a", "b"],
        categories=["x", "y"],
        catalog_ids=["a", "b", "cold", "mute"],
        item_categories=[[0], [0, 1], [1], []],
        text_embeddings=text,
        has_text=np.array([1, 1, 1, 0], np.float32),
        train_counts=np.array([5, 3, 0, 0]),
    )


def test_item_vectors_have_the_input_shape_plus_dim():
    encoder = ItemEncoder(_space(), dim=8)
    assert encoder(tf.constant(["a", "cold"])).shape == (2, 8)
    assert encoder(tf.constant([["a", "b", "mute"]])).shape == (1, 3, 8)


def test_untrained_and_unknown_ids_share_the_oov_row_but_text_separates_cold_items():
    space = _space()
    encoder = ItemEncoder(space, dim=8)
    ids = encoder.id_lookup(tf.constant(["a", "cold", "never-seen"])).numpy()
    assert ids[1] == ids[2] != ids[0]
    vectors = encoder(tf.constant(["cold", "mute", "never-seen"])).numpy()
    # "cold" has text and a category, "mute" neither, "never-seen" is not in the catalog at all.
    assert not np.allclose(vectors[0], vectors[1])
    without_text = ItemEncoder(space, dim=8, use_text=False)
    without_text(tf.constant(["a"]))
    assert not without_text.use_text and not any("text" in w.name for w in without_text.weights)


def test_text_projection_only_counts_items_with_text():
    space = _space()
    encoder = ItemEncoder(space, dim=8)
    encoder(tf.constant(["a"]))
    rows = encoder.catalog_rows(tf.constant(["mute", "zzz"])).numpy()
    assert encoder.has_text_table.numpy()[rows].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("pooling", ["mean", "attention", "self_attention"])
def test_query_vectors_for_any_history_length(pooling):
    space = _space()
    tower = QueryTower(space, ItemEncoder(space, dim=8), dim=16, history_pooling=pooling)
    features = {
        "user_id": tf.constant(["u1", "stranger", "u2"]),
        "history_item_ids": tf.ragged.constant([["a", "b"], [], ["cold", "a", "b", "mute"]]),
        "timestamp": tf.constant([0, 86400, 1_700_000_000], tf.int64),
    }
    out = tower(features).numpy()
    assert out.shape == (3, 16) and np.isfinite(out).all()
    # The same histories dense, with a mask that skips entries anywhere in a row (as the
    # serving graph's first-occurrence mask does), and with no column at all.
    dense = tf.constant([["a", "x", "b", ""], ["a", "", "", ""], ["cold", "a", "b", "mute"]])
    mask = tf.constant([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]) > 0
    masked = tower({**features, "history_item_ids": dense, "history_mask": mask}).numpy()
    np.testing.assert_allclose(masked, out, atol=1e-6)
    none = {"history_item_ids": tf.zeros([3, 0], tf.string), "history_mask": mask[:, :0]}
    np.testing.assert_allclose(tower({**features, **none}).numpy()[1], out[1], atol=1e-6)


def test_history_pooling_ignores_padding():
    space = _space()
    items = ItemEncoder(space, dim=8)
    tower = QueryTower(space, items, dim=8)
    user = tf.zeros([2, 8])
    mask = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    vectors = items(tf.constant([["a", "b"], ["", ""]])) * mask[..., tf.newaxis]
    pooled = tower.pool_history(user, vectors, mask).numpy()
    np.testing.assert_allclose(pooled[0], items(tf.constant(["a", "b"])).numpy().mean(0), atol=1e-6)
    np.testing.assert_allclose(pooled[1], 0.0)
    with pytest.raises(ValueError, match="history_pooling"):
        QueryTower(space, items, dim=8, history_pooling="max")


def test_time_features_by_hand():
    # 1970-01-05 was a Monday; 06:00 is a quarter of the day.
    out = time_features(tf.constant([4 * 86400 + 6 * 3600], tf.int64)).numpy()[0]
    day, week = 0.25, ((4 + 0.25 + 3) % 7) / 7
    expected = [
        np.sin(2 * np.pi * day),
        np.sin(2 * np.pi * week),
        np.cos(2 * np.pi * day),
        np.cos(2 * np.pi * week),
    ]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_free_text_query_moves_the_query_only_when_present():
    space = _space()
    tower = QueryTower(space, ItemEncoder(space, dim=8), dim=8)
    features = {
        "user_id": tf.constant(["u1", "u1"]),
        "history_item_ids": tf.ragged.constant([["a"], ["a"]]),
        "timestamp": tf.constant([0, 0], tf.int64),
    }
    without = tower(features).numpy()
    query = np.zeros((2, space.text_dim), np.float32)
    query[1] = space.text_embeddings[2]
    with_query = tower({**features, "query_text_embedding": tf.constant(query)}).numpy()
    np.testing.assert_allclose(with_query[0], without[0], atol=1e-6)  # zero row = no query
    assert not np.allclose(with_query[1], without[1])


def test_a_batch_of_empty_histories_works():
    space = _space()
    tower = QueryTower(space, ItemEncoder(space, dim=8), dim=8)
    out = tower(
        {
            "user_id": tf.constant(["u1", "new"]),
            "history_item_ids": tf.ragged.constant([[], []], dtype=tf.string),
            "timestamp": tf.constant([0, 0], tf.int64),
        }
    )
    assert out.shape == (2, 8) and np.isfinite(out.numpy()).all()
