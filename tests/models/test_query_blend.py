"""The free-text query blend: text cosine where a query is present, the model's score where not."""

import numpy as np
import tensorflow as tf

from models.query_blend import blend_query, text_index


def test_rows_with_a_query_blend_and_rows_without_keep_the_model_score():
    model = tf.constant([[0.9, 0.1, 0.0], [0.2, 0.8, 0.5]])
    index = text_index(np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32))
    queries = tf.constant([[0.0, 5.0], [0.0, 0.0]])  # row 0 asks for item 1's text; row 1: none
    out = blend_query(model, queries, tf.constant(index), 0.25).numpy()
    np.testing.assert_allclose(
        out[0], 0.75 * np.array([0.9, 0.1, 0.0]) + 0.25 * np.array([0, 1, 0])
    )
    np.testing.assert_allclose(out[1], model.numpy()[1])


def test_weight_one_is_plain_text_search_and_a_batch_without_queries_is_untouched():
    rng = np.random.default_rng(0)
    texts = rng.normal(size=(6, 4)).astype(np.float32)
    texts[5] = 0.0  # an item without text
    index = tf.constant(text_index(texts))
    model = tf.constant(rng.normal(size=(2, 6)), tf.float32)
    queries = tf.constant(rng.normal(size=(2, 4)), tf.float32)
    out = blend_query(model, queries, index, 1.0).numpy()
    unit = queries.numpy() / np.linalg.norm(queries.numpy(), axis=1, keepdims=True)
    expected = unit @ (texts / np.maximum(np.linalg.norm(texts, axis=1, keepdims=True), 1e-12)).T
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert (out[:, 5] == 0).all()
    none = blend_query(model, tf.zeros([2, 4]), index, 0.5).numpy()
    np.testing.assert_array_equal(none, model.numpy())
