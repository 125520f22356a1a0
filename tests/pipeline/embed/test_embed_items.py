"""`recsys embed-items`: Beam RunInference embeddings equal the Keras layer's, incrementally;
with `model.use_text` off, nothing is loaded or encoded and the manifest says so."""

import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.errors import DataError
from pipeline.core.reader import read_all
from pipeline.embed import embed_items
from pipeline.embed.embed_items import PlanEmbeddings, text_hash
from pipeline.embed.text_encoder import build_text_encoder, encode_texts
from pipeline.embed.text_inference import TextEncoderModelHandler
from pipeline.orchestrate.cli import main
from pipeline.preprocess import preprocess
from tests.pipeline.embed.tiny_bert import write_checkpoint

ITEMS = [
    {
        "item_id": "i1",
        "title": "Trail tent",
        "description": "Light camping tent.",
        "categories": "a",
    },
    {"item_id": "i2", "title": "Camp stove", "description": "", "categories": "a|b"},
    {
        "item_id": "i3",
        "title": "Chef knife",
        "description": "Steel knife for the chef.",
        "categories": "b",
    },
    {
        "item_id": "i4",
        "title": "Mystery novel",
        "description": "A detective book.",
        "categories": "c",
    },
]
EVENTS = [("u1", "i1", 10), ("u1", "i2", 20), ("u2", "i3", 30), ("u2", "i4", 40), ("u3", "i1", 50)]


def _write_raw(folder, items=ITEMS):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    lines = [json.dumps({"user_id": u, "item_id": i, "timestamp": t}) for u, i, t in EVENTS]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def _overrides(tmp_path, checkpoint, *overrides):
    return [
        f"work_dir={tmp_path / 'work'}",
        f"data.path={tmp_path / 'raw'}",
        "beam.direct_num_workers=1",
        "beam.direct_running_mode=in_memory",
        "preprocess.split.method=leave_last_out",
        f"text.checkpoint={checkpoint}",
        "text.max_length=24",
        "text.batch_size=2",
        *overrides,
    ]


def _config(tmp_path, checkpoint, *overrides):
    return load_config(None, _overrides(tmp_path, checkpoint, *overrides))


def _embeddings(config):
    pattern = schema.output_pattern(config.step_dir("embeddings"), "item_embeddings")
    return {r["item_id"]: r for r in read_all(pattern, schema.EMBEDDINGS)}


def _texts(config):
    pattern = schema.output_pattern(config.step_dir("preprocess"), "items")
    return {r["item_id"]: r["text"] for r in read_all(pattern, schema.ITEMS)}


def test_beam_embeddings_equal_the_keras_layer_and_reruns_are_incremental(tmp_path, checkpoint):
    _write_raw(tmp_path / "raw")
    config = _config(tmp_path, checkpoint)
    preprocess.run(config)
    first = embed_items.run(config)
    assert first["counts"] == {
        "items": 4,
        "encoded": 4,
        "reused": 0,
        "without_text": 0,
        "removed": 0,
    }
    records = _embeddings(config)
    texts = _texts(config)
    encoder = build_text_encoder(str(checkpoint), max_length=24)
    ids = sorted(texts)
    expected = encode_texts(encoder, [texts[i] for i in ids])
    got = np.array([records[i]["embedding"] for i in ids], dtype=np.float32)
    assert np.abs(got - expected).max() <= 1e-5
    assert all(records[i]["text_hash"] == text_hash(texts[i]) for i in ids)

    second = embed_items.run(config)
    assert (second["counts"]["encoded"], second["counts"]["reused"]) == (0, 4)
    np.testing.assert_array_equal(np.array([_embeddings(config)[i]["embedding"] for i in ids]), got)

    changed = [dict(i) for i in ITEMS[:3]]
    changed[2]["description"] = "A ceramic knife, very sharp."
    _write_raw(tmp_path / "raw", changed)
    preprocess.run(config)  # item i4 left the catalog, i3's text changed
    third = embed_items.run(config)
    assert third["counts"] == {
        "items": 3,
        "encoded": 1,
        "reused": 2,
        "without_text": 0,
        "removed": 1,
    }
    new_text = _texts(config)["i3"]
    assert "ceramic" in new_text
    np.testing.assert_allclose(
        _embeddings(config)["i3"]["embedding"], encode_texts(encoder, [new_text])[0], atol=1e-5
    )


def test_items_without_text_get_no_vector(tmp_path, checkpoint):
    _write_raw(tmp_path / "raw")
    config = _config(tmp_path, checkpoint, "text.fields=[description]")
    preprocess.run(config)
    manifest = embed_items.run(config)
    assert manifest["counts"]["without_text"] == 1
    record = _embeddings(config)["i2"]
    assert (record["has_text"], record["embedding"]) == (0, [])
    assert all(
        r["has_text"] == 1 and len(r["embedding"]) == 32
        for k, r in _embeddings(config).items()
        if k != "i2"
    )


