"""`recsys train`: trains from the TFRecords, resumes after an interruption, publishes weights."""

import json
import os

import pytest
import tensorflow as tf

from models import train
from pipeline import embed_items, preprocess
from pipeline.config import load_config
from pipeline.errors import DataError
from pipeline.sample_data import generate, write_sample_data
from tests.models.tiny_bert import write_checkpoint


def _config(work, *overrides):
    return load_config(
        None,
        [
            f"work_dir={work}",
            "sample_data.n_users=40",
            "sample_data.n_items=60",
            "data.items.extra_text_fields=[brand]",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
            "model.embedding_dim=8",
            "model.deep_layers=[8]",
            "train.batch_size=64",
            "train.shuffle_buffer=1000",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    work = tmp_path_factory.mktemp("train") / "work"
    checkpoint = write_checkpoint(work.parent / "tiny")
    config = _config(work, f"text.checkpoint={checkpoint}", "text.max_length=16")
    write_sample_data(generate(config.sample_data), config.data_path(), "jsonl")
    preprocess.run(config)
    embed_items.run(config)
    return work, checkpoint


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("killed after the first epoch")


def test_a_killed_training_resumes_from_the_last_epoch(prepared):
    work, checkpoint = prepared
    config = _config(
        work, f"text.checkpoint={checkpoint}", "train.epochs=3", "train.early_stopping_patience=0"
    )
    with pytest.raises(KeyboardInterrupt):
        train.train(config, callbacks=[_Interrupt()])
    assert not os.path.exists(os.path.join(config.step_dir("model"), "trained"))
    manifest = train.train(config)
    assert manifest["epochs_run"] == 2  # epochs 2 and 3: the first was not repeated
    trained = os.path.join(config.step_dir("model"), "trained")
    with open(os.path.join(trained, "manifest.json")) as f:
        assert json.load(f)["epochs_run"] == 2
    assert tf.train.latest_checkpoint(trained)
    assert os.listdir(os.path.join(config.step_dir("model"), "tensorboard"))


def test_ids_only_training_without_embeddings(prepared):
    work, _ = prepared
    config = _config(work, "model.use_text=false", "train.epochs=1")
    manifest = train.train(config)
    assert manifest["feature_space"]["text_dim"] == 0
    assert manifest["history"]["loss"][0] > 0


def test_training_needs_the_earlier_steps(tmp_path):
    with pytest.raises(DataError, match="run `recsys preprocess` first"):
        train.train(_config(tmp_path / "work"))
