"""The serving module in process, over the exported fixture's trained model: MMR on the model's
own item vectors, the compiled and executor paths side by side, explanations, and malformed
requests. Its parts alone: tests/serving/test_ids.py, test_core.py, test_checks.py, test_index.py,
test_buckets.py."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models.train import load_feature_space, load_trained_model
from serving import top_k
from serving.module import RecommenderServing


def test_mmr_on_candidate_vectors_handles_ids_outside_the_catalog(exported):
    config, _ = exported
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    serving = dataclasses.replace(config.serving, mmr_embedding="candidate")
    module = RecommenderServing(model, space.catalog_ids, space.text_embeddings, None, serving)
    np.testing.assert_allclose(module.similarity_vectors(), module.index.numpy(), atol=1e-6)
    ids = [*space.catalog_ids[:4], "not-in-the-catalog"]
    out = module.mmr(
        item_ids=tf.constant([ids]),
        relevance=tf.constant([[0.1, 0.2, 0.3, 0.4, 1.0]]),
        k=tf.constant([5]),
        mmr_lambda=tf.constant([1.0]),
    )
    assert out["item_ids"].numpy()[0].astype(str).tolist() == ids[::-1]


def test_the_precomputed_item_table_gives_the_models_query_vectors(exported):
    config, _ = exported
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    module = RecommenderServing(model, space.catalog_ids, None, None, config.serving)
    history = tf.constant([[*space.catalog_ids[:3], ""], ["unknown-item", "", "", ""]])
    features = {
        "user_id": tf.constant([space.user_ids[0], "stranger"]),
        "history_item_ids": tf.ragged.boolean_mask(history, history != ""),
        "timestamp": tf.constant([1_700_000_000, 0], tf.int64),
    }
    np.testing.assert_allclose(
        module._query_vector(features).numpy(), model.query_vector(features).numpy(), atol=1e-5
    )


@pytest.mark.parametrize("blocked", [False, True])
def test_compiled_and_executor_modules_agree(exported, monkeypatch, blocked):
    """`serving.xla` changes how recommend and mmr run, not what they return: batches of
    several sizes, histories with repeats, padding and unknown ids, exclusion on and off.
    `blocked`: the compiled retrieval takes its top-k in blocks, as over a large catalog."""
    config, _ = exported
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    serving = config.serving
    if blocked:  # 10 of 60 items: 30 blocks of 2, of which the top 10
        serving = dataclasses.replace(serving, num_candidates=10)
        monkeypatch.setattr(top_k, "_MIN_SCORES_PER_PICK", 1)
        assert top_k.block_width(len(space.catalog_ids), 10) == 2
    modules = {
        xla: RecommenderServing(
            model,
            space.catalog_ids,
            space.text_embeddings,
            None,
            dataclasses.replace(serving, xla=xla),
        )
        for xla in (True, False)
    }
    items = space.catalog_ids
    histories = [[items[0], items[1], items[0], ""], ["unknown-item", "", "", ""], [items[5]] * 4]
    for batch in (1, 3):
        request = {
            "user_id": tf.constant([space.user_ids[0], "stranger", space.user_ids[1]][:batch]),
            "history_item_ids": tf.constant(histories[:batch]),
            "query": tf.constant([""] * batch),
            # Not 0 ("now"): now moves between the two modules' calls, and so would the
            # time-of-day features.
            "timestamp": tf.constant(
                [1_700_000_000, 1_650_000_000, 1_600_000_000][:batch], tf.int64
            ),
            "k": tf.constant([5, 3, 7][:batch]),
            "mmr_lambda": tf.constant([0.5, 1.0, 0.0][:batch]),
            "exclude_seen": tf.constant([True, False, True][:batch]),
        }
        compiled, executor = (modules[xla].recommend(**request) for xla in (True, False))
        for name in ("item_ids", "explanation_item_ids"):
            np.testing.assert_array_equal(compiled[name].numpy(), executor[name].numpy())
        for name in ("scores", "relevance", "explanation_scores"):  # XLA fuses, rounds apart
            np.testing.assert_allclose(compiled[name].numpy(), executor[name].numpy(), atol=1e-4)
        mmr_request = {
            "item_ids": tf.constant([items[:9], [*items[9:17], items[9]], items[3:12]][:batch]),
            "relevance": tf.constant(np.random.default_rng(batch).random((batch, 9)), tf.float32),
            "k": tf.constant([4, 8, 9][:batch]),
            "mmr_lambda": tf.constant([0.3, 0.7, 1.0][:batch]),
        }
        compiled, executor = (modules[xla].mmr(**mmr_request) for xla in (True, False))
        np.testing.assert_array_equal(compiled["item_ids"].numpy(), executor["item_ids"].numpy())
        np.testing.assert_allclose(
            compiled["scores"].numpy(), executor["scores"].numpy(), atol=1e-5
        )


def _module(exported, **serving):
    """A module of the exported fixture's trained model, without a text encoder."""
    config, _ = exported
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    settings = dataclasses.replace(config.serving, **serving)
    return RecommenderServing(
        model, space.catalog_ids, space.text_embeddings, None, settings
    ), space


