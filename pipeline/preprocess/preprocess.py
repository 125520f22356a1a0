"""`recsys preprocess`: logs + item catalog → validated, split TFRecords, vocabularies and stats.

`run` resolves the inputs, reads them into chunks, applies the composite `Preprocess`
(`pipeline.preprocess.transform`), writes what it returns, runs the job on any Beam runner
(flags decide), checks that the counts reconcile, and publishes the output folder with its
`manifest.json`. Reads and writes happen here and nowhere else. Locally the folder is built
beside the final one and renamed into place, so a reader never sees a half-written result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.core import schema
from pipeline.core.beam_step import (
    SUMMARY,
    count_lines,
    failed_dir,
    pipeline_options,
    run_step,
    write_json,
    write_lines,
)
from pipeline.core.config import Config
from pipeline.core.errors import DataError
from pipeline.core.manifest import code_version, fingerprint_files, read_json, write_json_atomic
from pipeline.core.progress import say
from pipeline.core.timestamps import format_timestamp
from pipeline.preprocess import splits
from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.inputs import InputPlan, plan_inputs
from pipeline.preprocess.items import SIDE_INPUTS
from pipeline.preprocess.read import ReadChunks
from pipeline.preprocess.stats import plot_stats, summarize
from pipeline.preprocess.transform import SUMMARIES, VOCABULARIES, Preprocess

__all__ = ["run"]

# The dead letters' file, relative to the step's folder (`schema`'s `dead_letters` pattern).
_DEAD_LETTERS = os.path.join("dead_letters", "dead_letters.jsonl")
_SUMMARY_LABELS = {
    "counts": "Counts",
    "event_stats": "EventStats",
    "item_stats": "ItemStats",
    "item_counts": "ItemCounts",
    "split": "Split",
}


def _read(p: beam.Pipeline, plan: InputPlan, chunk: int) -> dict[str, Any]:
    """The input files as chunks of raw records: `items`, `events` and each side input."""
    inputs = {"items": p | "ReadItems" >> ReadChunks(plan.item_files, plan.item_format, chunk)}
    for side_input in plan.side_inputs:  # MovieLens tags, ml-1m plots
        name = SIDE_INPUTS[side_input.kind]
        inputs[name] = p | f"Read{name.title()}" >> ReadChunks(
            side_input.files, side_input.fmt, chunk
        )
    inputs["events"] = p | "ReadEvents" >> ReadChunks(plan.event_files, plan.event_format, chunk)
    return inputs


def _write(outputs: dict[str, Any], out_dir: str, num_shards: int) -> None:
    """Writes `Preprocess`'s outputs under `out_dir`, in the layout of `schema`."""
    suffix = ".tfrecord.gz"
    # An empty split still gets one empty shard (WriteToTFRecord's sink is not skip_if_empty),
    # so every split folder holds a matchable file.
    for name in splits.SPLITS:
        _ = outputs[name] | f"Write{name.title()}" >> beam.io.WriteToTFRecord(
            os.path.join(out_dir, name, "events"),
            file_name_suffix=suffix,
            num_shards=num_shards,
        )
    _ = outputs["items"] | "WriteItems" >> beam.io.WriteToTFRecord(
        os.path.join(out_dir, "items", "items"),
        file_name_suffix=suffix,
        num_shards=num_shards,
    )
    for name in VOCABULARIES:
        for kind in ("vocab", "counts"):
            key = f"{kind}_{name}"
            write_lines(
                outputs[key], schema.output_pattern(out_dir, key), kind.title() + name.title()
            )
    _ = outputs["dead_letters"] | "WriteDeadLetters" >> beam.io.WriteToText(
        os.path.join(out_dir, _DEAD_LETTERS.removesuffix(".jsonl")),
        file_name_suffix=".jsonl",
        num_shards=1,
        shard_name_template="",
    )
    summary = os.path.join(out_dir, SUMMARY)
    for name in SUMMARIES:
        write_json(outputs[name], os.path.join(summary, f"{name}.json"), _SUMMARY_LABELS[name])


