"""End-to-end runs of the preprocess job on small file sets (in-memory DirectRunner)."""

import gzip
import json
import os
from collections import Counter

import pytest

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.errors import DataError
from pipeline.core.reader import read_all
from pipeline.preprocess import preprocess, reasons, splits
from pipeline.sample_data import generate, write_sample_data
from tests.conftest import MOVIELENS_100K
from tests.pipeline.preprocess.small_inputs import (
    BAD_EVENTS,
    BAD_ITEMS,
    GOOD_EVENTS,
    job_config,
    write_inputs,
)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad_run")
    write_inputs(tmp_path / "raw")
    config = job_config(tmp_path, "preprocess.split.cutoff=900", "preprocess.history_length=2")
    manifest = preprocess.run(config)
    return config, manifest, config.step_dir("preprocess")


def test_every_bad_record_lands_in_dead_letters_with_its_reason(bad_run):
    _, _, out = bad_run
    with open(schema.output_pattern(out, "dead_letters").replace("*", "dead_letters")) as f:
        dead = [json.loads(line) for line in f]
    got = sorted((d["input"], d["reason"]) for d in dead)
    expected = sorted(
        [("events", reason) for _, reason in BAD_EVENTS]
        + [("items", reason) for _, reason in BAD_ITEMS]
    )
    assert got == expected
    by_reason = {d["reason"]: d for d in dead if d["input"] == "events"}
    assert by_reason[reasons.INVALID_UTF8]["raw"].startswith('{"user_id": "u\\xff\\xfe"')
    assert by_reason[reasons.MISSING_FIELD]["field"] == "user_id"
    assert by_reason[reasons.BAD_TIMESTAMP]["field"] == "timestamp"
    assert "yesterday" in by_reason[reasons.BAD_TIMESTAMP]["detail"]
    assert by_reason[reasons.DUPLICATE_EVENT]["line"] == 12
    assert all(d["source"].endswith(".jsonl") and d["line"] >= 1 for d in dead)


def test_counts_reconcile_per_reason(bad_run):
    _, manifest, _ = bad_run
    counts = manifest["counts"]
    assert counts["read"] == len(GOOD_EVENTS) + len(BAD_EVENTS)
    assert counts["kept"] == len(GOOD_EVENTS)
    assert counts["read"] == counts["kept"] + counts["rejected"]
    assert counts["rejected_by_reason"] == {reason: 1 for _, reason in BAD_EVENTS}
    assert counts["skipped_lines"] == 1
    # cutoff 900 leaves 7 events before eval; validation is their latest 10%, from the quantile at
    # 0.7 × 0.9 = 0.63 of all times: 400 (u3's two events at 400)
    assert (counts["train"], counts["validation"], counts["eval"]) == (5, 2, 3)
    assert counts["train"] + counts["validation"] + counts["eval"] == counts["kept"]
    items = manifest["item_counts"]
    assert (items["read"], items["kept"], items["rejected"]) == (5, 3, 2)


def test_tfrecords_read_back_through_the_schema(bad_run):
    _, _, out = bad_run
    train = read_all(schema.output_pattern(out, "train"), schema.EVENTS)
    validation = read_all(schema.output_pattern(out, "validation"), schema.EVENTS)
    eval_ = read_all(schema.output_pattern(out, "eval"), schema.EVENTS)
    train = train + validation  # the checks below cover every event before eval
    assert sorted((r["user_id"], r["item_id"], r["timestamp"]) for r in train + eval_) == sorted(
        GOOD_EVENTS
    )
    assert all(r["timestamp"] >= 900 for r in eval_) and all(r["timestamp"] < 900 for r in train)
    assert sorted((r["user_id"], r["item_id"]) for r in validation) == [("u3", "i1"), ("u3", "i2")]
    u1 = {r["timestamp"]: r for r in train + eval_ if r["user_id"] == "u1"}
    assert u1[900]["history_item_ids"] == ["i2", "i3"]  # the last H=2 before it
    assert u1[900]["history_timestamps"] == [200, 300]
    assert u1[200]["item_categories"] == ["outdoor", "kitchen"]
    assert u1[100]["label"] == 1.0 and u1[100]["event_type"] == "interaction"
    u3 = {r["item_id"]: r for r in train + eval_ if r["user_id"] == "u3"}
    assert u3["i1"]["history_item_ids"] == [] and u3["i2"]["history_item_ids"] == []  # same second
    items = {r["item_id"]: r for r in read_all(schema.output_pattern(out, "items"), schema.ITEMS)}
    assert set(items) == {"i1", "i2", "i3"}
    assert items["i1"]["title"] == "Trail tent"  # the first definition wins
    assert (items["i3"]["train_count"], items["i3"]["total_count"]) == (3, 4)
    assert items["i2"]["text"] == "Camp stove. Categories: outdoor, kitchen."


