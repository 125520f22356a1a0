"""Reads the preprocess TFRecords with `tf.data`, through the schema module.

Training, evaluation and the tests read every TFRecord output this way, so the features, dtypes
and shapes are the ones `pipeline.core.schema` declares and the Beam job wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from pipeline.core.errors import DataError
from pipeline.core.schema import Schema

__all__ = ["Patterns", "list_files", "make_dataset", "read_all"]


Patterns = str | Sequence[str]  # one glob, or globs read as one data set


def list_files(patterns: Patterns) -> list[str]:
    """Files matching one glob or a list of globs: sorted per pattern, concatenated in pattern
    order.

    A pattern that matches nothing is skipped, so a list may name an output that a run left
    without files (an older preprocess folder has no `validation/`); DataError naming the
    patterns when none matches anything.
    """
    pattern_list = [patterns] if isinstance(patterns, str) else list(patterns)
    files = [f for pattern in pattern_list for f in sorted(tf.io.gfile.glob(pattern))]
    if not files:
        shown = pattern_list[0] if len(pattern_list) == 1 else pattern_list
        raise DataError(f"no TFRecord files match {shown!r}; run `recsys preprocess` first")
    return files


def make_dataset(
    pattern: Patterns,
    schema: Schema,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    cache: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A batched dataset of feature dicts: scalars `[batch]`, lists ragged `[batch, None]`.

    Args:
      pattern: Glob of gzip'd TFRecord files (see `pipeline.core.schema.output_pattern`), or a list
        of globs read as one data set (`pipeline.core.schema.pre_eval_patterns`).
      schema: The record schema (`EVENTS` or `ITEMS`).
      batch_size: Examples per batch.
      shuffle_buffer: Shuffle buffer size; 0 keeps file order (evaluation).
      seed: Shuffle seed, for reproducible runs.
      cache: Cache parsed batches in memory after the first pass.
      drop_remainder: Drop the last partial batch.
    """
    files = list_files(pattern)
    dataset = tf.data.TFRecordDataset(
        files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE if shuffle_buffer else 1
    )
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = schema.tf_feature_spec()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        lambda serialized: tf.io.parse_example(serialized, spec),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if cache:
        dataset = dataset.cache()
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_all(pattern: Patterns, schema: Schema) -> list[dict[str, Any]]:
    """Every record as a dict of Python values (str, int, float, lists), in file order."""
    records: list[dict[str, Any]] = []
    for batch in make_dataset(pattern, schema, batch_size=1024):
        columns = {}
        for name, value in batch.items():
            columns[name] = value.to_list() if isinstance(value, tf.RaggedTensor) else value.numpy()
        n = len(columns[schema.features[0].name])
        for i in range(n):
            record = {}
            for feature in schema.features:
                value = columns[feature.name][i]
                if feature.dtype == "string":
                    value = [v.decode() for v in value] if feature.varlen else value.decode()
                elif not feature.varlen:
                    value = value.item()
                record[feature.name] = value
            records.append(record)
    return records
