"""The TFRS model: logQ correction on a hand-computed case, both tasks, loss weights, training."""

import math

import numpy as np
import pytest
import tensorflow as tf

from models.features import FeatureSpace
from models.recommender import Recommender
from pipeline.core.config import ModelConfig
from tests.conftest import run_fresh_python


def _space():
    return FeatureSpace(
        user_ids=["u1", "u2", "u3"],
        trained_item_ids=["pop", "rare", "mid"],
        categories=["x", "y"],
        catalog_ids=["pop", "rare", "mid", "cold"],
        item_categories=[[0], [1], [0, 1], [1]],
        text_embeddings=np.eye(4, 6, dtype=np.float32),
        has_text=np.ones(4, np.float32),
        train_counts=np.array([8, 2, 0, 0]),
    )


def _batch():
    return {
        "user_id": tf.constant(["u1", "u2", "u3", "new"]),
        "item_id": tf.constant(["pop", "rare", "mid", "cold"]),
        "history_item_ids": tf.ragged.constant([["rare"], ["pop", "mid"], [], ["cold"]]),
        "timestamp": tf.constant([0, 3600, 7200, 10800], tf.int64),
        "label": tf.constant([5.0, 1.0, 3.0, 4.0]),
        "weight": tf.constant([1.0, 1.0, 2.0, 1.0]),
    }


def test_logq_correction_on_a_hand_computed_batch():
    """Queries q0 = c0 = (1, 0), q1 = c1 = (0, 1), temperature 1. Item "pop" has probability
    0.8, "rare" 0.2. Without correction both rows have logits (1, 0) for their positive:
    loss = log(1 + e^-1) = 0.3133 each. With logQ the logits become s - log p:
      row 0 (positive "pop"):  [1 - log .8, 0 - log .2] = [1.2231, 1.6094] → 0.9049
      row 1 (positive "rare"): [0 - log .8, 1 - log .2] = [0.2231, 2.6094] → 0.0880
    The correction raises the loss of popular positives and lowers it for rare ones."""
    space = _space()
    space.train_counts = np.array([8, 2, 0, 0])  # p(pop) = 0.8, p(rare) = 0.2
    q = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    ids = tf.constant(["pop", "rare"])

    def row_losses(logq):
        config = ModelConfig(
            temperature=1.0,
            logq_correction=logq,
            remove_accidental_hits=False,
            retrieval_negatives="in_batch",
        )
        model = Recommender(space, config)
        return [
            # The loss is a mean over the batch's 2 rows: weight one row, double the result.
            2 * float(model.retrieval_loss(q, q, ids, tf.constant(w)))
            for w in ([1.0, 0.0], [0.0, 1.0])
        ]

    plain = math.log(1 + math.exp(-1))
    np.testing.assert_allclose(row_losses(False), [plain, plain], atol=1e-4)
    popular = math.log(1 + math.exp((0 - math.log(0.2)) - (1 - math.log(0.8))))
    rare = math.log(1 + math.exp((0 - math.log(0.8)) - (1 - math.log(0.2))))
    np.testing.assert_allclose(row_losses(True), [popular, rare], atol=1e-4)
    assert popular > plain > rare


@pytest.mark.parametrize("history_negatives", [True, False])
def test_history_negatives_decides_whether_seen_items_push_a_row_down(history_negatives):
    """Row 1 ("rare") has seen "pop" and "mid", rows 0 and 2's positives. Counted as its
    negatives, their candidate vectors get gradient from row 1's loss; otherwise none."""
    config = ModelConfig(embedding_dim=4, history_negatives=history_negatives)
    model = Recommender(_space(), config)
    rng = np.random.default_rng(0)
    query = tf.math.l2_normalize(tf.constant(rng.normal(size=(4, 4)), tf.float32), axis=-1)
    candidate = tf.Variable(tf.math.l2_normalize(rng.normal(size=(4, 4)).astype(np.float32), -1))
    batch = _batch()
    history = None if history_negatives else model.history_rows(batch)
    with tf.GradientTape() as tape:
        only_row_1 = tf.constant([0.0, 1.0, 0.0, 0.0])
        loss = model.retrieval_loss(query, candidate, batch["item_id"], only_row_1, history)
    grad = tape.gradient(loss, candidate).numpy()
    seen = np.abs(grad[[0, 2]]).sum()
    assert (seen > 0) == history_negatives
    assert np.abs(grad[[1, 3]]).sum() > 0  # its positive and the unseen item still count


def test_sampling_probability_follows_train_counts():
    model = Recommender(_space(), ModelConfig())
    probs = model.candidate_probability(tf.constant(["pop", "rare", "cold", "unknown"])).numpy()
    # cold items get the smallest observed share (0.2), unknown ids the catalog mean.
    np.testing.assert_allclose(probs[:3], [0.8, 0.2, 0.2], atol=1e-6)
    assert 0.2 <= probs[3] <= 0.8