def test_no_history_reaches_its_event_time_or_later(bad_run):
    _, _, out = bad_run
    records = [
        r
        for name in splits.SPLITS
        for r in read_all(schema.output_pattern(out, name), schema.EVENTS)
    ]
    by_user = {}
    for r in records:
        by_user.setdefault(r["user_id"], set()).add((r["item_id"], r["timestamp"]))
    for r in records:
        assert len(r["history_item_ids"]) == len(r["history_timestamps"])
        for item, ts in zip(r["history_item_ids"], r["history_timestamps"], strict=True):
            assert ts < r["timestamp"]
            assert (item, ts) in by_user[r["user_id"]]


def test_vocabularies_stats_and_manifest(bad_run):
    config, manifest, out = bad_run
    with open(schema.output_pattern(out, "vocab_users")) as f:
        assert f.read().split() == ["u1", "u2", "u3"]  # by train count: 3, 2, 2 (then id)
    with open(schema.output_pattern(out, "counts_items")) as f:
        assert f.readline().rstrip("\n").split("\t") == ["i3", "3", "4"]
    assert manifest["vocab_sizes"] == {"users": 3, "items": 3, "categories": 2}
    assert manifest["split"]["cutoff"] == 900
    assert manifest["split"]["validation_cutoff"] == 400
    assert manifest["split"]["validation_cutoff_iso"] == "1970-01-01T00:06:40Z"
    assert manifest["outputs"]["validation"] == "validation/events-*.tfrecord.gz"
    assert manifest["inputs"]["events"][0]["sha256"]
    with open(schema.output_pattern(out, "manifest")) as f:
        assert json.load(f)["counts"] == manifest["counts"]
    with open(schema.output_pattern(out, "stats")) as f:
        stats = json.load(f)
    assert stats["users"]["total"] == 3
    assert (stats["events"]["validation"], stats["events"]["total"]) == (2, len(GOOD_EVENTS))
    assert os.path.getsize(os.path.join(out, "stats.png")) > 0
    siblings = os.listdir(config.work_dir)
    assert not [s for s in siblings if ".tmp-" in s or ".old-" in s]


def test_a_rerun_replaces_the_output_and_a_failed_run_keeps_it(tmp_path):
    write_inputs(tmp_path / "raw")
    config = job_config(tmp_path, "preprocess.split.method=leave_last_out")
    first = preprocess.run(config)
    assert first["counts"]["eval"] == 3  # one per user with two or more events
    assert first["counts"]["validation"] == 3  # the second-to-last of each user with three or more
    assert first["counts"]["train"] == 4
    (tmp_path / "raw" / "events.jsonl").write_bytes(b"")
    with pytest.raises(DataError, match=r"read 0 events from .*: the file is empty"):
        preprocess.run(config)  # nothing kept → fails before publishing
    (tmp_path / "raw" / "items.jsonl").unlink()
    with pytest.raises(DataError, match=r"data\.items\.path"):
        preprocess.run(config)
    with open(schema.output_pattern(config.step_dir("preprocess"), "manifest")) as f:
        assert json.load(f)["counts"] == first["counts"]
    # the failed job's dead letters (the bad items) stay until a run succeeds
    assert sorted(n for n in os.listdir(config.work_dir) if n != "logs") == [
        "preprocess",
        "preprocess-failed",
    ]


def _gzip(path):
    """Replaces a file by its `.gz`."""
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()