def test_a_module_without_a_text_encoder_refuses_a_query_in_every_signature_taking_one(exported):
    module, space = _module(exported, xla=False)
    ids = space.catalog_ids

    def request(query):
        return {
            "user_id": tf.constant(["u", "v"]),
            "history_item_ids": tf.constant([ids[:2], ["", ""]]),
            "query": tf.constant(query),
            "timestamp": tf.constant([0, 0], tf.int64),
        }

    calls = {
        "recommend": lambda q: module.recommend(
            **request(q),
            k=tf.constant([3, 3]),
            mmr_lambda=tf.constant([0.5, 0.5]),
            exclude_seen=tf.constant([True, True]),
        ),
        "retrieve": lambda q: module.retrieve(
            **request(q), k=tf.constant([3, 3]), exclude_seen=tf.constant([True, True])
        ),
        "rank": lambda q: module.rank(**request(q), item_ids=tf.constant([ids[2:4]] * 2)),
    }
    for name, call in calls.items():
        call(["", "  "])  # empty (or blank) queries are what such a model takes
        with pytest.raises(tf.errors.InvalidArgumentError, match="query must be empty") as e:
            call(["", "a warm winter coat"])
        assert "this model has no text encoder" in e.value.message, name


@pytest.mark.parametrize("xla", [True, False])
def test_a_history_id_outside_the_catalog_never_explains(exported, xla):
    """An id outside the catalog has the similarity of a zero vector: 0, more than any
    negative cosine, so unmasked it would explain the picks least like the known item."""
    module, space = _module(exported, xla=xla, mmr_embedding="candidate")
    # Every other item turned to face the opposite way, so some pairs are surely unlike (a
    # trained model may put the whole catalog in one half-space).
    table = module.catalog_table.numpy()
    table[2::2, : module.similarity_dim] *= -1.0
    module.catalog_table.assign(table)
    similarity = module.similarity_vectors()
    cosines = similarity @ similarity.T
    known = int(np.argmin(cosines.min(axis=1)))  # the item with the most negative cosine
    unlike = np.flatnonzero(cosines[known] < 0)
    assert unlike.size  # the case this guards against
    # Directly: a history of the known item, an unknown id and the "" pad.
    history_rows = tf.constant([[known + 1, 0, 0]])
    valid = tf.constant([[True, True, False]])
    positions, scores = module._explain(tf.constant([unlike[:5]], tf.int32), history_rows, valid)
    assert positions.numpy().tolist() == [[0] * min(5, unlike.size)]
    np.testing.assert_allclose(scores.numpy()[0], cosines[known, unlike[:5]], atol=1e-5)

    ids = space.catalog_ids
    out = module.recommend(
        user_id=tf.constant(["u", "v"]),
        history_item_ids=tf.constant([[ids[known], "no-such-item"], ["zzz", "no-such-item"]]),
        query=tf.constant(["", ""]),
        timestamp=tf.constant([1_700_000_000] * 2, tf.int64),
        k=tf.constant([10, 10]),
        mmr_lambda=tf.constant([0.5, 0.5]),
        exclude_seen=tf.constant([True, True]),
    )
    explained = out["explanation_item_ids"].numpy().astype(str)
    assert explained[0].tolist() == [ids[known]] * 10
    assert explained[1].tolist() == [""] * 10  # only unknown ids: no explanation
    assert out["explanation_scores"].numpy()[1].tolist() == [0.0] * 10


# ------------------------------------------------------------------------ malformed requests
#
# What a loaded signature or TF Serving hands the graph is not held to the signature's shapes:
# the concrete functions below take any shape, as they do. (A module's tf.function refuses a
# value its input signature does not fit before any graph runs, with a TypeError.)


@pytest.fixture(scope="module")
def both_paths(exported):
    """{serving.xla: module} over the exported fixture's trained model, and its feature space."""
    modules = {xla: _module(exported, xla=xla)[0] for xla in (True, False)}
    return modules, load_feature_space(exported[0])


