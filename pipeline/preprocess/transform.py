"""The preprocessing job as one composite transform: raw record chunks in, every output out.

`Preprocess` reads and writes nothing: `preprocess.run` reads the input files into chunks
(`ReadChunks`), applies it, and writes what it returns. Inside, the item side (`items`) runs
first, since events are checked against the catalog; then the event side (`events`) builds each
user's timeline and assigns the split, whose data-dependent boundary (a time quantile, or the
eval count's hash threshold) is resolved from keys the event parser collects on the way.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import apache_beam as beam
from apache_beam.transforms.stats import ApproximateQuantiles

from pipeline.core.config import Config, SplitConfig
from pipeline.core.timestamps import parse_timestamp
from pipeline.preprocess import splits
from pipeline.preprocess.combiners import MergeDicts, MergeItemCounts, SmallestDistinctKeys
from pipeline.preprocess.events import BuildTimelines, ParseEvents
from pipeline.preprocess.inputs import InputPlan
from pipeline.preprocess.items import (
    SIDE_INPUTS,
    EncodeItems,
    ParseItems,
    ParseSideRecords,
    ResolveItems,
)
from pipeline.preprocess.rejections import DEAD, to_json_line
from pipeline.preprocess.vocab import counts_lines, merge_counts, select_vocabulary

__all__ = ["SUMMARIES", "VOCABULARIES", "Preprocess"]

_QUANTILES = 1001
VOCABULARIES = ("users", "items", "categories")
"""The vocabularies: `Preprocess` returns `vocab_<name>` and `counts_<name>` for each."""
SUMMARIES = ("counts", "event_stats", "item_stats", "item_counts", "split")
"""The singletons `Preprocess` returns for the manifest and `stats.json`."""


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
    root: beam.pvalue.PBegin,
    split_keys,
    rule: splits.SplitRule,
    key_kind: str | None,
    sp: SplitConfig,
):
    """A singleton PCollection of the complete rule, from the split keys when it needs them."""
    if key_kind is None:
        return root | "SplitRule" >> beam.Create([rule])
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


class Preprocess(beam.PTransform):
    """Chunks of raw records → split event Examples, item Examples, vocabularies, dead letters
    and the summaries the manifest is made of.

    The input is a dict of PCollections of `(path, [(line, raw), ...], skipped_lines)` chunks
    (`ReadChunks`): `items`, `events`, and one per side input of the plan under its input name
    (`tags`, `plots`).

    The output is a dict of PCollections:

    * `train`, `validation`, `eval`: serialized event Examples (`schema.EVENTS`);
    * `items`: serialized item Examples with their popularity (`schema.ITEMS`);
    * `vocab_<name>` and `counts_<name>` for each of `VOCABULARIES`: one list of lines each
      (ids most frequent first; `id, train count, total count` rows);
    * `dead_letters`: one JSON line per rejected record, of every input;
    * the singletons of `SUMMARIES`: `counts` (read, kept and rejected per input and reason),
      `event_stats` and `item_stats` (merged partial statistics), `item_counts` (item →
      (train, total, first event time)) and `split` (the resolved split rule as a dict).

    Args:
      config: The job's configuration (`preprocess`, and `text.fields` for the item text).
      plan: What is read: formats, parsers, the item id's field name and the side inputs.
    """

    def __init__(self, config: Config, plan: InputPlan):
        super().__init__()
        self._config = config
        self._plan = plan

    def expand(self, inputs: dict[str, Any]) -> dict[str, Any]:
        pre, plan = self._config.preprocess, self._plan
        expected = {"items", "events", *(SIDE_INPUTS[s.kind] for s in plan.side_inputs)}
        if set(inputs) != expected:
            raise ValueError(
                f"Preprocess needs the inputs {sorted(expected)}, got {sorted(inputs)}"
            )

        parsed_items = inputs["items"] | "ParseItems" >> ParseItems(
            plan.item_format, plan.item_parser
        )
        grouped = {"items": parsed_items.items}
        dead = [parsed_items[DEAD]]
        counts = [parsed_items.counts | "ItemReadCounts" >> beam.Map(lambda c: {"items": c})]
        for side_input in plan.side_inputs:  # MovieLens tags, ml-1m plots
            name = SIDE_INPUTS[side_input.kind]
            side = inputs[name] | f"Parse{name.title()}" >> ParseSideRecords(
                side_input.fmt, side_input.kind
            )
            grouped[name] = side.records
            dead.append(side[DEAD])
            counts.append(side.counts)
        items = grouped | "ResolveItems" >> ResolveItems(item_field=plan.item_field)
        dead.append(items[DEAD])
        counts.append(items.counts)
        catalog = items.items | "CatalogEntry" >> beam.Map(lambda it: (it.item_id, it.categories))

        rule, key_kind = _initial_rule(pre.split)
        events = inputs["events"] | "ParseEvents" >> ParseEvents(
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
        root = beam.pvalue.PBegin(inputs["events"].pipeline)
        rule_pcoll = _resolve_rule(root, events.split_keys, rule, key_kind, pre.split)

        timelines = events.batches | "BuildTimelines" >> BuildTimelines(
            pre.history_length, rule_pcoll, catalog
        )
        dead.append(timelines[DEAD])
        counts.append(timelines.counts)

        item_counts = timelines.item_counts | "MergeItemCounts" >> beam.CombineGlobally(
            MergeItemCounts()
        )
        encoded_items = items.items | "EncodeItems" >> EncodeItems(
            item_counts, self._config.text.fields
        )
        outputs = {name: timelines[name] for name in splits.SPLITS}
        outputs["items"] = encoded_items.records
        outputs.update(self._vocabularies(timelines, items.items, item_counts))
        outputs["dead_letters"] = (
            dead | "AllDeadLetters" >> beam.Flatten() | "DeadLetterJson" >> beam.Map(to_json_line)
        )
        outputs["counts"] = (
            counts
            | "AllCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombineGlobally(MergeDicts())
        )
        outputs["event_stats"] = timelines.stats | "EventStats" >> beam.CombineGlobally(
            MergeDicts()
        )
        outputs["item_stats"] = encoded_items.stats | "ItemStats" >> beam.CombineGlobally(
            MergeDicts()
        )
        outputs["item_counts"] = item_counts
        outputs["split"] = rule_pcoll | "RuleDict" >> beam.Map(asdict)
        return outputs

    def _vocabularies(self, timelines, items, item_counts) -> dict[str, Any]:
        """`vocab_<name>` (the ids) and `counts_<name>` (the counts rows) of each vocabulary."""
        vocab = self._config.preprocess.vocab
        user_counts = (
            timelines.user_counts
            | "CollectUserCounts" >> beam.combiners.ToList()
            | "MergeUserCounts" >> beam.Map(merge_counts)
        )
        users = user_counts | "UserVocab" >> beam.Map(
            lambda c: (select_vocabulary(c, vocab.min_count), c)
        )
        catalog_ids = (
            items
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
            items
            | "Categories" >> beam.FlatMap(lambda it: it.categories)
            | "CountCategories" >> beam.combiners.Count.PerElement()
            | "CollectCategories" >> beam.combiners.ToList()
            | "CategoryVocab" >> beam.Map(lambda pairs: {k: (n, n) for k, n in pairs})
            | "SelectCategories"
            >> beam.Map(lambda c: (select_vocabulary(c, vocab.category_min_count), c))
        )
        outputs = {}
        for name, pcoll in zip(VOCABULARIES, (users, item_vocab, category_vocab), strict=True):
            outputs[f"vocab_{name}"] = pcoll | f"{name}Ids" >> beam.Map(lambda vc: vc[0])
            outputs[f"counts_{name}"] = pcoll | f"{name}CountLines" >> beam.Map(
                lambda vc: counts_lines(*vc)
            )
        return outputs
