"""Training throughput with the text feature against the same model with ids only.

On the demo data (run `make demo` first, or pass --config with prepared outputs), trains one
warm-up epoch and then times further epochs of the same model three ways: with precomputed BERT
item embeddings projected into the item tower, without them (`model.use_text=false`), and with
them and the self-attention history encoder (`model.history_pooling=self_attention`, the
real-data configs' encoder) instead of the config's pooling. Both read
the same cached, shuffled TFRecords; each variant runs in its own process, interleaved, and the
figure is the median epoch of the best process.

    python benchmarks/train_bench.py [--config configs/demo.yaml] [--epochs 2] [--set k=v ...]

Target (issue 4): the text feature costs at most 1.5× the ids-only time. The last line printed
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
import pipeline.core.keras2  # noqa: E402, F401  (before TensorFlow: TFRS needs Keras 2)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.train import build_model, load_feature_space  # noqa: E402
from pipeline.core import schema  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402, F401 (the measuring subprocess uses it)
from pipeline.core.reader import make_dataset  # noqa: E402


class _EpochTimes(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def examples_per_second(config, epochs: int) -> tuple[float, int]:
    """Median examples/s over `epochs` timed epochs, after a warm-up epoch."""
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
    timer = _EpochTimes()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    return steps * config.train.batch_size / float(np.median(timer.times)), steps


def _measure_in_subprocess(config_path: str, overrides: list[str], epochs: int) -> float:
    """Each variant runs in a fresh process, so one cannot warm or slow the other."""
    code = (
        f"import json, sys; sys.path.insert(0, {_ROOT!r}); import benchmarks.train_bench as b; "
        f"print(json.dumps(b.examples_per_second(b.load_config({config_path!r}, {overrides!r}), "
        f"{epochs})[0]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


VARIANTS = {  # name: overrides of the config
    "ids_only": ["model.use_text=false"],
    "with_text": [],
    "self_attention": ["model.history_pooling=self_attention"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="processes per variant; best counts")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):  # interleaved
        for name, overrides in VARIANTS.items():
            rate = _measure_in_subprocess(args.config, [*args.set, *overrides], args.epochs)
            runs[name].append(rate)
    best = {name: max(rates) for name, rates in runs.items()}
    ratio = best["ids_only"] / best["with_text"]
    encoder = best["with_text"] / best["self_attention"]
    print(
        "runs (examples/s): " + "; ".join(f"{n} {[round(x) for x in r]}" for n, r in runs.items())
    )
    print(f"with text feature:  {best['with_text']:9,.0f} examples/s (median epoch, best process)")
    print(f"ids only:           {best['ids_only']:9,.0f} examples/s")
    print(f"self-attention:     {best['self_attention']:9,.0f} examples/s (with text)")
    print(f"text feature time / ids-only time: {ratio:.2f} (target ≤ 1.5)")
    print(f"self-attention encoder time / mean pooling time: {encoder:.2f}")
    print(
        json.dumps(
            {
                "with_text_examples_per_s": round(best["with_text"]),
                "ids_only_examples_per_s": round(best["ids_only"]),
                "self_attention_examples_per_s": round(best["self_attention"]),
                "text_cost_ratio": round(ratio, 3),
                "self_attention_cost_ratio": round(encoder, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
