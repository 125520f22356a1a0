"""The split rules through whole preprocess runs (in-memory DirectRunner): exact eval counts,
an empty validation slice, cold items only in eval, and the split counts' own checks."""

import dataclasses
import json
from collections import Counter

import pytest

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.errors import DataError
from pipeline.core.reader import read_all
from pipeline.preprocess import preprocess, splits
from pipeline.sample_data import generate, write_sample_data
from tests.pipeline.preprocess.small_inputs import job_config, write_inputs


def test_random_split_with_an_exact_eval_count(tmp_path):
    write_inputs(tmp_path / "raw")
    config = job_config(tmp_path, "preprocess.split.method=random", "preprocess.split.eval_count=4")
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
    write_inputs(tmp_path / "raw")
    config = job_config(
        tmp_path, "preprocess.split.cutoff=900", "preprocess.split.validation_fraction=0"
    )
    manifest = preprocess.run(config)
    out = config.step_dir("preprocess")
    assert (manifest["counts"]["train"], manifest["counts"]["validation"]) == (7, 0)
    assert manifest["split"]["validation_cutoff"] is None
    # an empty split still writes one empty shard, so the folder's glob matches
    assert read_all(schema.output_pattern(out, "validation"), schema.EVENTS) == []
    assert len(read_all(schema.pre_eval_patterns(out), schema.EVENTS)) == 7


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
    config = job_config(tmp_path, "preprocess.split.cold_item_fraction=0.25")
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
