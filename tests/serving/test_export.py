"""The export: a fresh process calls every signature; the stages agree with each other; bad
arguments fail with INVALID_ARGUMENT naming the argument; padding as TF Serving's batching
does it changes nothing; warmup records run; a crash mid-export leaves no visible version."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import pipeline.embed.text_encoder
from models.train import load_feature_space
from serving import export as export_module
from serving.export import export, warmup_examples
from serving.versions import versions
from serving.warmup import read_warmup, replay_warmup
from tests.conftest import run_fresh_python


@pytest.fixture(scope="module")
def loaded(exported):
    config, path = exported
    return config, tf.saved_model.load(path), load_feature_space(config)


def _query(users, histories, queries=None):
    n = len(users)
    width = max(1, max(len(h) for h in histories))
    return {
        "user_id": tf.constant(users),
        "history_item_ids": tf.constant([list(h) + [""] * (width - len(h)) for h in histories]),
        "query": tf.constant(queries or [""] * n),
        "timestamp": tf.constant([1_700_000_000] * n, tf.int64),
    }


def _recommend(model, users, histories, k, lam, exclude=True, queries=None):
    n = len(users)
    return model.signatures["serving_default"](
        **_query(users, histories, queries),
        k=tf.constant([k] * n),
        mmr_lambda=tf.constant([lam] * n),
        exclude_seen=tf.constant([exclude] * n),
    )


_FRESH_PROCESS = """
import json, sys
# TF_USE_LEGACY_KERAS=1: inherited from the test process (tests/conftest.py sets it)
import tensorflow as tf
import tensorflow_text  # registers the TF Text ops, which TF Serving links in
model = tf.saved_model.load(sys.argv[1])
items = json.loads(sys.argv[2])
query = dict(user_id=tf.constant(["stranger"]), history_item_ids=tf.constant([items[:2]]),
             query=tf.constant(["a warm winter coat"]), timestamp=tf.constant([0], tf.int64))
out = {
    "serving_default": model.signatures["serving_default"](
        **query, k=tf.constant([3]), mmr_lambda=tf.constant([0.5]),
        exclude_seen=tf.constant([True])),
    "retrieve": model.signatures["retrieve"](**query, k=tf.constant([4]),
                                             exclude_seen=tf.constant([False])),
    "rank": model.signatures["rank"](**query, item_ids=tf.constant([items[:3]])),
    "mmr": model.signatures["mmr"](item_ids=tf.constant([items[:5]]),
                                   relevance=tf.constant([[5.0, 4.0, 3.0, 2.0, 1.0]]),
                                   k=tf.constant([2]), mmr_lambda=tf.constant([1.0])),
    "similar_items": model.signatures["similar_items"](item_ids=tf.constant([items[0]]),
                                                       k=tf.constant([3])),
}
print(json.dumps({s: {k: v.numpy().tolist() for k, v in o.items()} for s, o in out.items()},
                 default=lambda b: b.decode()))
