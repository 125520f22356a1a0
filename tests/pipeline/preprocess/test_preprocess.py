"""End-to-end runs of the preprocess job on small file sets (in-memory DirectRunner)."""

import dataclasses
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

FAST_BEAM = ["beam.direct_num_workers=1", "beam.direct_running_mode=in_memory"]

GOOD_ITEMS = [
    {
        "item_id": "i1",
        "title": "Trail tent",
        "description": "Sleeps two.",
        "categories": ["outdoor"],
    },
    {"item_id": "i2", "title": "Camp stove", "description": "", "categories": "outdoor|kitchen"},
    {"item_id": "i3", "title": "Chef knife", "description": "Sharp.", "categories": ["kitchen"]},
]
BAD_ITEMS = [
    (b'{"item_id": "i1", "title": "Second i1"}', reasons.DUPLICATE_ITEM),
    (b'{"item_id": "i4"}', reasons.MISSING_FIELD),
]
GOOD_EVENTS = [
    ("u1", "i1", 100),
    ("u1", "i2", 200),
    ("u1", "i3", 300),
    ("u1", "i1", 900),
    ("u2", "i3", 150),
    ("u2", "i3", 150 + 60),
    ("u2", "i2", 950),
    ("u3", "i2", 400),
    ("u3", "i1", 400),
    ("u3", "i3", 1000),
]
BAD_EVENTS = [
    (b'{"user_id": "u1", "item_id": ', reasons.MALFORMED),
    (b'{"item_id": "i1", "timestamp": 100}', reasons.MISSING_FIELD),
    (b'{"user_id": "", "item_id": "i1", "timestamp": 100}', reasons.EMPTY_FIELD),
    (b'{"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"}', reasons.BAD_TIMESTAMP),
    (b'{"user_id": "u1", "item_id": "zzz", "timestamp": 100}', reasons.UNKNOWN_ITEM),
    (b'{"user_id": "u\xff\xfe", "item_id": "i1", "timestamp": 100}', reasons.INVALID_UTF8),
    (b'{"user_id": "' + b"u" * 300 + b'", "item_id": "i1", "timestamp": 100}', reasons.OVERSIZED),
    (b'{"user_id": "u1", "item_id": "i2", "timestamp": 200}', reasons.DUPLICATE_EVENT),
]


def _event_line(user, item, ts):
    return json.dumps({"user_id": user, "item_id": item, "timestamp": ts}).encode()


