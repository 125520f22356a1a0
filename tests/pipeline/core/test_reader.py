"""Tests of reading the preprocess TFRecords back: one glob or several read as one data set."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from pipeline.core.errors import DataError
from pipeline.core.reader import list_files, make_dataset, read_all
from pipeline.core.schema import EVENTS, output_pattern, pre_eval_patterns


def _event(user: str, timestamp: int) -> dict:
    return {
        "user_id": user,
        "item_id": "i1",
        "timestamp": timestamp,
        "event_type": "view",
        "label": 1.0,
        "weight": 1.0,
        "item_categories": ["c"],
        "history_item_ids": [],
        "history_timestamps": [],
    }


def _write(path, timestamps: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for ts in timestamps:
            writer.write(EVENTS.encode(_event("u", ts)))


@pytest.fixture
def step_dir(tmp_path):
    """A preprocess folder: two train shards (written out of order), one validation shard."""
    _write(tmp_path / "train" / "events-00001-of-00002.tfrecord.gz", [3, 4])
    _write(tmp_path / "train" / "events-00000-of-00002.tfrecord.gz", [1, 2])
    _write(tmp_path / "validation" / "events-00000-of-00001.tfrecord.gz", [5])
    return tmp_path


def test_list_files_sorts_per_pattern_and_keeps_pattern_order(step_dir):
    train, validation = pre_eval_patterns(str(step_dir))
    names = [os.path.relpath(f, step_dir) for f in list_files([validation, train])]
    assert names == [
        "validation/events-00000-of-00001.tfrecord.gz",
        "train/events-00000-of-00002.tfrecord.gz",
        "train/events-00001-of-00002.tfrecord.gz",
    ]
    assert list_files(train) == sorted(list_files(train))


def test_a_list_of_patterns_reads_as_one_data_set(step_dir):
    records = read_all(pre_eval_patterns(str(step_dir)), EVENTS)
    assert [r["timestamp"] for r in records] == [1, 2, 3, 4, 5]
    batches = list(make_dataset(pre_eval_patterns(str(step_dir)), EVENTS, batch_size=10))
    assert batches[0]["timestamp"].numpy().tolist() == [1, 2, 3, 4, 5]


def test_a_pattern_without_files_is_skipped_when_another_matches(step_dir):
    (step_dir / "validation" / "events-00000-of-00001.tfrecord.gz").unlink()
    records = read_all(pre_eval_patterns(str(step_dir)), EVENTS)
    assert [r["timestamp"] for r in records] == [1, 2, 3, 4]


def test_an_empty_file_reads_as_no_records(tmp_path):
    _write(tmp_path / "validation" / "events-00000-of-00001.tfrecord.gz", [])
    assert read_all(output_pattern(str(tmp_path), "validation"), EVENTS) == []


def test_no_match_at_all_raises_naming_the_patterns(tmp_path):
    with pytest.raises(DataError, match=r"train/events-\*.*recsys preprocess"):
        list_files(output_pattern(str(tmp_path), "train"))
    with pytest.raises(DataError, match=r"\[.*train.*validation.*\]"):
        make_dataset(pre_eval_patterns(str(tmp_path)), EVENTS, batch_size=4)


def test_pre_eval_patterns_are_train_then_validation():
    assert pre_eval_patterns("work/preprocess") == [
        output_pattern("work/preprocess", "train"),
        output_pattern("work/preprocess", "validation"),
    ]