def _requests(ids: list[str], rows: int) -> dict[str, dict[str, tf.Tensor]]:
    """A well-formed request of every signature with `rows` rows."""

    def column(value, dtype):
        return tf.constant([value] * rows, dtype, shape=[rows, *np.shape(value)])

    query = {
        "user_id": column("u", tf.string),
        "history_item_ids": column(ids[:2], tf.string),
        "query": column("", tf.string),
        "timestamp": column(1_700_000_000, tf.int64),
    }
    k, lam, exclude = column(3, tf.int32), column(0.5, tf.float32), column(True, tf.bool)
    return {
        "serving_default": {**query, "k": k, "mmr_lambda": lam, "exclude_seen": exclude},
        "retrieve": {**query, "k": k, "exclude_seen": exclude},
        "rank": {**query, "item_ids": column(ids[2:6], tf.string)},
        "mmr": {
            "item_ids": column(ids[:4], tf.string),
            "relevance": column([0.4, 0.3, 0.2, 0.1], tf.float32),
            "k": k,
            "mmr_lambda": lam,
        },
        "similar_items": {"item_ids": tf.constant(ids[:rows], tf.string, [rows]), "k": k},
    }


_FUNCTIONS = {
    "serving_default": "recommend",
    "retrieve": "retrieve",
    "rank": "rank",
    "mmr": "mmr",
    "similar_items": "similar_items",
}


def _signature(module, name):
    return getattr(module, _FUNCTIONS[name]).get_concrete_function()


@pytest.mark.parametrize("xla", [True, False])
@pytest.mark.parametrize("signature", sorted(_FUNCTIONS))
def test_a_batch_of_no_rows_gets_an_answer_of_no_rows(both_paths, signature, xla):
    """retrieve and similar_items took the top max(k) of no k, INT_MIN: TopKV2 refused it."""
    modules, space = both_paths
    out = _signature(modules[xla], signature)(**_requests(space.catalog_ids, 0)[signature])
    assert out and all(value.shape[0] == 0 for value in out.values()), out


def _other_ranks(value: tf.Tensor) -> list[tf.Tensor]:
    """`value` as a scalar, with a dimension more, and (2-D) as one value per row."""
    forms = [tf.reshape(value, [-1])[0], value[..., tf.newaxis]]
    return [*forms, value[:, 0]] if value.shape.rank == 2 else forms


@pytest.mark.parametrize("xla", [True, False])
@pytest.mark.parametrize("signature", sorted(_FUNCTIONS))
def test_an_input_of_another_rank_fails_naming_it(both_paths, signature, xla):
    """Every input of every signature: a 1-D history_item_ids (a bare id per REST instance)
    failed in strided_slice, a 2-D k in ConcatV2 or Pack, a scalar user_id in strided_slice."""
    modules, space = both_paths
    fn = _signature(modules[xla], signature)
    request = _requests(space.catalog_ids, 2)[signature]
    for name, value in request.items():
        layout = "[batch, n], rank 2" if value.shape.rank == 2 else "[batch], rank 1"
        for bad in _other_ranks(value):
            with pytest.raises(tf.errors.InvalidArgumentError) as e:
                fn(**{**request, name: bad})
            assert f"{name} must be {layout}; got shape" in e.value.message


@pytest.mark.parametrize("xla", [True, False])
@pytest.mark.parametrize("signature", sorted(_FUNCTIONS))
def test_an_input_with_another_number_of_rows_fails_naming_one(both_paths, signature, xla):
    """mmr's k with a row more or less than item_ids failed in LessEqual ("Incompatible shapes:
    [2] vs. [3]") when its k ≤ distinct ids check ran before the check of k's rows: a race, which
    2 calls in 30 lost."""
    modules, space = both_paths
    fn = _signature(modules[xla], signature)
    request = _requests(space.catalog_ids, 3)[signature]
    named = r"must have one row per request|relevance must have the shape of item_ids"
    for name, value in request.items():
        for bad in (value[:2], tf.concat([value, value[:1]], axis=0)):
            with pytest.raises(tf.errors.InvalidArgumentError, match=named):
                fn(**{**request, name: bad})


