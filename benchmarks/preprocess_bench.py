"""Preprocessing throughput: the Beam job on DirectRunner (1 and 2 workers) against the same
transformation as a plain single-process Python reference, on ~1,000,000 synthetic events.

The reference reuses the project's parsers, history builder, split rule and encoder, and writes
the same gzip'd TFRecords, vocabularies and dead letters, so the ratio measures what Beam costs
and what its workers gain, not a different algorithm.

    python benchmarks/preprocess_bench.py [--events 1000000] [--workers 1 2]

Targets (issue 2): 2 workers ≥ 1.6× one worker; Beam within 3× of the reference. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pipeline.core.keras2  # noqa: F401  (before TensorFlow: TFRS needs Keras 2)

# isort: split
import google_crc32c
import numpy as np

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.preprocess import preprocess, reasons, splits
from pipeline.preprocess.formats import decode_record, iter_raw_records, raw_text
from pipeline.preprocess.history import build_timeline
from pipeline.preprocess.inputs import plan_inputs
from pipeline.preprocess.reasons import RecordError
from pipeline.preprocess.records import dead_letter, item_text
from pipeline.preprocess.vocab import counts_lines, select_vocabulary
from pipeline.sample_data import generate, write_sample_data

EVENTS_PER_USER = 43.9  # what the sample-data generator gives with its default session settings


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _write_tfrecords(path: str, records: list[bytes]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.open(path, "wb") as f:
        for record in records:
            length = struct.pack("<Q", len(record))
            f.write(length + struct.pack("<I", _masked_crc(length)))
            f.write(record + struct.pack("<I", _masked_crc(record)))


def reference_preprocess(config, out_dir: str) -> dict[str, int]:
    """The preprocess transformation in one process, without Beam."""
    plan = plan_inputs(config)
    pre = config.preprocess
    counts: Counter = Counter()
    dead: list[dict] = []
    items: dict[str, object] = {}
    for path in plan.item_files:
        with open(path, "rb") as f:
            for number, raw in iter_raw_records(f, plan.item_format):
                if raw is None:
                    continue
                try:
                    item = plan.item_parser.parse(
                        decode_record(raw, plan.item_format), path, number
                    )
                    if item.item_id in items:
                        raise RecordError(reasons.DUPLICATE_ITEM, "duplicate", "item_id")
                except RecordError as e:
                    dead.append(dead_letter("items", path, number, e, raw_text(raw)))
                    continue
                items[item.item_id] = item
    by_user = defaultdict(list)
    for path in plan.event_files:
        with open(path, "rb") as f:
            for number, raw in iter_raw_records(f, plan.event_format):
                if raw is None:
                    continue
                counts["read"] += 1
                try:
                    event = plan.event_parser.parse(
                        decode_record(raw, plan.event_format), path, number
                    )
                    if event.item_id not in items:
                        raise RecordError(reasons.UNKNOWN_ITEM, "unknown", "item_id")
                except RecordError as e:
                    dead.append(dead_letter("events", path, number, e, raw_text(raw)))
                    continue
                by_user[event.user_id].append(event)
    times = np.array([e.timestamp for evs in by_user.values() for e in evs])
    cutoff = int(np.quantile(times, 1.0 - pre.split.eval_fraction, method="nearest"))
    rule = splits.SplitRule("temporal", cutoff=cutoff)
    out = {"train": [], "eval": []}
    user_counts, item_counts = {}, {}
    for user_id in sorted(by_user):
        timeline, duplicates = build_timeline(by_user[user_id], pre.history_length)
        for duplicate, _ in duplicates:
            error = RecordError(reasons.DUPLICATE_EVENT, "duplicate", None)
            dead.append(dead_letter("events", duplicate.source, duplicate.line, error, ""))
        flags = [name == splits.EVAL for name in splits.assign_splits(timeline, rule)]
        user_counts[user_id] = (len(flags) - sum(flags), len(flags))
        for entry, is_eval in zip(timeline, flags, strict=True):
            e = entry.event
            out["eval" if is_eval else "train"].append(
                schema.EVENTS.encode(
                    {
                        "user_id": e.user_id,
                        "item_id": e.item_id,
                        "timestamp": e.timestamp,
                        "event_type": e.event_type,
                        "label": e.label,
                        "weight": e.weight,
                        "item_categories": items[e.item_id].categories,
                        "history_item_ids": entry.history_item_ids,
                        "history_timestamps": entry.history_timestamps,
                    }
                )
            )
            train, total, first = item_counts.get(e.item_id, (0, 0, e.timestamp))
            item_counts[e.item_id] = (train + (not is_eval), total + 1, min(first, e.timestamp))
        counts["kept"] += len(timeline)
    for name, records in out.items():
        _write_tfrecords(os.path.join(out_dir, name, "events-00000-of-00001.tfrecord.gz"), records)
    item_records = []
    for item in items.values():
        train, total, first = item_counts.get(item.item_id, (0, 0, -1))
        item_records.append(
            schema.ITEMS.encode(
                {
                    "item_id": item.item_id,
                    "title": item.title,
                    "description": item.description,
                    "categories": item.categories,
                    "text": item_text(item, config.text.fields),
                    "train_count": train,
                    "total_count": total,
                    "first_event_timestamp": first,
                }
            )
        )
    _write_tfrecords(
        os.path.join(out_dir, "items", "items-00000-of-00001.tfrecord.gz"), item_records
    )
    os.makedirs(os.path.join(out_dir, "vocab"), exist_ok=True)
    pairs = {k: (t, n) for k, (t, n, _) in item_counts.items()}
    for name, c, min_count, universe in (
        ("users", user_counts, pre.vocab.min_count, None),
        ("items", pairs, pre.vocab.item_min_count, list(items)),
    ):
        vocab = select_vocabulary(c, min_count, universe)
        with open(os.path.join(out_dir, "vocab", f"{name}.txt"), "w") as f:
            f.write("\n".join(vocab))
        with open(os.path.join(out_dir, "vocab", f"{name}_counts.tsv"), "w") as f:
            f.write("\n".join(counts_lines(vocab, c)))
    with open(os.path.join(out_dir, "dead_letters.jsonl"), "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in dead)
    return {"read": counts["read"], "kept": counts["kept"], "train": len(out["train"])}


def _ensure_data(work_dir: str, n_events: int) -> None:
    marker = os.path.join(work_dir, "sample_data", f".events-{n_events}")
    if os.path.exists(marker):
        return
    config = load_config(None, [f"work_dir={work_dir}"])
    cfg = config.sample_data
    cfg.n_users = max(10, round(n_events / EVENTS_PER_USER))
    cfg.n_items = max(100, cfg.n_users)
    print(f"generating {cfg.n_users} users' events ...", file=sys.stderr, flush=True)
    result = write_sample_data(generate(cfg), config.data_path(), "jsonl")
    print(f"  {result['n_events']:,} events", file=sys.stderr)
    open(marker, "w").close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work-dir", default="work/bench_preprocess")
    args = parser.parse_args()
    _ensure_data(args.work_dir, args.events)
    overrides = [f"work_dir={args.work_dir}", "data.items.extra_text_fields=[brand]"]

    config = load_config(None, overrides)
    ref_dir = os.path.join(args.work_dir, "reference")
    shutil.rmtree(ref_dir, ignore_errors=True)
    start = time.perf_counter()
    ref = reference_preprocess(config, ref_dir)
    ref_seconds = time.perf_counter() - start
    n = ref["read"]
    print(f"reference (1 process):  {ref_seconds:7.1f} s  {n / ref_seconds:9,.0f} events/s")

    beam_seconds = {}
    for workers in args.workers:
        cfg = load_config(None, [*overrides, f"beam.direct_num_workers={workers}"])
        start = time.perf_counter()
        manifest = preprocess.run(cfg)
        beam_seconds[workers] = time.perf_counter() - start
        if manifest["counts"]["kept"] != ref["kept"]:
            raise SystemExit(
                f"Beam kept {manifest['counts']['kept']} events, reference {ref['kept']}"
            )
        print(
            f"beam, {workers} worker(s):     {beam_seconds[workers]:7.1f} s  "
            f"{n / beam_seconds[workers]:9,.0f} events/s"
        )
    figures = {
        "events": n,
        "reference_events_per_s": round(n / ref_seconds),
        **{f"beam_{w}w_events_per_s": round(n / s) for w, s in beam_seconds.items()},
    }
    if 1 in beam_seconds and 2 in beam_seconds:
        figures["speedup_2w_vs_1w"] = round(beam_seconds[1] / beam_seconds[2], 2)
        print(f"2 workers vs 1 worker: {figures['speedup_2w_vs_1w']:.2f}x (target ≥ 1.6x)")
    for w, seconds in beam_seconds.items():
        figures[f"beam_{w}w_vs_reference_time"] = round(seconds / ref_seconds, 2)
    best = min(beam_seconds.values())
    figures["beam_best_vs_reference_time"] = round(best / ref_seconds, 2)
    print(
        f"Beam (best) time / reference time: {figures['beam_best_vs_reference_time']:.2f} "
        "(target ≤ 3)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
