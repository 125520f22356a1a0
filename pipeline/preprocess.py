"""`recsys preprocess`: logs + item catalog → validated, split TFRecords, vocabularies and stats.

`build_pipeline` wires the composite transforms of `pipeline.transforms`; `run` resolves inputs,
runs the pipeline on any Beam runner (flags decide), checks that the counts reconcile, and
publishes the output folder with its `manifest.json`. Locally the folder is built beside the
final one and renamed into place, so a reader never sees a half-written result.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

import apache_beam as beam
from apache_beam.transforms.stats import ApproximateQuantiles

from pipeline import schema, splits
from pipeline.beam_step import (
    SUMMARY,
    count_lines,
    pipeline_options,
    run_step,
    write_json,
    write_lines,
)
from pipeline.config import Config
from pipeline.errors import DataError
from pipeline.inputs import InputPlan, plan_inputs
from pipeline.manifest import code_version, fingerprint_files, read_json, write_json_atomic
from pipeline.progress import say
from pipeline.stats import summarize
from pipeline.timestamps import format_timestamp, parse_timestamp
from pipeline.transforms import (
    DEAD,
    BuildTimelines,
    EncodeItems,
    MergeDicts,
    MergeItemCounts,
    ParseEvents,
    ParseItems,
    ParseTags,
    ReadChunks,
    ResolveItems,
    SmallestDistinctKeys,
    to_json_line,
)
from pipeline.vocab import counts_lines, merge_counts, select_vocabulary

__all__ = ["build_pipeline", "run"]

_QUANTILES = 1001


def _initial_rule(config: Config) -> tuple[splits.SplitRule | None, str | None]:
    """The split rule when it needs no pass over the data, else (None, key kind to collect)."""
    sp = config.preprocess.split
    if sp.method == "leave_last_out":
        return splits.SplitRule("leave_last_out"), None
    if sp.method == "temporal":
        if sp.cutoff is not None:
            return splits.SplitRule("temporal", cutoff=parse_timestamp(sp.cutoff, "auto")), None
        return None, "timestamp"
    if sp.eval_count is None:
        return splits.SplitRule(
            "random", threshold=splits.fraction_threshold(sp.eval_fraction), seed=sp.seed
        ), None
    return None, "hash"


def build_pipeline(p: beam.Pipeline, config: Config, plan: InputPlan, out_dir: str) -> None:
    """Adds the whole preprocessing job to `p`, writing under `out_dir`."""
    pre = config.preprocess
    chunk = pre.chunk_size
    summary = os.path.join(out_dir, SUMMARY)

    item_chunks = p | "ReadItems" >> ReadChunks(plan.item_files, plan.item_format, chunk)
    parsed_items = item_chunks | "ParseItems" >> ParseItems(plan.item_format, plan.item_parser)
    grouped = {"items": parsed_items.items}
    dead = [parsed_items[DEAD]]
    counts = [parsed_items.counts | "ItemReadCounts" >> beam.Map(lambda c: {"items": c})]
    if plan.tag_files:
        tag_chunks = p | "ReadTags" >> ReadChunks(plan.tag_files, plan.tag_format, chunk)
        tags = tag_chunks | "ParseTags" >> ParseTags(plan.tag_format)
        grouped["tags"] = tags.tags
        dead.append(tags[DEAD])
        counts.append(tags.counts | "TagReadCounts" >> beam.Map(lambda c: {"tags": c}))
    items = grouped | "ResolveItems" >> ResolveItems()
    dead.append(items[DEAD])
    counts.append(items.counts)
    catalog = items.items | "CatalogEntry" >> beam.Map(lambda it: (it.item_id, it.categories))

    rule, key_kind = _initial_rule(config)
    event_chunks = p | "ReadEvents" >> ReadChunks(plan.event_files, plan.event_format, chunk)
    events = event_chunks | "ParseEvents" >> ParseEvents(
        plan.event_format,
        plan.event_parser,
        catalog,
        pre.user_shards,
        rule or splits.SplitRule(config.preprocess.split.method, seed=pre.split.seed),
        key_kind,
        plan.item_field,
    )
    dead.append(events[DEAD])
    counts.append(events.counts)
    if rule is not None:
        rule_pcoll = p | "SplitRule" >> beam.Create([rule])
    elif key_kind == "timestamp":
        fraction = pre.split.eval_fraction
        rule_pcoll = (
            events.split_keys
            | "TimeQuantiles" >> ApproximateQuantiles.Globally(_QUANTILES, input_batched=True)
            | "Cutoff"
            >> beam.Map(
                lambda q: splits.SplitRule(
                    "temporal", cutoff=splits.quantile_cutoff(q, fraction) if q else 0
                )
            )
        )
    else:
        seed = pre.split.seed
        rule_pcoll = (
            events.split_keys
            | "SmallestKeys" >> beam.CombineGlobally(SmallestDistinctKeys(pre.split.eval_count))
            | "Threshold"
            >> beam.Map(
                lambda keys: splits.SplitRule(
                    "random", threshold=keys[-1] if keys else 0, seed=seed
                )
            )
        )

    timelines = events.batches | "BuildTimelines" >> BuildTimelines(
        pre.history_length, rule_pcoll, catalog
    )
    dead.append(timelines[DEAD])
    counts.append(timelines.counts)

    suffix = ".tfrecord.gz"
    for name in ("train", "eval"):
        _ = timelines[name] | f"Write{name.title()}" >> beam.io.WriteToTFRecord(
            os.path.join(out_dir, name, "events"),
            file_name_suffix=suffix,
            num_shards=pre.output_shards,
        )

    item_counts = timelines.item_counts | "MergeItemCounts" >> beam.CombineGlobally(
        MergeItemCounts()
    )
    encoded_items = items.items | "EncodeItems" >> EncodeItems(item_counts, config.text.fields)
    _ = encoded_items.records | "WriteItems" >> beam.io.WriteToTFRecord(
        os.path.join(out_dir, "items", "items"),
        file_name_suffix=suffix,
        num_shards=pre.output_shards,
    )

    # Vocabularies.
    vocab = pre.vocab
    user_counts = (
        timelines.user_counts
        | "CollectUserCounts" >> beam.combiners.ToList()
        | "MergeUserCounts" >> beam.Map(merge_counts)
    )
    users = user_counts | "UserVocab" >> beam.Map(
        lambda c: (select_vocabulary(c, vocab.min_count), c)
    )
    catalog_ids = (
        items.items
        | "ItemIds" >> beam.Map(lambda it: it.item_id)
        | "CollectItemIds" >> beam.combiners.ToList()
    )
    pair_counts = item_counts | "ItemPairCounts" >> beam.Map(
        lambda c: {k: (train, total) for k, (train, total, _) in c.items()}
    )
    item_vocab = catalog_ids | "ItemVocab" >> beam.Map(
        lambda ids, c: (select_vocabulary(c, vocab.item_min_count, universe=ids), c),
        c=beam.pvalue.AsSingleton(pair_counts),
    )
    category_vocab = (
        items.items
        | "Categories" >> beam.FlatMap(lambda it: it.categories)
        | "CountCategories" >> beam.combiners.Count.PerElement()
        | "CollectCategories" >> beam.combiners.ToList()
        | "CategoryVocab" >> beam.Map(lambda pairs: {k: (n, n) for k, n in pairs})
        | "SelectCategories"
        >> beam.Map(lambda c: (select_vocabulary(c, vocab.category_min_count), c))
    )
    for name, pcoll in (("users", users), ("items", item_vocab), ("categories", category_vocab)):
        write_lines(
            pcoll | f"{name}Ids" >> beam.Map(lambda vc: vc[0]),
            schema.output_pattern(out_dir, f"vocab_{name}"),
            f"Vocab{name.title()}",
        )
        write_lines(
            pcoll | f"{name}CountLines" >> beam.Map(lambda vc: counts_lines(*vc)),
            schema.output_pattern(out_dir, f"counts_{name}"),
            f"Counts{name.title()}",
        )

    # Dead letters, counts and statistics.
    _ = (
        dead
        | "AllDeadLetters" >> beam.Flatten()
        | "DeadLetterJson" >> beam.Map(to_json_line)
        | "WriteDeadLetters"
        >> beam.io.WriteToText(
            os.path.join(out_dir, "dead_letters", "dead_letters"),
            file_name_suffix=".jsonl",
            num_shards=1,
            shard_name_template="",
        )
    )
    all_counts = (
        counts | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombineGlobally(MergeDicts())
    )
    write_json(all_counts, os.path.join(summary, "counts.json"), "Counts")
    event_stats = timelines.stats | "EventStats" >> beam.CombineGlobally(MergeDicts())
    write_json(event_stats, os.path.join(summary, "event_stats.json"), "EventStats")
    item_stats = encoded_items.stats | "ItemStats" >> beam.CombineGlobally(MergeDicts())
    write_json(item_stats, os.path.join(summary, "item_stats.json"), "ItemStats")
    write_json(item_counts, os.path.join(summary, "item_counts.json"), "ItemCounts")
    write_json(
        rule_pcoll | "RuleDict" >> beam.Map(asdict), os.path.join(summary, "split.json"), "Split"
    )


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
        build=lambda p, out_dir: build_pipeline(p, config, plan, out_dir),
        finish=lambda out_dir: _finish(config, plan, out_dir, started, runner),
    )


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
    events_block["train"] = event_stats.get("train", 0)
    events_block["eval"] = event_stats.get("eval", 0)
    if not (events_block["train"] and events_block["eval"]):
        raise DataError(
            f"the {rule['method']} split left {events_block['train']} train and "
            f"{events_block['eval']} eval events; adjust preprocess.split"
        )
    stats = summarize(event_stats, item_stats, {k: (v[0], v[1]) for k, v in item_counts.items()})
    write_json_atomic(schema.output_pattern(out_dir, "stats"), stats)
    cutoff_day = format_timestamp(rule["cutoff"])[:10] if rule.get("cutoff") else None
    _plot_stats(stats, item_counts, os.path.join(out_dir, "stats.png"), cutoff_day)
    vocab_sizes = {
        name: count_lines(schema.output_pattern(out_dir, f"vocab_{name}"))
        for name in ("users", "items", "categories")
    }
    if rule.get("cutoff") is not None:
        rule["cutoff_iso"] = format_timestamp(rule["cutoff"])
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
            "tags": fingerprint_files(plan.tag_files),
        },
        "counts": events_block,
        "item_counts": items_block,
        "tag_counts": counts.get("tags", {}),
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


def _plot_stats(
    stats: dict[str, Any], item_counts: dict[str, tuple], path: str, cutoff_day: str | None
) -> None:
    """Events per day (with the temporal split's cutoff) and the item popularity curve, for a
    person skimming the run."""
    if "://" in path:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_days, ax_pop) = plt.subplots(1, 2, figsize=(11, 3.8))
    per_day = stats["events"]["per_day"]
    if per_day:
        ax_days.bar(range(len(per_day)), list(per_day.values()), width=1.0, color="#4472c4")
        ticks = list(range(0, len(per_day), max(1, len(per_day) // 6)))
        ax_days.set_xticks(ticks, [list(per_day)[i] for i in ticks], rotation=30, fontsize=7)
        if cutoff_day:
            index = sum(1 for day in per_day if day < cutoff_day)
            ax_days.axvline(index - 0.5, color="#c00000", linestyle="--", label="eval from here")
            ax_days.legend(loc="lower left", fontsize=8)
    ax_days.set_title("Kept events per day")
    ax_days.set_ylabel("events")
    popularity = sorted((c[1] for c in item_counts.values() if c[1] > 0), reverse=True)
    if popularity:
        ax_pop.loglog(range(1, len(popularity) + 1), popularity, color="#c55a11")
    ax_pop.set_title("Item popularity (all kept events)")
    ax_pop.set_xlabel("item rank")
    ax_pop.set_ylabel("events")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
