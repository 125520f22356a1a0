"""Item-text embedding throughput: Beam RunInference against calling the encoder directly.

Both sides encode the demo catalog's item texts (the synthetic marketplace's 3,000 items) with
the configured checkpoint (all-MiniLM-L6-v2 by default), in the same batches: RunInference's
batches of `4 × text.batch_size` texts, each cut by `encode_texts` into length-ordered encoder
calls of `text.batch_size`. The RunInference time is the whole pipeline on the DirectRunner, as
`recsys embed-items` runs it (one in-process worker, which loads the model itself); the direct
time is the encoder calls alone, after the model was loaded and warmed up. The ratio compares
throughput with model loading excluded on both sides (RunInference reports its own load time);
the end-to-end figure is printed too.

    python benchmarks/text_embed_bench.py [--items N] [--config configs/demo.yaml]

Target (issue 3): RunInference items/s ≥ 0.8 × direct items/s. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pipeline.core.keras2  # noqa: F401  (before TensorFlow: TFRS needs Keras 2)

# isort: split
import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipeline.core.beam_step import new_pipeline, pipeline_options
from pipeline.core.config import load_config
from pipeline.embed.text_encoder import build_text_encoder, encode_texts
from pipeline.embed.text_inference import TextEncoderModelHandler
from pipeline.preprocess.records import Item, item_text
from pipeline.sample_data import generate


def catalog_texts(config, n_items: int | None) -> list[str]:
    """The demo catalog's item texts, composed as preprocess composes them."""
    data = generate(config.sample_data)
    texts = []
    for record in data.items:
        categories = record["categories"]
        if isinstance(categories, str):
            categories = categories.split("|")
        item = Item(
            record["item_id"],
            record["title"],
            record["description"],
            tuple(categories),
            (record.get("brand", ""),),
            "",
            0,
        )
        texts.append(item_text(item, config.text.fields))
    return texts[:n_items] if n_items else texts


def time_direct(encoder, texts: list[str], beam_batch: int, batch_size: int) -> float:
    """Seconds to encode `texts` in RunInference's batches by calling the encoder directly."""
    start = time.perf_counter()
    for i in range(0, len(texts), beam_batch):
        encode_texts(encoder, texts[i : i + beam_batch], batch_size)
    return time.perf_counter() - start


def time_runinference(config, texts: list[str]) -> tuple[float, float]:
    """Seconds of the whole RunInference pipeline, and the part it spent loading the model."""
    options = pipeline_options(config, [], 1, direct_running_mode="in_memory")
    start = time.perf_counter()
    p = new_pipeline(options)
    _ = (
        p
        | beam.Create(list(enumerate(texts)))
        | RunInference(KeyedModelHandler(TextEncoderModelHandler(config.text)))
        | beam.combiners.Count.Globally()
    )
    result = p.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    loads = result.metrics().query(MetricsFilter().with_name("load_model_latency_milli_secs"))
    return seconds, sum(d.committed.sum for d in loads["distributions"]) / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--items", type=int, default=None, help="first N items only")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side; best counts")
    args = parser.parse_args()
    config = load_config(args.config)
    t = config.text
    texts = catalog_texts(config, args.items)
    print(f"{len(texts):,} item texts, mean {sum(map(len, texts)) / len(texts):.0f} characters")

    start = time.perf_counter()
    encoder = build_text_encoder(t.checkpoint, t.max_length, t.pooling, t.normalize)
    load_seconds = time.perf_counter() - start
    beam_batch = t.batch_size * TextEncoderModelHandler.BATCHES_PER_CALL
    encode_texts(encoder, texts[:beam_batch], t.batch_size)  # warm-up: tracing, kernels
    runs = []
    for repeat in range(args.repeats):  # interleaved, so both sides see the same machine
        direct = time_direct(encoder, texts, beam_batch, t.batch_size)
        total, load = time_runinference(config, texts)
        print(
            f"run {repeat + 1}: direct {direct:.1f} s, RunInference {total:.1f} s "
            f"(load {load:.1f} s)"
        )
        runs.append((direct, total, load))
    direct_seconds = min(r[0] for r in runs)
    beam_seconds, beam_load = min((r[1], r[2]) for r in runs)
    rate = len(texts) / direct_seconds
    print(
        f"direct encoder calls:   {direct_seconds:6.1f} s  {rate:7.1f} items/s"
        f"  (best of {args.repeats}; model load {load_seconds:.1f} s, not counted)"
    )
    steady = beam_seconds - beam_load
    print(
        f"Beam RunInference:      {beam_seconds:6.1f} s  {len(texts) / beam_seconds:7.1f} items/s"
        f"  (whole pipeline; {beam_load:.1f} s of it loading and warming up the model)"
    )
    ratio = direct_seconds / steady
    print(
        f"RunInference / direct throughput, model load excluded on both sides: {ratio:.2f} "
        "(target ≥ 0.8)"
    )
    print(
        f"the same, whole pipeline against encoder calls alone: {direct_seconds / beam_seconds:.2f}"
    )
    print(
        f"time to embed the demo catalog ({len(texts):,} items) with RunInference: "
        f"{beam_seconds:.1f} s"
    )
    print(
        json.dumps(
            {
                "items": len(texts),
                "direct_items_per_s": round(len(texts) / direct_seconds, 1),
                "runinference_items_per_s": round(len(texts) / steady, 1),
                "runinference_vs_direct": round(ratio, 3),
                "runinference_end_to_end_vs_direct": round(direct_seconds / beam_seconds, 3),
                "demo_catalog_embed_seconds": round(beam_seconds, 1),
                "model_load_seconds": round(load_seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