@pytest.mark.parametrize("signature", ["serving_default", "retrieve", "rank"])
def test_a_history_over_the_limit_fails_naming_history_item_ids(both_paths, signature):
    """The message said "history length", which names no input."""
    modules, space = both_paths
    module = modules[False]
    request = _requests(space.catalog_ids, 1)[signature]
    too_long = tf.fill([1, module.config.max_history + 1], space.catalog_ids[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_item_ids must be in"):
        _signature(module, signature)(**{**request, "history_item_ids": too_long})


def test_the_module_functions_refuse_another_rank_before_the_graph(both_paths):
    modules, space = both_paths
    request = _requests(space.catalog_ids, 1)["retrieve"]
    bad = {**request, "history_item_ids": request["history_item_ids"][:, 0]}
    with pytest.raises(TypeError, match="history_item_ids"):
        modules[False].retrieve(**bad)


@pytest.mark.parametrize("xla", [True, False])
@pytest.mark.parametrize(
    "relevance",
    [
        [np.inf, 0.9, 0.8, 0.7, 0.6],  # answered [0, inf, -0.14]
        [0.5, np.nan, 0.8, 0.7, 0.6],  # answered NaN and inf scores
        [-np.inf, 0.9, 0.8, 0.7, 0.6],  # failed: indices[0,0] = 5 is not in [0, 5)
        [np.nan] * 5,  # the same
    ],
)
def test_mmr_refuses_non_finite_relevance_naming_it(both_paths, relevance, xla):
    modules, space = both_paths
    fn = _signature(modules[xla], "mmr")
    request = {
        "item_ids": tf.constant([space.catalog_ids[:5]]),
        "relevance": tf.constant([relevance], tf.float32),
        "k": tf.constant([3]),
        "mmr_lambda": tf.constant([0.5]),
    }
    with pytest.raises(tf.errors.InvalidArgumentError, match="relevance must be finite"):
        fn(**request)


@pytest.mark.parametrize("xla", [True, False])
def test_mmr_ignores_the_relevance_of_pads_and_repeats(both_paths, xla):
    """MMR never reads a pad's or a repeat's relevance, so any value there answers, the same
    as a finite one."""
    modules, space = both_paths
    fn = _signature(modules[xla], "mmr")
    ids = space.catalog_ids
    request = {
        "item_ids": tf.constant([[ids[0], "", ids[1], ids[2], ids[0]]] * 2),
        "k": tf.constant([3, 3]),
        "mmr_lambda": tf.constant([0.5, 0.5]),
    }
    finite = fn(**request, relevance=tf.constant([[0.9, 0.0, 0.5, 0.1, 0.0]] * 2))
    wild = fn(**request, relevance=tf.constant([[0.9, np.nan, 0.5, 0.1, -np.inf]] * 2))
    for name in ("item_ids", "scores", "relevance"):
        np.testing.assert_array_equal(wild[name].numpy(), finite[name].numpy())
    assert np.isfinite(wild["scores"].numpy()).all()


@pytest.mark.parametrize("xla", [True, False])
def test_a_query_with_full_weight_ranks_as_plain_text_search(exported, xla):
    """`serving.query_weight` 1: a new user's query retrieves the items whose text embeddings
    are closest to the query's, in that order, in `retrieve` and in `recommend` (λ = 1)."""
    from models.query_blend import text_index
    from pipeline.embed.text_encoder import encode_texts
    from serving.export import _text_encoder

    config, _ = exported
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    encoder = _text_encoder(config, space)
    settings = dataclasses.replace(config.serving, query_weight=1.0, xla=xla)
    module = RecommenderServing(model, space.catalog_ids, space.text_embeddings, encoder, settings)
    queries = ["a warm winter coat", "running shoes"]
    cosines = encode_texts(encoder, queries) @ text_index(space.text_embeddings).T
    expected = np.asarray(space.catalog_ids)[np.argsort(-cosines, axis=1, kind="stable")[:, :5]]
    request = {
        "user_id": tf.constant(["new-1", "new-2"]),
        "history_item_ids": tf.constant([[""], [""]]),
        "query": tf.constant(queries),
        "timestamp": tf.constant([0, 0], tf.int64),
        "k": tf.constant([5, 5]),
        "exclude_seen": tf.constant([True, True]),
    }
    retrieved = module.retrieve(**request)["item_ids"].numpy().astype(str)
    np.testing.assert_array_equal(retrieved, expected)
    recommended = module.recommend(**request, mmr_lambda=tf.constant([1.0, 1.0]))
    assert set(recommended["item_ids"].numpy().astype(str)[0]) <= set(
        np.asarray(space.catalog_ids)[np.argsort(-cosines[0])[: settings.num_candidates]]
    )
