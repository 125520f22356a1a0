"""`recsys export`: the trained model as a TF Serving version, written atomically.

The version is built in a hidden sibling folder (`<export_base>/<name>/.tmp-…`; TF Serving only
picks up integer-named folders), gets its warmup requests, is loaded back and every warmup
request is replayed against it, and only then renamed to `<export_base>/<name>/<version>/`. A
crash at any point before the rename leaves no visible version. The deployment files
(`models.config`, `batching.config`, `monitoring.config`, `docker-compose.yml`) are (re)written
in `<export_base>`, which is itself a model base a server can watch; `recsys push` copies a
version that passes the validation gate into `serving.model_base`. Versions beyond the newest
`serving.keep_exports` are removed after each export, so a scheduled retrain does not fill the
disk.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import numpy as np
import tensorflow as tf
from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

from models.features import FeatureSpace
from models.train import load_feature_space, load_trained_model, trained_id
from pipeline.core.config import Config, ServingConfig
from pipeline.core.errors import DataError
from pipeline.core.manifest import code_version, read_json, write_json_atomic
from pipeline.core.progress import say
from pipeline.core.staging import version_staging
from pipeline.core.timestamps import format_timestamp
from pipeline.embed import text_encoder
from serving.buckets import batch_buckets
from serving.deploy import write_deployment
from serving.drift import data_profile
from serving.module import RecommenderServing
from serving.versions import next_version, prune_versions
from serving.warmup import replay_warmup, warmup_requests, write_warmup

__all__ = ["MANIFEST", "export", "warmup_examples"]

MANIFEST = "manifest.json"  # in the version folder, beside saved_model.pb (TF Serving ignores it)


def warmup_examples(
    space: FeatureSpace, serving: ServingConfig, text_queries: bool = True
) -> dict[str, dict[str, Any]]:
    """A request per signature from the catalog itself: a known and an unknown user, a
    history, an empty one, a query and none, so every branch of the graph runs once.

    `text_queries` False (an export without a text encoder, which refuses a query): no query."""
    items = space.catalog_ids
    k = min(serving.default_k, serving.max_k, max(len(items) - 1, 1))
    user = space.user_ids[0] if space.user_ids else "user"
    history = [items[: min(3, len(items))], [""] * min(3, len(items))]
    query_rows = {
        "user_id": [user, "unknown-user"],
        "history_item_ids": history,
        "query": ["", "something to read on holiday" if text_queries else ""],
        "timestamp": [0, 1_700_000_000],
    }
    candidates = items[: max(k, min(len(items), 20))]
    return {
        "serving_default": {
            **query_rows,
            "k": [k, 1],
            "mmr_lambda": [serving.default_lambda, 1.0],
            "exclude_seen": [True, False],
        },
        "retrieve": {**query_rows, "k": [k, k], "exclude_seen": [True, False]},
        "rank": {**query_rows, "item_ids": [candidates, candidates]},
        "mmr": {
            "item_ids": [candidates],
            "relevance": [np.linspace(1.0, 0.0, len(candidates)).tolist()],
            "k": [k],
            "mmr_lambda": [serving.default_lambda],
        },
        "similar_items": {"item_ids": [items[0]], "k": [k]},
    }


def _bucket_requests(serving, example: dict[str, list]) -> list:
    """recommend requests of every batch-size bucket the compiled graph has up to the
    server's batching limit (1, 2, 4, ... ≥ `batching.max_batch_size`), but the example's
    own: each bucket compiles when the version loads, not on its first request (about a
    second each). Rows repeat the example's first (no query: BERT is not run)."""
    logs = []
    for size in batch_buckets(serving.batching.max_batch_size):
        if size != len(example["user_id"]):
            rows = {name: [values[0]] * size for name, values in example.items()}
            logs += warmup_requests(serving.model_name, {"serving_default": rows})
    return logs


def _text_encoder(config: Config, space: FeatureSpace):
    """The query encoder, or None without text (`model.use_text` off: the BERT checkpoint is
    neither loaded nor traced, and the export refuses a non-empty query)."""
    if not (config.model.use_text and space.text_dim):
        why = "no item has a text embedding" if config.model.use_text else "model.use_text is off"
        say(f"export: no text encoder ({why}); the exported model refuses queries")
        return None
    say("export: loading the text encoder for free-text queries")
    t = config.text
    encoder = text_encoder.build_text_encoder(t.checkpoint, t.max_length, t.pooling, t.normalize)
    if encoder.dimension != space.text_dim:
        raise DataError(
            f"text.checkpoint {t.checkpoint!r} gives {encoder.dimension}-d embeddings but the "
            f"item embeddings are {space.text_dim}-d; run `recsys embed-items` again"
        )
    return encoder