def _dead_letters(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_gzipped_jsonl_reads_like_the_plain_files_with_the_same_line_numbers(bad_run, tmp_path):
    write_inputs(tmp_path / "raw")
    _gzip(tmp_path / "raw" / "events.jsonl")
    _gzip(tmp_path / "raw" / "items.jsonl")
    config = job_config(tmp_path, "preprocess.split.cutoff=900", "preprocess.history_length=2")
    manifest = preprocess.run(config)
    _, plain, plain_out = bad_run
    assert (manifest["counts"], manifest["item_counts"]) == (plain["counts"], plain["item_counts"])
    dead, plain_dead = (
        _dead_letters(schema.output_pattern(out, "dead_letters").replace("*", "dead_letters"))
        for out in (config.step_dir("preprocess"), plain_out)
    )
    assert all(d["source"].endswith(".jsonl.gz") for d in dead)
    where = lambda letters: sorted((d["input"], d["line"], d["reason"]) for d in letters)  # noqa: E731
    assert where(dead) == where(plain_dead)


EVENT_I1 = '{"user_id": "u1", "item_id": "i1", "timestamp": 100}'
ITEMS_CSV = "item_id,title,description,categories\ni1,Tent,Sleeps two.,outdoor\n"


@pytest.mark.parametrize(
    ("files", "fmt", "message", "kept"),
    [
        (
            {"events.jsonl": ""},
            "jsonl",
            "read 0 events from {raw}/events.jsonl: the file is empty",
            {("items", reasons.DUPLICATE_ITEM): 1, ("items", reasons.MISSING_FIELD): 1},
        ),
        (
            {"events.jsonl": "\n  \n\r\n"},
            "jsonl",
            "read 0 events from {raw}/events.jsonl: the file has no records, only 3 blank line(s)",
            {("items", reasons.DUPLICATE_ITEM): 1, ("items", reasons.MISSING_FIELD): 1},
        ),
        (
            {"items.jsonl": "", "events.jsonl": f"{EVENT_I1}\n{EVENT_I1.replace('u1', 'u2')}\n"},
            "jsonl",
            "read 0 items from {raw}/items.jsonl: the file is empty",
            {("events", reasons.UNKNOWN_ITEM): 2},
        ),
        (
            {"items.csv": ITEMS_CSV, "events.csv": "uid,sku,ts\nu1,i1,100\nu2,i1,200\n"},
            "csv",
            "read 2 events from {raw}/events.csv, kept 0: 2 missing_field (e.g. events.csv line 2: "
            "field 'user_id' is missing); dead letters: {failed}",
            {("events", reasons.MISSING_FIELD): 2},
        ),
    ],
    ids=["empty-events", "blank-events", "empty-items", "csv-wrong-header"],
)
def test_a_run_that_keeps_nothing_says_why_and_keeps_its_dead_letters(
    tmp_path, files, fmt, message, kept
):
    raw = tmp_path / "raw"
    if fmt == "jsonl":
        write_inputs(raw)
    raw.mkdir(exist_ok=True)
    for name, text in files.items():
        (raw / name).write_text(text)
    config = job_config(tmp_path, f"data.format={fmt}", "preprocess.split.cutoff=900")
    failed = os.path.join(
        config.work_dir, "preprocess-failed", "dead_letters", "dead_letters.jsonl"
    )

    with pytest.raises(DataError) as info:
        preprocess.run(config)

    assert str(info.value) == message.format(raw=raw, failed=failed)
    assert "split" not in str(info.value)
    assert Counter((d["input"], d["reason"]) for d in _dead_letters(failed)) == kept
    assert not os.path.exists(config.step_dir("preprocess"))


@pytest.mark.parametrize(("fmt", "gzipped"), [("csv", False), ("parquet", False), ("csv", True)])
def test_csv_and_parquet_inputs(tmp_path, fmt, gzipped):
    cfg = load_config(None, ["sample_data.n_users=30", "sample_data.n_items=40"]).sample_data
    written = write_sample_data(generate(cfg), str(tmp_path / "raw"), fmt)
    if gzipped:
        for name in ("events", "items"):
            _gzip(tmp_path / "raw" / f"{name}.{fmt}")
    config = job_config(tmp_path, f"data.format={fmt}", "data.items.extra_text_fields=[brand]")
    manifest = preprocess.run(config)
    assert manifest["counts"]["read"] == written["n_events"]
    assert manifest["counts"]["kept"] == written["n_events"]
    assert manifest["item_counts"]["kept"] == written["n_items"]


@pytest.mark.skipif(not MOVIELENS_100K.is_dir(), reason="MovieLens 100K not present")
def test_movielens_100k_preprocesses_completely(tmp_path):
    config = load_config(
        None,
        [
            f"work_dir={tmp_path}",
            "data.format=movielens",
            f"data.path={MOVIELENS_100K}",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
        ],
    )
    manifest = preprocess.run(config)
    assert manifest["inputs"]["layout"] == "ml-100k"
    assert manifest["counts"]["read"] == 100_000
    assert manifest["counts"]["rejected"] == 0
    assert manifest["vocab_sizes"]["users"] == 943
    assert manifest["vocab_sizes"]["items"] == 1682
    assert manifest["item_counts"]["rejected"] == 0
