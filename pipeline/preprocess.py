"""`recsys preprocess`: logs + item catalog → validated, split TFRecords, vocabularies and stats.

`build_pipeline` wires the composite transforms of `pipeline.transforms`; `run` resolves inputs,
runs the pipeline on any Beam runner (flags decide), checks that the counts reconcile, and
publishes the output folder with its `manifest.json`. Locally the folder is built beside the
final one and renamed into place, so a reader never sees a half-written result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.stats import ApproximateQuantiles

from pipeline import splits
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
from pipeline.core.config import Config, SplitConfig
from pipeline.core.errors import DataError
from pipeline.core.manifest import code_version, fingerprint_files, read_json, write_json_atomic
from pipeline.core.progress import say
from pipeline.core.timestamps import format_timestamp, parse_timestamp
from pipeline.formats import FileFormat
from pipeline.inputs import InputPlan, plan_inputs
from pipeline.stats import summarize
from pipeline.transforms import (
    DEAD,
    SIDE_INPUTS,
    BuildTimelines,
    EncodeItems,
    MergeDicts,
    MergeItemCounts,
    ParseEvents,
    ParseItems,
    ParseSideRecords,
    ReadChunks,
    ResolveItems,
    SmallestDistinctKeys,
    to_json_line,
)
from pipeline.vocab import counts_lines, merge_counts, select_vocabulary

__all__ = ["build_pipeline", "run"]

_QUANTILES = 1001
# The dead letters' file, relative to the step's folder (`schema`'s `dead_letters` pattern).
_DEAD_LETTERS = os.path.join("dead_letters", "dead_letters.jsonl")
# The temporal split's cutoffs drawn on the events-per-day plot: rule key, legend, colour.
_CUTOFF_MARKS = (
    ("validation_cutoff", "validation from here", "#7f7f7f"),
    ("cutoff", "eval from here", "#c00000"),
)


def _initial_rule(sp: SplitConfig) -> tuple[splits.SplitRule, str | None]:
    """The split rule and the key kind (`timestamp`, `hash`) to collect for its data-dependent
    fields, or None when the rule is already complete and needs no pass over the data."""
    base = splits.SplitRule(
        sp.method,
        seed=sp.seed,
        validation_fraction=sp.validation_fraction,
        validation_threshold=(
            splits.fraction_threshold(sp.validation_fraction) if sp.method == "random" else None
        ),
        cold_item_fraction=sp.cold_item_fraction,
    )
    if sp.method == "leave_last_out":
        return base, None
    if sp.method == "temporal":
        if sp.cutoff is not None and sp.validation_fraction == 0:
            return replace(base, cutoff=parse_timestamp(sp.cutoff, "auto")), None
        # The validation cutoff needs the quantiles even when the eval cutoff is explicit.
        return base, "timestamp"
    if sp.eval_count is None:
        return replace(base, threshold=splits.fraction_threshold(sp.eval_fraction)), None
    return base, "hash"


def _resolve_rule(
    p: beam.Pipeline, split_keys, rule: splits.SplitRule, key_kind: str | None, sp: SplitConfig
):
    """A singleton PCollection of the complete rule, from the split keys when it needs them."""
    if key_kind is None:
        return p | "SplitRule" >> beam.Create([rule])
    if key_kind == "timestamp":
        fraction = sp.eval_fraction
        cutoff = None if sp.cutoff is None else parse_timestamp(sp.cutoff, "auto")
        return (
            split_keys
            | "TimeQuantiles" >> ApproximateQuantiles.Globally(_QUANTILES, input_batched=True)
            | "Cutoff" >> beam.Map(lambda q: splits.temporal_rule(rule, q, fraction, cutoff))
        )
    return (
        split_keys
        | "SmallestKeys" >> beam.CombineGlobally(SmallestDistinctKeys(sp.eval_count))
        | "Threshold" >> beam.Map(lambda keys: replace(rule, threshold=keys[-1] if keys else 0))
    )


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
    for side_input in plan.side_inputs:  # MovieLens tags, ml-1m plots
        name = SIDE_INPUTS[side_input.kind]
        side = (
            p
            | f"Read{name.title()}" >> ReadChunks(side_input.files, side_input.fmt, chunk)
            | f"Parse{name.title()}" >> ParseSideRecords(side_input.fmt, side_input.kind)
        )
        grouped[name] = side.records
        dead.append(side[DEAD])
        counts.append(side.counts)
    items = grouped | "ResolveItems" >> ResolveItems(item_field=plan.item_field)
    dead.append(items[DEAD])
    counts.append(items.counts)
    catalog = items.items | "CatalogEntry" >> beam.Map(lambda it: (it.item_id, it.categories))

    rule, key_kind = _initial_rule(pre.split)
    event_chunks = p | "ReadEvents" >> ReadChunks(plan.event_files, plan.event_format, chunk)
    events = event_chunks | "ParseEvents" >> ParseEvents(
        plan.event_format,
        plan.event_parser,
        catalog,
        pre.user_shards,
        rule,
        key_kind,
        plan.item_field,
    )
    dead.append(events[DEAD])
    counts.append(events.counts)
    rule_pcoll = _resolve_rule(p, events.split_keys, rule, key_kind, pre.split)

    timelines = events.batches | "BuildTimelines" >> BuildTimelines(
        pre.history_length, rule_pcoll, catalog
    )
    dead.append(timelines[DEAD])
    counts.append(timelines.counts)

    suffix = ".tfrecord.gz"
    # An empty split still gets one empty shard (WriteToTFRecord's sink is not skip_if_empty),
    # so every split folder holds a matchable file.
    for name in splits.SPLITS:
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
            os.path.join(out_dir, _DEAD_LETTERS.removesuffix(".jsonl")),
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
    _plot_stats(stats, item_counts, os.path.join(out_dir, "stats.png"), rule)
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


def _plot_stats(
    stats: dict[str, Any], item_counts: dict[str, tuple], path: str, rule: dict[str, Any]
) -> None:
    """Events per day (with the temporal split's cutoffs) and the item popularity curve, for a
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
        marks = [(key, label, color) for key, label, color in _CUTOFF_MARKS if rule.get(key)]
        for key, label, color in marks:
            day = format_timestamp(rule[key])[:10]
            index = sum(1 for d in per_day if d < day)
            ax_days.axvline(index - 0.5, color=color, linestyle="--", label=label)
        if marks:
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