def test_embeddings_and_ratings_have_the_documented_shapes():
    model = Recommender(_space(), ModelConfig(embedding_dim=8))
    batch = _batch()
    q = model.query_embedding(batch)
    c = model.candidate_embedding(batch["item_id"])
    assert q.shape == (4, 8) and c.shape == (4, 8)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert model.rank(q, c).shape == (4,)
    assert model.candidate_embedding(tf.constant([["pop", "cold"]])).shape == (1, 2, 8)


@pytest.mark.parametrize(
    ("cross_layers", "projection", "deep"),
    [(2, None, [6, 4]), (2, 3, [6, 4]), (1, None, [6, 4]), (0, None, [6, 4]), (0, None, [])],
    ids=["full-rank", "low-rank", "one-layer", "no-cross", "rating-only"],
)
def test_rank_candidates_scores_each_candidate_as_rank_does(cross_layers, projection, deep):
    """The serving form (the head's first product folded per query: a cross layer's or,
    without cross layers, the first deep layer's) against `rank` on every (query, candidate)
    pair, with trained-looking weights: random, biases nonzero."""
    tf.keras.utils.set_random_seed(3)
    config = ModelConfig(
        embedding_dim=8,
        cross_layers=cross_layers,
        cross_projection_dim=projection,
        deep_layers=deep,
    )
    model = Recommender(_space(), config)
    rng = np.random.default_rng(0)
    query = tf.constant(rng.normal(size=(3, 8)), tf.float32)
    candidates = tf.constant(rng.normal(size=(3, 5, 8)), tf.float32)
    model.rank(query, candidates[:, 0])  # builds the layers
    for layer in [*model.cross, *model.deep, model.rating]:
        for weight in layer.weights:
            weight.assign(rng.normal(size=weight.shape) * 0.3)
    expected = tf.stack([model.rank(query, candidates[:, j]) for j in range(5)], axis=1)
    got = model.rank_candidates(query, candidates)
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if projection:
        assert model.cross[0].weights[0].shape == (24, projection)


@pytest.mark.parametrize(
    ("retrieval", "ranking"),
    [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)],
    ids=["retrieval", "ranking", "joint"],
)
def test_training_lowers_the_loss_for_each_task_mix(retrieval, ranking):
    tf.keras.utils.set_random_seed(1)
    config = ModelConfig(embedding_dim=8, retrieval_weight=retrieval, ranking_weight=ranking)
    model = Recommender(_space(), config)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    dataset = tf.data.Dataset.from_tensors(_batch()).repeat(30)
    history = model.fit(dataset, epochs=1, verbose=0)
    first = float(model.compute_loss(_batch()))
    model.fit(dataset, epochs=2, verbose=0)
    assert float(model.compute_loss(_batch())) < first
    assert history.history["loss"]


def test_the_reported_losses_are_means_over_every_batch_not_the_last_one():
    """`val_loss` chooses the number of epochs: it must weigh every validation batch. Three
    batches of different losses: the evaluation reports their mean, and fit's epoch loss is
    the mean of the losses of its steps."""
    tf.keras.utils.set_random_seed(2)
    model = Recommender(_space(), ModelConfig(embedding_dim=8))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    full = _batch()
    parts = [{k: v[i : i + 2] for k, v in full.items()} for i in (0, 1, 2)]
    losses = [float(model.compute_loss(part)) for part in parts]
    assert max(losses) - min(losses) > 1e-3  # the batches differ, so the last one alone is wrong
    dataset = tf.data.Dataset.from_tensors(parts[0])
    for part in parts[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(part))
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    again = model.evaluate(dataset, verbose=0, return_dict=True)  # reset between evaluations
    assert again["loss"] == pytest.approx(logs["loss"], rel=1e-5)


@pytest.mark.parametrize("head_only", [False, True])
def test_ranking_head_only_keeps_the_ranking_loss_out_of_the_towers(head_only):
    """With `ranking_head_only` the towers' gradients are the retrieval loss's alone (the same
    as with no ranking loss), and the ranking head still learns; without it they differ."""
    tf.keras.utils.set_random_seed(2)
    model = Recommender(_space(), ModelConfig(embedding_dim=8, ranking_head_only=head_only))
    model.compute_loss(_batch())  # builds every variable

    def gradients(ranking_weight):
        model.config.ranking_weight = ranking_weight
        with tf.GradientTape() as tape:
            loss = model.compute_loss(_batch(), training=False)
        return dict(
            zip(
                [v.name for v in model.trainable_variables],
                tape.gradient(loss, model.trainable_variables),
                strict=True,
            )
        )

    retrieval_only, joint = gradients(0.0), gradients(1.0)
    tower = [n for n in joint if not n.startswith(("cross", "deep", "rating"))]
    head = [n for n in joint if n.startswith(("cross", "deep", "rating"))]
    assert tower and head
    same = all(
        np.allclose(tf.convert_to_tensor(joint[n]), tf.convert_to_tensor(retrieval_only[n]))
        for n in tower
        if joint[n] is not None and retrieval_only[n] is not None
    )
    assert same == head_only
    assert all(joint[n] is not None and np.any(joint[n].numpy() != 0) for n in head)