"""


def test_a_fresh_process_calls_every_signature(exported, loaded):
    _, path = exported
    _, _, space = loaded
    fresh_process_calls_every_signature(path, space.catalog_ids)


def fresh_process_calls_every_signature(path: str, items: list[str]) -> None:
    """Loads the SavedModel at `path` in a new interpreter, calls each signature once (the
    catalog's `items` as ids) and checks every answer's shape and ids."""
    out = run_fresh_python(_FRESH_PROCESS, path, json.dumps(items[:5]))
    recommended = out["serving_default"]["item_ids"][0]
    assert len(recommended) == 3 and len(set(recommended)) == 3
    assert set(recommended) <= set(items) and not set(recommended) & set(items[:2])
    assert set(out["serving_default"]["explanation_item_ids"][0]) <= set(items[:2])
    assert len(out["retrieve"]["item_ids"][0]) == 4
    assert len(out["rank"]["scores"][0]) == 3
    assert out["mmr"]["item_ids"][0] == items[:2]  # λ = 1: the relevance order
    similar = out["similar_items"]["item_ids"][0]
    assert len(similar) == 3 and items[0] not in similar


def test_recommend_is_retrieve_then_rank_then_mmr(loaded):
    """recommend's relevance is exp(blend − the best blend), blend = retrieval cosine /
    temperature + log(ranking prediction); MMR on it gives recommend's list."""
    config, model, space = loaded
    n = config.serving.num_candidates
    users, histories = ["stranger", space.user_ids[0]], [space.catalog_ids[:3], []]
    query = _query(users, histories)
    exclude = tf.constant([True, True])
    retrieved = model.signatures["retrieve"](**query, k=tf.constant([n, n]), exclude_seen=exclude)
    ranked = model.signatures["rank"](**query, item_ids=retrieved["item_ids"])["scores"].numpy()
    blend = retrieved["scores"].numpy() / config.model.temperature + np.log(
        np.maximum(ranked, 1e-3)
    )
    relevance = np.exp(blend - blend.max(axis=1, keepdims=True)).astype(np.float32)
    for lam in (1.0, 0.3):
        expected = model.signatures["mmr"](
            item_ids=retrieved["item_ids"],
            relevance=tf.constant(relevance),
            k=tf.constant([7, 7]),
            mmr_lambda=tf.constant([lam, lam]),
        )
        got = _recommend(model, users, histories, 7, lam)
        assert got["item_ids"].numpy().tolist() == expected["item_ids"].numpy().tolist()
        np.testing.assert_allclose(got["relevance"], expected["relevance"], rtol=1e-4, atol=1e-5)
    # λ = 1: the blended order of the retrieved candidates, best first, relevance 1 on top.
    order = np.argsort(-relevance[0], kind="stable")[:7]
    top = _recommend(model, users, histories, 7, 1.0)
    assert top["item_ids"].numpy()[0].tolist() == retrieved["item_ids"].numpy()[0][order].tolist()
    assert top["relevance"].numpy()[0][0] == pytest.approx(1.0)


def test_exclude_seen_and_explanations(loaded):
    _, model, space = loaded
    history = space.catalog_ids[:4]
    with_seen = _recommend(model, ["u"], [history], 10, 1.0, exclude=False)
    without = _recommend(model, ["u"], [history], 10, 1.0, exclude=True)
    assert not set(without["item_ids"].numpy()[0].astype(str)) & set(history)
    explanations = without["explanation_item_ids"].numpy()[0].astype(str)
    assert set(explanations) <= set(history)
    assert (np.abs(without["explanation_scores"].numpy()) <= 1.0 + 1e-5).all()
    assert with_seen["item_ids"].shape == (1, 10)
    empty = _recommend(model, ["u"], [[]], 4, 0.7)
    assert empty["explanation_item_ids"].numpy().tolist() == [[b""] * 4]


def test_a_query_changes_the_recommendations_and_empty_inputs_work(loaded):
    _, model, _space = loaded
    base = _recommend(model, ["nobody"], [[]], 10, 1.0)
    queried = _recommend(model, ["nobody"], [[]], 10, 1.0, queries=["bright red running shoes"])
    assert base["item_ids"].shape == queried["item_ids"].shape == (1, 10)
    assert not np.allclose(base["relevance"], queried["relevance"])


def test_padding_like_tf_serving_batching_changes_nothing(loaded):
    """The server pads a short row with the request tensor's first element."""
    _, model, space = loaded
    history = space.catalog_ids[5:8]
    plain = _recommend(model, ["u"], [history], 5, 0.7)
    padded = _recommend(model, ["u"], [history + [history[0]] * 4], 5, 0.7)
    assert plain["item_ids"].numpy().tolist() == padded["item_ids"].numpy().tolist()
    ids = space.catalog_ids[:6]
    mmr = model.signatures["mmr"]
    args = dict(k=tf.constant([6]), mmr_lambda=tf.constant([1.0]))
    rel = [6.0, 5, 4, 3, 2, 1]
    once = mmr(item_ids=tf.constant([ids]), relevance=tf.constant([rel]), **args)
    twice = mmr(
        item_ids=tf.constant([ids + [ids[0]] * 3]), relevance=tf.constant([rel + [6.0] * 3]), **args
    )
    assert (
        once["item_ids"].numpy().tolist()
        == twice["item_ids"].numpy().tolist()
        == [[i.encode() for i in ids]]
    )


@pytest.mark.parametrize(
    ("signature", "change", "name"),
    [
        ("serving_default", {"k": [0]}, "k"),
        ("serving_default", {"k": [10_000]}, "k"),
        ("serving_default", {"mmr_lambda": [1.5]}, "mmr_lambda"),
        ("serving_default", {"mmr_lambda": [-0.1]}, "mmr_lambda"),
        ("serving_default", {"history_item_ids": [["x"] * 201]}, "history length"),
        ("serving_default", {"query": ["word " * 1000]}, "query length"),
        ("serving_default", {"k": [3, 3]}, "k must have one row per request"),
        ("retrieve", {"k": [10_000]}, "k"),
        ("mmr", {"k": [4]}, "k must not exceed the number of distinct item_ids"),
        ("mmr", {"mmr_lambda": [2.0]}, "mmr_lambda"),
        ("similar_items", {"k": [0]}, "k"),
    ],
)
def test_bad_arguments_fail_with_a_message_naming_them(loaded, signature, change, name):
    _, model, space = loaded
    ids = space.catalog_ids
    requests = {
        "serving_default": {
            **_query(["u"], [ids[:2]]),
            "k": [3],
            "mmr_lambda": [0.5],
            "exclude_seen": [True],
        },
        "retrieve": {**_query(["u"], [ids[:2]]), "k": [3], "exclude_seen": [True]},
        "mmr": {
            "item_ids": [ids[:3]],
            "relevance": [[1.0, 0.5, 0.2]],
            "k": [2],
            "mmr_lambda": [0.5],
        },
        "similar_items": {"item_ids": [ids[0]], "k": [3]},
    }
    fn = model.signatures[signature]
    inputs = {**requests[signature], **change}
    specs = fn.structured_input_signature[1]
    tensors = {key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        fn(**tensors)


def test_unknown_ids_are_handled(loaded):
    _, model, _ = loaded
    out = _recommend(model, ["who?"], [["no-such-item", "nor-this"]], 3, 0.5)
    assert out["item_ids"].shape == (1, 3) and all(out["item_ids"].numpy()[0])
    similar = model.signatures["similar_items"](
        item_ids=tf.constant(["no-such-item"]), k=tf.constant([2])
    )
    assert similar["item_ids"].shape == (1, 2)


def test_warmup_records_cover_every_signature_and_run(exported):
    _config, path = exported
    logs = read_warmup(path)
    names = {log.predict_log.request.model_spec.signature_name for log in logs}
    assert names == {"serving_default", "retrieve", "rank", "mmr", "similar_items"}
    assert {log.predict_log.request.model_spec.name for log in logs} == {"recommender"}
    # recommend compiles per batch-size bucket (serving.xla): every bucket up to the
    # server's batching limit is warmed up, once.
    batches = [
        log.predict_log.request.inputs["user_id"].tensor_shape.dim[0].size
        for log in logs
        if log.predict_log.request.model_spec.signature_name == "serving_default"
    ]
    assert _config.serving.batching.max_batch_size == 32
    assert sorted(batches) == [1, 2, 4, 8, 16, 32]
    outputs = replay_warmup(path)
    assert outputs["serving_default"]["item_ids"].shape[0] == 2


def test_export_writes_the_deployment_files_and_a_manifest(exported):
    _config, path = exported
    base = os.path.dirname(os.path.dirname(path))
    for name in ("models.config", "batching.config", "monitoring.config", "docker-compose.yml"):
        assert os.path.exists(os.path.join(base, name)), name
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["model_name"] == "recommender" and manifest["text_queries"] is True


def test_without_use_text_no_encoder_is_loaded_and_warmup_sends_no_query(
    loaded, monkeypatch, capsys
):
    config, _, space = loaded

    def no_bert(*args, **kwargs):
        raise AssertionError("the BERT checkpoint was loaded")

    monkeypatch.setattr(pipeline.embed.text_encoder, "build_text_encoder", no_bert)
    off = dataclasses.replace(config, model=dataclasses.replace(config.model, use_text=False))
    assert export_module._text_encoder(off, space) is None
    assert "no text encoder (model.use_text is off)" in capsys.readouterr().err
    # Such an export refuses a query (tests/serving/test_module.py): its warmup sends none.
    examples = warmup_examples(space, config.serving, text_queries=False)
    queries = [q for e in examples.values() for q in e.get("query", [])]
    assert queries and not any(queries)
    assert any(warmup_examples(space, config.serving)["serving_default"]["query"])


def test_a_crash_mid_export_leaves_no_visible_version(exported):
    config, _ = exported
    model_dir = os.path.join(config.serving.export_path(config.work_dir), "recommender")
    before = versions(model_dir)
    seen = []

    def crash(staging):
        seen.append(sorted(os.listdir(staging)))
        raise RuntimeError("injected crash")

    # Without XLA: the staging and publishing are the same, the warmup compiles nothing.
    config = dataclasses.replace(config, serving=dataclasses.replace(config.serving, xla=False))
    with pytest.raises(RuntimeError, match="injected"):
        export(config, fail_before_publish=crash)
    assert "saved_model.pb" in seen[0]  # the crash came after the model was written
    assert versions(model_dir) == before
    assert not [n for n in os.listdir(model_dir) if n.startswith(".tmp")]


def test_each_export_removes_all_but_the_newest_keep_exports(exported, tmp_path, capsys):
    config, _ = exported
    serving = dataclasses.replace(
        config.serving, export_base=str(tmp_path / "export"), keep_exports=2, xla=False
    )
    config = dataclasses.replace(config, serving=serving)
    model_dir = tmp_path / "export" / "recommender"
    for version in (1, 2, 3):  # earlier exports
        (model_dir / str(version)).mkdir(parents=True)
        (model_dir / str(version) / "saved_model.pb").write_text("earlier")

    manifest = export(config)

    assert manifest["version"] == 4
    assert versions(str(model_dir)) == [3, 4]
    assert sorted(os.listdir(model_dir)) == ["3", "4"]
    assert "removed version(s) 1, 2, keeping the newest 2" in capsys.readouterr().err
