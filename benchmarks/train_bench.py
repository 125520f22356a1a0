"""Training throughput with the text feature against the same model with ids only.

On the demo data (run `make demo` first, or pass --config with prepared outputs), trains one
warm-up epoch and then times further epochs of the same model twice: with precomputed BERT item
embeddings projected into the item tower, and without them (`model.use_text=false`). Both read
the same cached, shuffled TFRecords.

    python benchmarks/train_bench.py [--config configs/demo.yaml] [--epochs 2]

Target (issue 4): the text feature costs at most 1.5× the ids-only time. The last line printed
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf

from models.train import build_model, load_feature_space
from pipeline import schema
from pipeline.config import load_config
from pipeline.reader import make_dataset


def examples_per_second(config, epochs: int) -> tuple[float, int]:
    tf.keras.utils.set_random_seed(config.train.seed)
    space = load_feature_space(config)
    model = build_model(config, space)
    data = make_dataset(
        schema.output_pattern(config.step_dir("preprocess"), "train"),
        schema.EVENTS,
        config.train.batch_size,
        shuffle_buffer=config.train.shuffle_buffer,
        seed=config.train.seed,
        cache=True,
        drop_remainder=True,
    )
    model.fit(data, epochs=1, verbose=0)  # warm-up: tracing, cache filled
    steps = sum(1 for _ in data)
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    return steps * config.train.batch_size * epochs / seconds, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with_text, steps = examples_per_second(load_config(args.config), args.epochs)
    ids_only, _ = examples_per_second(
        load_config(args.config, ["model.use_text=false"]), args.epochs
    )
    ratio = ids_only / with_text
    print(f"{steps} steps per epoch, {args.epochs} timed epochs each")
    print(f"with text feature: {with_text:9,.0f} examples/s")
    print(f"ids only:          {ids_only:9,.0f} examples/s")
    print(f"text feature time / ids-only time: {ratio:.2f} (target ≤ 1.5)")
    print(
        json.dumps(
            {
                "with_text_examples_per_s": round(with_text),
                "ids_only_examples_per_s": round(ids_only),
                "text_cost_ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