def test_training_with_query_text_teaches_the_tower_to_follow_a_typed_query():
    """One user with one history buys four items whose texts are one-hot: only the stand-in
    queries tell the targets apart. After training, a query carrying an item's text puts that
    item first."""
    tf.keras.utils.set_random_seed(3)
    space = _space()
    space.train_counts = np.array([1, 1, 1, 1])  # each is bought: each is also a negative
    # Every row's history holds "rare", itself a target: counted as a negative of the other
    # rows, so that the query text alone must tell the four apart.
    config = ModelConfig(
        embedding_dim=8, query_text_rate=0.5, ranking_weight=0, history_negatives=True
    )
    model = Recommender(space, config)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    batch = {
        **_batch(),
        "user_id": tf.constant(["u1"] * 4),
        "history_item_ids": tf.ragged.constant([["rare"]] * 4),
        "timestamp": tf.zeros([4], tf.int64),
    }
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(300), epochs=1, verbose=0)
    features = {
        "user_id": tf.constant(["u1"] * 4),
        "history_item_ids": tf.ragged.constant([["rare"]] * 4),
        "timestamp": tf.zeros([4], tf.int64),
        "query_text_embedding": tf.constant(space.text_embeddings),
    }
    scores = tf.matmul(
        model.query_embedding(features),
        model.candidate_embedding(tf.constant(space.catalog_ids)),
        transpose_b=True,
    ).numpy()
    assert scores.argmax(axis=1).tolist() == [0, 1, 2, 3]


def test_implicit_feedback_ranking_gets_in_batch_negatives():
    space = _space()
    space.implicit_labels = True
    model = Recommender(space, ModelConfig(embedding_dim=8))
    assert model.ranking_negatives == 1
    batch = _batch()
    query = model.query_vector(batch)
    items = tf.constant(["pop", "rare", "pop", "cold"])
    candidate = model.candidate_vector(items)
    labels, predictions, weights = model.ranking_examples(
        query, candidate, items, tf.ones([4]), tf.constant([1.0, 2.0, 1.0, 1.0])
    )
    assert labels.numpy().tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    # Row i's negative is row i-1's item; row 2's would be "rare" ≠ "pop"; row 0's is "cold".
    assert weights.numpy().tolist() == [1, 2, 1, 1, 1, 2, 1, 1]
    np.testing.assert_allclose(
        predictions.numpy()[4:], model.rank(query, tf.roll(candidate, 1, axis=0)).numpy(), atol=1e-6
    )
    same = tf.constant(["pop", "pop", "rare", "rare"])
    _, _, weights = model.ranking_examples(
        query, model.candidate_vector(same), same, tf.ones([4]), None
    )
    assert weights.numpy().tolist() == [1, 1, 1, 1, 1, 0, 1, 0]
    explicit = Recommender(_space(), ModelConfig(embedding_dim=8))
    assert explicit.ranking_negatives == 0


# Two replicas in one process: the CPU split into two logical devices, which TensorFlow allows
# only before it starts, hence a fresh process. Ranking only, without in-batch negatives, so
# that an example's loss does not depend on the rest of its batch: one global batch of 4 on two
# replicas (2 each) must then train as one replica on all 4 does.
_TWO_REPLICAS = """
import json

import pipeline.core.keras2
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from models.recommender import Recommender
from pipeline.core.config import ModelConfig
from tests.models.test_recommender import _batch, _space

config = ModelConfig(
    embedding_dim=8, retrieval_weight=0.0, ranking_negatives=0, query_text_rate=0.0
)
initial = None


def step(strategy):
    global initial
    with strategy.scope():
        model = Recommender(_space(), config)
        strategy.run(model.compute_loss, args=(_batch(),))  # builds the variables
        initial = initial or model.get_weights()
        model.set_weights(initial)
        model.compile(optimizer=tf.keras.optimizers.SGD(0.5))  # no Adam: it hides the scale
    logs = model.fit(tf.data.Dataset.from_tensors(_batch()), verbose=0).history
    return {k: v[0] for k, v in logs.items()}, model.get_weights()


one, one_weights = step(tf.distribute.get_strategy())
two, two_weights = step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
change = max(float(abs(a - b).max()) for a, b in zip(one_weights, initial))
gap = max(float(abs(a - b).max()) for a, b in zip(one_weights, two_weights))
print(json.dumps({"one": one, "two": two, "change": change, "gap": gap}))
"""


def test_two_replicas_train_and_report_as_one():
    """Each replica's loss is its share of the global batch's mean: the loss and RMSE Keras
    reports and the weights after a step are those of one replica on the whole batch."""
    out = run_fresh_python(_TWO_REPLICAS)
    for name in ("loss", "rmse"):
        assert out["two"][name] == pytest.approx(out["one"][name], rel=1e-5), name
    assert out["change"] > 1e-3  # the step moved the weights
    assert out["gap"] < 1e-5 * out["change"] + 1e-6