def _write_inputs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    items = [json.dumps(item).encode() for item in GOOD_ITEMS] + [raw for raw, _ in BAD_ITEMS]
    (folder / "items.jsonl").write_bytes(b"\n".join(items) + b"\n")
    lines = [_event_line(*e) for e in GOOD_EVENTS]
    lines[3:3] = [raw for raw, _ in BAD_EVENTS]
    lines.insert(5, b"")  # a blank line is skipped and counted, not a record
    (folder / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _config(tmp_path, *overrides):
    return load_config(
        None,
        [f"work_dir={tmp_path / 'work'}", f"data.path={tmp_path / 'raw'}", *FAST_BEAM, *overrides],
    )


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad_run")
    _write_inputs(tmp_path / "raw")
    config = _config(tmp_path, "preprocess.split.cutoff=900", "preprocess.history_length=2")
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
    _write_inputs(tmp_path / "raw")
    config = _config(tmp_path, "preprocess.split.method=leave_last_out")
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


def test_random_split_with_an_exact_eval_count(tmp_path):
    _write_inputs(tmp_path / "raw")
    config = _config(tmp_path, "preprocess.split.method=random", "preprocess.split.eval_count=4")
    manifest = preprocess.run(config)
    counts = manifest["counts"]
    assert (counts["train"] + counts["validation"], counts["eval"]) == (6, 4)
    again = preprocess.run(config)
    eval_keys = lambda: sorted(  # noqa: E731
        (r["user_id"], r["item_id"], r["timestamp"])
        for r in read_all(
            schema.output_pattern(config.step_dir("preprocess"), "eval"), schema.EVENTS
        )
    )
    assert again["counts"]["eval"] == 4 and len(eval_keys()) == 4


def test_validation_fraction_zero_leaves_an_empty_validation_folder(tmp_path):
    _write_inputs(tmp_path / "raw")
    config = _config(
        tmp_path, "preprocess.split.cutoff=900", "preprocess.split.validation_fraction=0"
    )
    manifest = preprocess.run(config)
    out = config.step_dir("preprocess")
    assert (manifest["counts"]["train"], manifest["counts"]["validation"]) == (7, 0)
    assert manifest["split"]["validation_cutoff"] is None
    # an empty split still writes one empty shard, so the folder's glob matches
    assert read_all(schema.output_pattern(out, "validation"), schema.EVENTS) == []
    assert len(read_all(schema.pre_eval_patterns(out), schema.EVENTS)) == 7


def _gzip(path):
    """Replaces a file by its `.gz`."""
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()


def _dead_letters(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_gzipped_jsonl_reads_like_the_plain_files_with_the_same_line_numbers(bad_run, tmp_path):
    _write_inputs(tmp_path / "raw")
    _gzip(tmp_path / "raw" / "events.jsonl")
    _gzip(tmp_path / "raw" / "items.jsonl")
    config = _config(tmp_path, "preprocess.split.cutoff=900", "preprocess.history_length=2")
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
        _write_inputs(raw)
    raw.mkdir(exist_ok=True)
    for name, text in files.items():
        (raw / name).write_text(text)
    config = _config(tmp_path, f"data.format={fmt}", "preprocess.split.cutoff=900")
    failed = os.path.join(
        config.work_dir, "preprocess-failed", "dead_letters", "dead_letters.jsonl"
    )

    with pytest.raises(DataError) as info:
        preprocess.run(config)

    assert str(info.value) == message.format(raw=raw, failed=failed)
    assert "split" not in str(info.value)
    assert Counter((d["input"], d["reason"]) for d in _dead_letters(failed)) == kept
    assert not os.path.exists(config.step_dir("preprocess"))


def test_split_counts_must_add_up_and_leave_events_before_and_in_eval():
    block = preprocess._split_counts("random", {"validation": 2, "eval": 1}, 3)
    assert block == {"train": 0, "validation": 2, "eval": 1}  # validation counts as train here
    with pytest.raises(RuntimeError, match="do not add up to the 4 kept"):
        preprocess._split_counts("random", {"train": 2, "eval": 1}, 4)
    with pytest.raises(DataError, match=r"temporal split left 3 train .* and 0 eval"):
        preprocess._split_counts("temporal", {"train": 1, "validation": 2}, 3)


def _rule(manifest) -> splits.SplitRule:
    fields = {f.name for f in dataclasses.fields(splits.SplitRule)}
    return splits.SplitRule(**{k: v for k, v in manifest["split"].items() if k in fields})


def test_cold_items_are_only_in_eval_and_the_three_folders_reconcile(tmp_path):
    cfg = load_config(None, ["sample_data.n_users=30", "sample_data.n_items=40"]).sample_data
    write_sample_data(generate(cfg), str(tmp_path / "raw"), "jsonl")
    config = _config(tmp_path, "preprocess.split.cold_item_fraction=0.25")
    manifest = preprocess.run(config)
    out, counts, rule = config.step_dir("preprocess"), manifest["counts"], _rule(manifest)
    records = {
        name: read_all(schema.output_pattern(out, name), schema.EVENTS) for name in splits.SPLITS
    }
    assert {name: len(r) for name, r in records.items()} == {n: counts[n] for n in splits.SPLITS}
    assert all(counts[name] for name in splits.SPLITS)
    assert sum(counts[name] for name in splits.SPLITS) == counts["kept"]
    assert counts["read"] == counts["kept"] + counts["rejected"]

    before_eval = Counter(
        r["item_id"] for n in (splits.TRAIN, splits.VALIDATION) for r in records[n]
    )
    eval_items = {r["item_id"] for r in records[splits.EVAL]}
    cold = {item for item in eval_items | set(before_eval) if splits.is_cold_item(item, rule)}
    assert cold and cold <= eval_items and not cold & set(before_eval)
    warm_eval = [r for r in records[splits.EVAL] if r["item_id"] not in cold]
    assert all(r["timestamp"] >= rule.cutoff for r in warm_eval)
    assert all(
        rule.validation_cutoff <= r["timestamp"] < rule.cutoff for r in records[splits.VALIDATION]
    )
    # Train counts are train + validation events: zero for every cold item.
    items = {r["item_id"]: r for r in read_all(schema.output_pattern(out, "items"), schema.ITEMS)}
    assert {k: r["train_count"] for k, r in items.items()} == {k: before_eval[k] for k in items}
    with open(schema.output_pattern(out, "counts_items")) as f:
        tsv = {line.split("\t")[0]: int(line.split("\t")[1]) for line in f}
    assert tsv == {k: before_eval[k] for k in items}
    with open(schema.output_pattern(out, "stats")) as f:
        stats = json.load(f)
    assert stats["events"]["validation"] == counts["validation"]
    assert stats["items"]["only_in_eval"] >= len(cold)


@pytest.mark.parametrize(("fmt", "gzipped"), [("csv", False), ("parquet", False), ("csv", True)])
def test_csv_and_parquet_inputs(tmp_path, fmt, gzipped):
    cfg = load_config(None, ["sample_data.n_users=30", "sample_data.n_items=40"]).sample_data
    written = write_sample_data(generate(cfg), str(tmp_path / "raw"), fmt)
    if gzipped:
        for name in ("events", "items"):
            _gzip(tmp_path / "raw" / f"{name}.{fmt}")
    config = _config(tmp_path, f"data.format={fmt}", "data.items.extra_text_fields=[brand]")
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