def _build(p: beam.Pipeline, config: Config, plan: InputPlan, out_dir: str) -> None:
    """The whole job on `p`: read, `Preprocess`, write under `out_dir`."""
    pre = config.preprocess
    inputs = _read(p, plan, pre.chunk_size)
    outputs = inputs | "Preprocess" >> Preprocess(config, plan)
    _write(outputs, out_dir, pre.output_shards)


def _reconcile(name: str, counts: dict[str, int]) -> dict[str, Any]:
    """The manifest's counts block; raises if read ≠ kept + rejected (a bug, never bad data)."""
    rejected = {
        key.split(".", 1)[1]: n for key, n in sorted(counts.items()) if key.startswith("rejected.")
    }
    block = {
        "read": counts.get("read", 0),
        "kept": counts.get("kept", 0),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": rejected,
        "skipped_lines": counts.get("skipped_lines", 0),
    }
    if block["read"] != block["kept"] + block["rejected"]:
        raise RuntimeError(
            f"{name} counts do not reconcile: read {block['read']} != kept {block['kept']} + "
            f"rejected {block['rejected']}"
        )
    return block


def run(config: Config, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Runs the preprocessing job and returns its manifest."""
    started = time.time()
    plan = plan_inputs(config)
    options = pipeline_options(config, beam_args)
    runner = options.get_all_options().get("runner")
    say(
        f"preprocess: {len(plan.event_files)} event file(s), {len(plan.item_files)} item file(s) "
        f"({plan.layout}) → {config.step_dir('preprocess')}"
    )
    return run_step(
        config,
        "preprocess",
        options,
        build=lambda p, out_dir: _build(p, config, plan, out_dir),
        finish=lambda out_dir: _finish(config, plan, out_dir, started, runner),
        keep_on_failure=(_DEAD_LETTERS,),  # they explain a run that kept nothing
    )


def _check_kept(
    name: str, block: dict[str, Any], files: list[str], fmt: FileFormat, out_dir: str, kept_at: str
) -> None:
    """Raises DataError saying why no `name` record was kept: none was read (empty or blank
    files), or every one was rejected (the reasons, an example, where the dead letters are kept)."""
    if block["kept"]:
        return
    one = len(files) == 1
    where = files[0] if one else f"{len(files)} files ({files[0]}, ...)"
    if not block["read"]:
        skipped = block["skipped_lines"]
        lines = "blank or header" if fmt.reader == "csv" else "blank"
        raise DataError(
            f"read 0 {name} from {where}: the file{'' if one else 's'} "
            + (
                f"{'is' if one else 'are'} empty"
                if not skipped
                else f"{'has' if one else 'have'} no records, only {skipped:,} {lines} line(s)"
            )
        )
    by_reason = sorted(block["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    reasons_text = ", ".join(f"{n:,} {reason}" for reason, n in by_reason)
    example = _first_dead_letter(os.path.join(out_dir, _DEAD_LETTERS), name, by_reason[0][0])
    raise DataError(
        f"read {block['read']:,} {name} from {where}, kept 0: {reasons_text}{example}; "
        f"dead letters: {kept_at}"
    )


def _first_dead_letter(path: str, name: str, reason: str) -> str:
    """` (e.g. <file> line <n>: <detail>)` from the first dead letter of `name` with `reason`."""
    if not FileSystems.exists(path):
        return ""
    with FileSystems.open(path) as f:
        for line in f:
            letter = json.loads(line)
            if letter["input"] == name and letter["reason"] == reason:
                source = os.path.basename(letter["source"])
                return f" (e.g. {source} line {letter['line']}: {letter['detail']})"
    return ""


def _split_counts(method: str, event_stats: dict[str, Any], kept: int) -> dict[str, int]:
    """The events in each split folder; raises if they do not add up to the kept events (a bug)
    and DataError if nothing is left before eval or in eval (the rule does not fit the data)."""
    block = {name: event_stats.get(name, 0) for name in splits.SPLITS}
    if sum(block.values()) != kept:
        raise RuntimeError(f"split counts {block} do not add up to the {kept} kept events")
    before_eval = block[splits.TRAIN] + block[splits.VALIDATION]
    if not (before_eval and block[splits.EVAL]):
        raise DataError(
            f"the {method} split left {before_eval} train (validation included) and "
            f"{block[splits.EVAL]} eval events; adjust preprocess.split"
        )
    return block


def _finish(config: Config, plan: InputPlan, out_dir: str, started: float, runner) -> dict:
    summary = os.path.join(out_dir, SUMMARY)
    counts = read_json(os.path.join(summary, "counts.json"))
    event_stats = read_json(os.path.join(summary, "event_stats.json"))
    item_stats = read_json(os.path.join(summary, "item_stats.json"))
    item_counts = {
        k: tuple(v) for k, v in read_json(os.path.join(summary, "item_counts.json")).items()
    }
    rule = read_json(os.path.join(summary, "split.json"))
    events_block = _reconcile("events", counts.get("events", {}))
    items_block = _reconcile("items", counts.get("items", {}))
    # Without items every event is an unknown item: report the items first.
    kept_at = os.path.join(failed_dir(config, "preprocess"), _DEAD_LETTERS)
    _check_kept("items", items_block, plan.item_files, plan.item_format, out_dir, kept_at)
    _check_kept("events", events_block, plan.event_files, plan.event_format, out_dir, kept_at)
    events_block.update(_split_counts(rule["method"], event_stats, events_block["kept"]))
    stats = summarize(event_stats, item_stats, {k: (v[0], v[1]) for k, v in item_counts.items()})
    write_json_atomic(schema.output_pattern(out_dir, "stats"), stats)
    plot_stats(stats, item_counts, os.path.join(out_dir, "stats.png"), rule)
    vocab_sizes = {
        name: count_lines(schema.output_pattern(out_dir, f"vocab_{name}"))
        for name in ("users", "items", "categories")
    }
    for key in ("cutoff", "validation_cutoff"):
        if rule.get(key) is not None:
            rule[f"{key}_iso"] = format_timestamp(rule[key])
    final_dir = config.step_dir("preprocess")
    manifest = {
        "step": "preprocess",
        "schema_version": schema.SCHEMA_VERSION,
        "code_version": code_version(),
        "created_at": format_timestamp(int(time.time())),
        "config": {"data": asdict(config.data), "preprocess": asdict(config.preprocess)},
        "inputs": {
            "layout": plan.layout,
            "events": fingerprint_files(plan.event_files),
            "items": fingerprint_files(plan.item_files),
            "tags": fingerprint_files(plan.files_of("tag")),
            "plots": fingerprint_files(plan.files_of("plot")),
        },
        "counts": events_block,
        "item_counts": items_block,
        # Side files' records: read = joined to an item (kept) + rejected, as for items.
        "tag_counts": _reconcile("tags", counts.get("tags", {})) if plan.files_of("tag") else {},
        "plot_counts": (
            _reconcile("plots", counts.get("plots", {})) if plan.files_of("plot") else {}
        ),
        "vocab_sizes": vocab_sizes,
        "vocab": {"num_oov_buckets": config.preprocess.vocab.num_oov_buckets},
        "split": rule,
        "features": {
            s.name: {f.name: {"dtype": f.dtype, "varlen": f.varlen} for f in s.features}
            for s in (schema.EVENTS, schema.ITEMS)
        },
        "outputs": {
            name: os.path.relpath(schema.output_pattern(final_dir, name), final_dir)
            for name in (
                "train",
                "validation",
                "eval",
                "items",
                "dead_letters",
                "vocab_users",
                "vocab_items",
                "vocab_categories",
                "stats",
            )
        },
        "timings": {"seconds": round(time.time() - started, 2)},
        "runner": str(runner),
    }
    write_json_atomic(schema.output_pattern(out_dir, "manifest"), manifest)
    return manifest
