"""`recsys train`: trains from the TFRecords, resumes after an interruption, publishes weights."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from models import train
from pipeline.core.errors import DataError
from tests.models.conftest import small_config as _config


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("killed after the first epoch")


def test_a_killed_training_resumes_from_the_last_epoch(workspace):
    work, checkpoint = workspace
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


def test_a_killed_run_with_other_settings_is_not_resumed(workspace):
    """Changing the model between a killed run and the next must not load the killed run's
    weights into the new model or skip its epochs."""
    work, checkpoint = workspace
    settings = [
        f"text.checkpoint={checkpoint}",
        "train.epochs=2",
        "train.early_stopping_patience=0",
    ]
    with pytest.raises(KeyboardInterrupt):
        train.train(_config(work, *settings), callbacks=[_Interrupt()])
    manifest = train.train(_config(work, *settings, "model.history_pooling=attention"))
    assert manifest["epochs_run"] == 2  # from the start
    assert manifest["model"]["history_pooling"] == "attention"


def test_ids_only_training_without_embeddings(workspace):
    work, _ = workspace
    config = _config(work, "model.use_text=false", "train.epochs=1")
    manifest = train.train(config)
    assert manifest["feature_space"]["text_dim"] == 0
    assert manifest["history"]["loss"][0] > 0


def test_training_needs_the_earlier_steps(tmp_path):
    with pytest.raises(DataError, match="run `recsys preprocess` first"):
        train.train(_config(tmp_path / "work"))


def _weights(config):
    space = train.load_feature_space(config)
    return [w.numpy() for w in train.load_trained_model(config, space).weights]


def test_trained_weights_do_not_depend_on_the_eval_split(workspace, tmp_path):
    """Model selection reads the validation slice of train: replacing every eval event leaves
    the trained weights bit for bit the same."""
    work, checkpoint = workspace
    settings = [
        f"text.checkpoint={checkpoint}",
        "train.epochs=3",
        "train.early_stopping_patience=1",
        "train.deterministic=true",
    ]
    config = _config(work, *settings)
    manifest = train.train(config)
    assert manifest["best_epochs"] is not None and manifest["refit"]
    assert len(manifest["selection"]["val_loss"]) >= 1
    first = _weights(config)

    other = tmp_path / "other"
    shutil.copytree(work / "preprocess", other / "preprocess")
    shutil.copytree(work / "embeddings", other / "embeddings")
    eval_files = sorted(glob.glob(str(other / "preprocess" / "eval" / "*.tfrecord.gz")))
    train_files = sorted(glob.glob(str(other / "preprocess" / "train" / "*.tfrecord.gz")))
    for path in eval_files:  # eval now holds train events instead
        shutil.copyfile(train_files[0], path)
    second_config = _config(other, *settings)
    train.train(second_config)
    second = _weights(second_config)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
