"""`recsys train`: fits the recommender on the preprocess TFRecords.

Input comes through `pipeline.core.reader` (the schema module's features, parallel reads, shuffling,
caching, prefetch). Training backs itself up every epoch and, when a run was interrupted,
resumes from the last completed epoch (`BackupAndRestore`); the number of epochs is chosen on
the validation slice of train (never on the eval split, which only `recsys evaluate` reads);
TensorBoard logs go to `<work_dir>/model/tensorboard`. The trained weights are published in
`<work_dir>/model/trained/` with a manifest, only when training finished.

With `train.strategy: multi_worker` every worker of the cluster runs this same function; only
the chief writes the shared files (`models.distributed`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import tensorflow as tf

from models.distributed import (
    barrier,
    distribution_strategy,
    split_each_batch,
    writes_shared,
)
from models.features import FeatureSpace
from models.recommender import Recommender
from pipeline.core import schema
from pipeline.core.config import Config
from pipeline.core.errors import DataError
from pipeline.core.manifest import (
    code_version,
    file_sha256,
    publish_dir,
    read_json,
    write_json_atomic,
)
from pipeline.core.progress import say
from pipeline.core.reader import make_dataset
from pipeline.core.staging import staging_dir
from pipeline.core.timestamps import format_timestamp

__all__ = [
    "build_model",
    "load_feature_space",
    "load_trained_model",
    "train",
]

STEP = "model"


def load_feature_space(config: Config) -> FeatureSpace:
    """Vocabularies and item tables from the preprocess (and, with text, embeddings) outputs."""
    pre_dir = config.step_dir("preprocess")
    if not os.path.exists(schema.output_pattern(pre_dir, "manifest")):
        raise DataError(f"no preprocess output in {pre_dir!r}; run `recsys preprocess` first")
    embeddings = config.step_dir("embeddings") if config.model.use_text else None
    if embeddings and not os.path.exists(schema.output_pattern(embeddings, "manifest")):
        raise DataError(
            f"model.use_text is on but {embeddings!r} has no embeddings; run "
            "`recsys embed-items` (or set model.use_text=false)"
        )
    return FeatureSpace.load(pre_dir, embeddings, config.preprocess.vocab.num_oov_buckets)


def build_model(config: Config, space: FeatureSpace) -> Recommender:
    model = Recommender(space, config.model, config.preprocess.history_length)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.train.learning_rate))
    return model


def load_trained_model(config: Config, space: FeatureSpace) -> Recommender:
    """The model with the weights `recsys train` published.

    Raises:
      DataError: when there is no trained model.
    """
    weights = os.path.join(config.step_dir(STEP), "trained", "weights")
    if not tf.train.latest_checkpoint(os.path.dirname(weights)):
        raise DataError(f"no trained model in {os.path.dirname(weights)!r}; run `recsys train`")
    model = build_model(config, space)
    _create_variables(model, config.model.embedding_dim)
    model.load_weights(weights).expect_partial()
    return model


def trained_id(config: Config) -> str | None:
    """A fingerprint of the published weights (the SHA-256 of their manifest, which a new
    training run always rewrites); None when nothing is published. Evaluation records it, so
    the export can tell whether its metrics belong to the weights it serves."""
    path = os.path.join(config.step_dir(STEP), "trained", "manifest.json")
    if not os.path.exists(path):
        return None
    return file_sha256(path)


def _create_variables(model: Recommender, dim: int) -> None:
    """Calls every tower once, so the model's variables exist without a training step."""
    model.query_vector(
        {
            "user_id": tf.constant([""]),
            "history_item_ids": tf.ragged.constant([[""]]),
            "timestamp": tf.constant([0], tf.int64),
        }
    )
    model.candidate_vector(tf.constant([""]))
    model.rank(tf.zeros([1, dim]), tf.zeros([1, dim]))


def _fit(model, data, epochs, validation, backup, callbacks, patience=0) -> dict[str, list]:
    all_callbacks = [
        tf.keras.callbacks.BackupAndRestore(backup),
        tf.keras.callbacks.TensorBoard(os.path.join(os.path.dirname(backup), "tensorboard")),
        *callbacks,
    ]
    if patience:
        all_callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            )
        )
    return model.fit(
        data,
        validation_data=validation,
        epochs=epochs,
        callbacks=all_callbacks,
        verbose=1 if os.isatty(2) else 2,
    ).history


def _has_events(pattern: str) -> bool:
    """Whether any file of a TFRecord glob holds a record (an empty split leaves empty files)."""
    for path in tf.io.gfile.glob(pattern):
        for _ in tf.data.TFRecordDataset(path, compression_type="GZIP").take(1):
            return True
    return False