def test_a_changed_encoder_setting_encodes_everything_again(tmp_path, checkpoint):
    _write_raw(tmp_path / "raw")
    config = _config(tmp_path, checkpoint)
    preprocess.run(config)
    embed_items.run(config)
    again = embed_items.run(_config(tmp_path, checkpoint, "text.max_length=8"))
    assert (again["counts"]["encoded"], again["counts"]["reused"]) == (4, 0)


def test_without_use_text_nothing_is_encoded_and_the_manifest_says_skipped(
    tmp_path, checkpoint, monkeypatch, capsys
):
    _write_raw(tmp_path / "raw")
    config = _config(tmp_path, checkpoint)
    preprocess.run(config)
    embed_items.run(config)  # an earlier run with text

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder was loaded")

    monkeypatch.setattr(TextEncoderModelHandler, "load_model", no_encoder)
    monkeypatch.setattr(embed_items, "encoder_fingerprint", no_encoder)
    off = ["model.use_text=false", f"text.checkpoint={tmp_path / 'no-such-checkpoint'}"]
    manifest = embed_items.run(_config(tmp_path, checkpoint, *off))

    assert manifest["skipped"] is True and "model.use_text is off" in manifest["reason"]
    assert manifest["counts"] == dict.fromkeys(
        ("items", "encoded", "reused", "without_text", "removed"), 0
    )
    folder = config.step_dir("embeddings")
    assert os.listdir(folder) == ["manifest.json"]  # the earlier embeddings are not current
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f) == manifest
    settings = [f"--set={o}" for o in _overrides(tmp_path, checkpoint, *off)]
    assert main(["embed-items", *settings]) == 0
    assert "Skipped, nothing encoded: model.use_text is off" in capsys.readouterr().out

    monkeypatch.undo()  # text on again: every item is encoded, none reused
    again = embed_items.run(config)
    assert (again["counts"]["encoded"], again["counts"]["reused"]) == (4, 0)
    assert "the last run was skipped" in capsys.readouterr().err


def test_embedding_needs_preprocess_output(tmp_path, checkpoint):
    with pytest.raises(DataError, match="run `recsys preprocess` first"):
        embed_items.run(_config(tmp_path, checkpoint))


def test_plan_reuses_only_unchanged_texts():
    previous = [
        (
            "same",
            {"item_id": "same", "text_hash": text_hash("a"), "has_text": 1, "embedding": [1.0]},
        ),
        (
            "edited",
            {"item_id": "edited", "text_hash": text_hash("old"), "has_text": 1, "embedding": [2.0]},
        ),
        (
            "gone",
            {"item_id": "gone", "text_hash": text_hash("x"), "has_text": 1, "embedding": [3.0]},
        ),
    ]
    catalog = [("same", "a"), ("edited", "new"), ("blank", "  "), ("fresh", "b")]
    with TestPipeline(runner="FnApiRunner") as p:
        plan = {
            "item": p | "Catalog" >> beam.Create(catalog),
            "previous": p | "Previous" >> beam.Create(previous),
        } | PlanEmbeddings()
        assert_that(plan.encode, equal_to([("edited", "new"), ("fresh", "b")]), label="encode")
        assert_that(
            plan.reused | beam.Map(lambda r: r["item_id"]), equal_to(["same"]), label="reused"
        )
        assert_that(
            plan.without_text | beam.Map(lambda r: (r["item_id"], r["has_text"], r["embedding"])),
            equal_to([("blank", 0, [])]),
            label="without_text",
        )
        assert_that(plan.removed, equal_to(["gone"]), label="removed")


def test_model_handler_in_run_inference(checkpoint):
    config = load_config(None, [f"text.checkpoint={checkpoint}", "text.batch_size=2"])
    texts = [("k1", "the camping tent"), ("k2", "hello world"), ("k3", "tea")]
    expected = encode_texts(build_text_encoder(str(checkpoint)), [t for _, t in texts])
    expected_by_key = {k: expected[i] for i, (k, _) in enumerate(texts)}
    with TestPipeline(runner="FnApiRunner") as p:
        out = (
            p
            | beam.Create(texts)
            | RunInference(KeyedModelHandler(TextEncoderModelHandler(config.text)))
            | beam.Map(
                lambda kv: (kv[0], float(np.abs(kv[1].inference - expected_by_key[kv[0]]).max()))
            )
            | beam.Map(lambda kv: (kv[0], kv[1] <= 1e-5))
        )
        assert_that(out, equal_to([("k1", True), ("k2", True), ("k3", True)]))