def _check_trained_on(config: Config, space: FeatureSpace) -> dict[str, Any]:
    manifest = read_json(os.path.join(config.step_dir("model"), "trained", "manifest.json"))
    trained = manifest.get("feature_space", {})
    if trained.get("catalog_items") != len(space.catalog_ids):
        raise DataError(
            f"the catalog has {len(space.catalog_ids):,} items but the model was trained on "
            f"{trained.get('catalog_items')!r}; run `recsys train` again after "
            "`recsys preprocess`"
        )
    return manifest


def export(config: Config, fail_before_publish=None) -> dict[str, Any]:
    """Exports the next version and returns its manifest.

    Args:
      config: The configuration.
      fail_before_publish: Test hook called with the staging folder just before the rename.
    """
    started = time.time()
    s = config.serving
    space = load_feature_space(config)
    trained = _check_trained_on(config, space)
    model = load_trained_model(config, space)
    encoder = _text_encoder(config, space)
    module = RecommenderServing(model, space.catalog_ids, space.text_embeddings, encoder, s)
    index = module.index_summary()
    if index["kind"] == "partitioned":
        say(
            f"export: a partitioned index: {index['partitions']:,} partitions of at most "
            f"{index['width']:,} items, {index['probes']} searched per request"
        )
    base = s.export_path(config.work_dir)
    model_dir = os.path.join(base, s.model_name)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir)
    staging = version_staging(model_dir, version)
    final = os.path.join(model_dir, str(version))
    say(
        f"export: version {version} of {s.model_name!r}, {len(space.catalog_ids):,} items → {final}"
    )
    try:
        # The Keras layers' own call functions are not traced into the export: the server
        # runs the signatures alone, and tracing every layer took a third of the export.
        with keras_option_scope(save_traces=False):
            tf.saved_model.save(module, staging, signatures=module.signatures())
        examples = warmup_examples(space, s, text_queries=encoder is not None)
        logs = warmup_requests(s.model_name, examples)
        if s.xla:
            logs = _bucket_requests(s, examples["serving_default"]) + logs
        write_warmup(staging, logs)
        say("export: replaying the warmup requests against the saved model")
        replay_warmup(staging)
        manifest = {
            "step": "export",
            "version": version,
            "model_name": s.model_name,
            "code_version": code_version(),
            "created_at": format_timestamp(int(time.time())),
            "catalog_items": len(space.catalog_ids),
            "text_queries": encoder is not None,  # False: a non-empty query is refused
            "index": index,
            "serving": {k: v for k, v in vars(s).items() if k not in ("batching",)},
            "trained": {k: trained.get(k) for k in ("created_at", "epochs_run", "best_val_loss")},
            "metrics": _evaluation_metrics(config),
            "data_profile": data_profile(config.step_dir("preprocess")),  # the drift check's
            "timings": {"seconds": round(time.time() - started, 2)},
        }
        write_json_atomic(os.path.join(staging, MANIFEST), manifest)
        if fail_before_publish is not None:
            fail_before_publish(staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_deployment(base, s)
    if s.keep_exports:
        removed = prune_versions(model_dir, s.keep_exports)
        if removed:
            listed = ", ".join(str(v) for v in removed)
            say(f"export: removed version(s) {listed}, keeping the newest {s.keep_exports}")
    say(f"export: done in {time.time() - started:.0f} s")
    return manifest


def _evaluation_metrics(config: Config) -> dict[str, Any] | None:
    """The evaluation's flat metrics, carried along for the validation gate (None when the
    model was not evaluated)."""
    path = os.path.join(config.step_dir("evaluation"), "metrics.json")
    if not os.path.exists(path):
        return None
    metrics = read_json(path)
    if metrics.get("trained_id") != trained_id(config):
        say(
            f"export: {path} belongs to other weights than the trained model's; the export "
            "carries no metrics (run `recsys evaluate` first for the validation gate)"
        )
        return None
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    flat["baselines"] = {  # what the gate's `min_ratio_to_baseline` compares with
        name: {k: v for k, v in values.items() if isinstance(v, (int, float))}
        for name, values in metrics.get("baselines", {}).items()
    }
    return flat