def train(config: Config, callbacks: list[tf.keras.callbacks.Callback] = ()) -> dict[str, Any]:
    """Trains (or resumes training) and returns the manifest of the trained model.

    Model selection reads the validation slice of train only, never the eval split: with early
    stopping on, the model is fitted on the train events and the epoch with the lowest
    validation loss is chosen; with `train.refit` a fresh model (same seed) is then fitted on
    train + validation for that many epochs, so the served model has seen every event before
    the eval split, as the baselines have. Without early stopping (or without validation
    events) the model is fitted on train + validation for `train.epochs`.

    Args:
      config: The configuration.
      callbacks: Extra Keras callbacks (tests use one to interrupt a run).
    """
    started = time.time()
    t = config.train
    strategy = distribution_strategy(t.strategy)  # first: multi_worker must precede any TF op
    tf.keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    space = load_feature_space(config)
    pre_dir = config.step_dir("preprocess")
    out_dir = config.step_dir(STEP)
    with strategy.scope():
        model = build_model(config, space)

    def events(patterns) -> tf.data.Dataset:
        return split_each_batch(
            make_dataset(
                patterns,
                schema.EVENTS,
                t.batch_size,  # the global batch: each worker takes its slice of it
                shuffle_buffer=t.shuffle_buffer,
                seed=t.seed,
                cache=True,
                drop_remainder=True,  # in-batch negatives: every step sees a full batch
            )
        )

    validation_pattern = schema.output_pattern(pre_dir, "validation")
    select = bool(t.epochs and t.early_stopping_patience and _has_events(validation_pattern))
    say(
        f"train: {len(space.user_ids):,} trained users, {len(space.catalog_ids):,} catalog items "
        f"({len(space.trained_item_ids):,} with train events), up to {t.epochs} epochs"
        + (", chosen on the validation slice" if select else "")
        + f" → {out_dir}"
    )
    selection: dict[str, Any] = {}
    history: dict[str, list] = {}
    chief = writes_shared(strategy)
    if chief:
        _discard_foreign_backups(out_dir, config)
    barrier(strategy)  # the other workers read the backups the chief has kept
    chosen = os.path.join(out_dir, "backup-selection.json")  # a killed refit skips selection
    if select and t.refit and os.path.exists(chosen):
        selection = read_json(chosen)
    elif select:
        validation = split_each_batch(
            make_dataset(validation_pattern, schema.EVENTS, t.batch_size, cache=True)
        )
        selection = _fit(
            model,
            events(schema.output_pattern(pre_dir, "train")),
            t.epochs,
            validation,
            os.path.join(out_dir, "backup"),
            callbacks,
            t.early_stopping_patience,
        )
        selection = {k: [float(x) for x in v] for k, v in selection.items()}
        if t.refit and chief:
            write_json_atomic(chosen, selection)
    if select:
        history = selection
        best = int(np.argmin(selection["val_loss"])) + 1
        if t.refit:
            say(f"train: best validation loss after {best} epoch(s); refit on train + validation")
            tf.keras.utils.set_random_seed(t.seed)
            with strategy.scope():
                model = build_model(config, space)
            history = _fit(
                model,
                events(schema.pre_eval_patterns(pre_dir)),
                best,
                None,
                os.path.join(out_dir, "backup-refit"),
                callbacks,
            )
    elif t.epochs:
        history = _fit(
            model,
            events(schema.pre_eval_patterns(pre_dir)),
            t.epochs,
            None,
            os.path.join(out_dir, "backup"),
            callbacks,
        )
    else:  # zero epochs: the initialized model, a floor for the validation gate
        _create_variables(model, config.model.embedding_dim)
    losses = selection.get("val_loss", [])
    manifest = {
        "step": "train",
        "code_version": code_version(),
        "created_at": format_timestamp(int(time.time())),
        "model": dict(vars(config.model)),
        "train": dict(vars(t)),
        "epochs_run": len(history.get("loss", [])),
        "history": {k: [float(x) for x in v] for k, v in history.items()},
        "selection": {k: [float(x) for x in v] for k, v in selection.items()},
        "best_val_loss": min(losses) if losses else None,
        "best_epochs": int(np.argmin(losses)) + 1 if losses else None,
        "refit": bool(select and t.refit),
        "feature_space": {
            "users": len(space.user_ids),
            "trained_items": len(space.trained_item_ids),
            "catalog_items": len(space.catalog_ids),
            "categories": len(space.categories),
            "text_dim": space.text_dim,
        },
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    _publish_weights(model, out_dir, manifest, strategy)
    if chief and os.path.exists(chosen):
        os.remove(chosen)
    return manifest


_BACKUPS = ("backup", "backup-refit", "backup-selection.json")


def _discard_foreign_backups(out_dir: str, config: Config) -> None:
    """Deletes the backups of a killed run whose model or training settings differ from this
    run's, and records this run's: `BackupAndRestore` would otherwise load weights of another
    architecture (or fail on their shapes) and skip the epochs that run had done."""
    settings = {"model": dict(vars(config.model)), "train": dict(vars(config.train))}
    settings["preprocess_history_length"] = config.preprocess.history_length
    stamp = os.path.join(out_dir, "backup-settings.json")
    if os.path.exists(stamp) and read_json(stamp) == json.loads(json.dumps(settings)):
        return
    for name in _BACKUPS:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(stamp, settings)


def _publish_weights(
    model: Recommender, out_dir: str, manifest: dict[str, Any], strategy: tf.distribute.Strategy
) -> None:
    """Publishes the weights and manifest in `<out_dir>/trained` (the chief, or a run on one
    machine); another worker saves its copy into a folder of its own, which is thrown away."""
    if not writes_shared(strategy):  # every worker saves: a save may need them all
        with tempfile.TemporaryDirectory(prefix="recsys-worker-") as private:
            model.save_weights(os.path.join(private, "weights"))
        return
    final = os.path.join(out_dir, "trained")
    staging = staging_dir(final)
    try:
        model.save_weights(os.path.join(staging, "weights"))
        write_json_atomic(os.path.join(staging, "manifest.json"), manifest)
        publish_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
