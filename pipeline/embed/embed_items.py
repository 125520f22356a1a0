"""`recsys embed-items`: item text → BERT embeddings, with Beam RunInference, incrementally.

Reads the catalog written by `recsys preprocess` (its `text` feature, composed from
`text.fields`), and writes one record per item to `<work_dir>/embeddings/` (schema
`pipeline.core.schema.EMBEDDINGS`). An item whose text hash is unchanged since the last run, with
the same encoder (checkpoint files and settings), keeps its previous vector instead of being encoded
again. An item with empty text gets `has_text = 0` and no vector.

With `model.use_text` off nothing reads the embeddings, so the step loads no encoder and encodes
nothing: it publishes a folder holding only a manifest that says it was skipped and why (`recsys
run` still runs every step in order).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipeline.core import schema
from pipeline.core.beam_step import SUMMARY, pipeline_options, run_step, write_json
from pipeline.core.config import Config, TextConfig
from pipeline.core.errors import DataError
from pipeline.core.manifest import code_version, publish_dir, read_json, write_json_atomic
from pipeline.core.progress import say
from pipeline.core.staging import staging_dir
from pipeline.core.timestamps import format_timestamp
from pipeline.embed.checkpoint import resolve_checkpoint
from pipeline.embed.text_inference import TextEncoderModelHandler

__all__ = ["PlanEmbeddings", "encoder_fingerprint", "run", "text_hash"]

STEP = "embeddings"
_COUNTS = ("encoded", "reused", "without_text", "removed")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_fingerprint(text: TextConfig) -> str:
    """Identifies the encoder: checkpoint files and the settings that change its output."""
    settings = {"max_length": text.max_length, "pooling": text.pooling, "normalize": text.normalize}
    digest = hashlib.sha256(resolve_checkpoint(text.checkpoint).fingerprint().encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


class _PlanFn(beam.DoFn):
    def process(self, element):
        item_id, grouped = element
        texts = list(grouped["item"])
        if not texts:
            yield pvalue.TaggedOutput("removed", item_id)
            return
        text = texts[0]
        digest = text_hash(text)
        previous = next(iter(grouped["previous"]), None)
        if not text.strip():
            yield pvalue.TaggedOutput(
                "without_text",
                {"item_id": item_id, "text_hash": digest, "has_text": 0, "embedding": []},
            )
        elif previous is not None and previous["text_hash"] == digest and previous["has_text"]:
            yield pvalue.TaggedOutput("reused", previous)
        else:
            yield item_id, text


class PlanEmbeddings(beam.PTransform):
    """Joins the catalog `(item_id, text)` with the previous run's records `(item_id, record)`.

    Outputs: main `(item_id, text)` to encode; `reused` and `without_text` records ready to
    write; `removed` ids of previous records no longer in the catalog.
    """

    def expand(self, inputs):
        return (
            inputs
            | "JoinPrevious" >> beam.CoGroupByKey()
            | "Plan"
            >> beam.ParDo(_PlanFn()).with_outputs(
                "reused", "without_text", "removed", main="encode"
            )
        )


def _item_text(serialized: bytes) -> tuple[str, str]:
    record = schema.decode_example(serialized, schema.ITEMS)
    return record["item_id"], record["text"]


def _to_record(element) -> dict[str, Any]:
    item_id, result = element
    return {
        "item_id": item_id,
        "text_hash": text_hash(result.example),
        "has_text": 1,
        "embedding": [float(v) for v in result.inference],
    }


def build_pipeline(
    p: beam.Pipeline,
    text: TextConfig,
    items_pattern: str,
    previous_pattern: str | None,
    out_dir: str,
) -> None:
    """Adds the embedding job to `p`, writing under `out_dir`."""
    catalog = (
        p
        | "ReadItems" >> beam.io.ReadFromTFRecord(items_pattern)
        | "ItemText" >> beam.Map(_item_text)
    )
    if previous_pattern:
        previous = (
            p
            | "ReadPrevious" >> beam.io.ReadFromTFRecord(previous_pattern)
            | "DecodePrevious" >> beam.Map(lambda r: schema.decode_example(r, schema.EMBEDDINGS))
            | "KeyPrevious" >> beam.Map(lambda d: (d["item_id"], d))
        )
    else:
        previous = p | "NoPrevious" >> beam.Create([])
    plan = {"item": catalog, "previous": previous} | "PlanEmbeddings" >> PlanEmbeddings()
    encoded = (
        plan.encode
        | "Encode" >> RunInference(KeyedModelHandler(TextEncoderModelHandler(text)))
        | "ToRecord" >> beam.Map(_to_record)
    )
    _ = (
        (encoded, plan.reused, plan.without_text)
        | "AllRecords" >> beam.Flatten()
        | "Serialize" >> beam.Map(schema.EMBEDDINGS.encode)
        | "Write"
        >> beam.io.WriteToTFRecord(
            os.path.join(out_dir, "item_embeddings"), file_name_suffix=".tfrecord.gz"
        )
    )
    counts = [
        pcoll
        | f"Count{name}" >> beam.combiners.Count.Globally()
        | f"Name{name}" >> beam.Map(lambda n, name=name: {name: n})
        for name, pcoll in (
            ("encoded", encoded),
            ("reused", plan.reused),
            ("without_text", plan.without_text),
            ("removed", plan.removed),
        )
    ]
    merged = (
        counts
        | "AllCounts" >> beam.Flatten()
        | "MergeCounts"
        >> beam.CombineGlobally(lambda dicts: {k: v for d in dicts for k, v in d.items()})
    )
    write_json(merged, os.path.join(out_dir, SUMMARY, "counts.json"), "Counts")


def run(config: Config, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Embeds the catalog's item texts and returns the step's manifest (with `model.use_text`
    off: a manifest that says the step was skipped, and nothing else)."""
    started = time.time()
    if not config.model.use_text:
        return _skip(config, started)
    pre_dir = config.step_dir("preprocess")
    pre_manifest_path = schema.output_pattern(pre_dir, "manifest")
    if not os.path.exists(pre_manifest_path):
        raise DataError(f"no preprocess output in {pre_dir!r}; run `recsys preprocess` first")
    n_items = read_json(pre_manifest_path)["item_counts"]["kept"]
    fingerprint = encoder_fingerprint(config.text)
    final_dir = config.step_dir(STEP)
    previous_manifest = schema.output_pattern(final_dir, "manifest")
    previous_pattern = None
    if os.path.exists(previous_manifest):
        previous = read_json(previous_manifest)
        if previous.get("encoder_fingerprint") == fingerprint:
            previous_pattern = schema.output_pattern(final_dir, "item_embeddings")
        elif previous.get("skipped"):
            say("embed-items: the last run was skipped (use_text was off); encoding every item")
        else:
            say("embed-items: the encoder changed since the last run; encoding every item")
    workers = config.text.direct_num_workers
    # One worker gains nothing from a separate process: run it in this one.
    options = pipeline_options(
        config, beam_args, workers, direct_running_mode="in_memory" if workers == 1 else None
    )
    say(f"embed-items: {n_items:,} catalog items, encoder {config.text.checkpoint} → {final_dir}")

    def finish(out_dir: str) -> dict[str, Any]:
        counts = read_json(os.path.join(out_dir, SUMMARY, "counts.json"))
        for key in _COUNTS:
            counts.setdefault(key, 0)
        counts["items"] = counts["encoded"] + counts["reused"] + counts["without_text"]
        if counts["items"] != n_items:
            raise RuntimeError(
                f"embed-items wrote {counts['items']} records for {n_items} catalog items"
            )
        manifest = {
            "step": "embed-items",
            "schema_version": schema.SCHEMA_VERSION,
            "code_version": code_version(),
            "created_at": format_timestamp(int(time.time())),
            "text": {
                "checkpoint": config.text.checkpoint,
                "max_length": config.text.max_length,
                "pooling": config.text.pooling,
                "normalize": config.text.normalize,
                "fields": list(config.text.fields),
            },
            "encoder_fingerprint": fingerprint,
            "inputs": {"items": schema.output_pattern(pre_dir, "items")},
            "counts": counts,
            "outputs": {"item_embeddings": "item_embeddings-*.tfrecord.gz"},
            "timings": {"seconds": round(time.time() - started, 2)},
        }
        write_json_atomic(schema.output_pattern(out_dir, "manifest"), manifest)
        return manifest

    return run_step(
        config,
        STEP,
        options,
        build=lambda p, out_dir: build_pipeline(
            p, config.text, schema.output_pattern(pre_dir, "items"), previous_pattern, out_dir
        ),
        finish=finish,
    )


def _skip(config: Config, started: float) -> dict[str, Any]:
    """Publishes `<work_dir>/embeddings/` as a folder with only a manifest saying the step was
    skipped: no encoder is loaded, no item read. A local folder of an earlier run's embeddings
    is replaced, so nothing reads them as current; turning `use_text` on encodes every item."""
    final_dir = config.step_dir(STEP)
    reason = "model.use_text is off: nothing reads item text embeddings"
    say(f"embed-items: skipped ({reason})")
    manifest = {
        "step": "embed-items",
        "skipped": True,
        "reason": reason,
        "schema_version": schema.SCHEMA_VERSION,
        "code_version": code_version(),
        "created_at": format_timestamp(int(time.time())),
        "counts": {**dict.fromkeys(_COUNTS, 0), "items": 0},
        "outputs": {},
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    if "://" in final_dir:  # object stores: written in place, the manifest marks the folder
        write_json_atomic(schema.output_pattern(final_dir, "manifest"), manifest)
        return manifest
    staging = staging_dir(final_dir)
    try:
        write_json_atomic(schema.output_pattern(staging, "manifest"), manifest)
        publish_dir(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
