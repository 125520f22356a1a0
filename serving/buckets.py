"""The shapes the compiled (XLA) parts of the serving graph see, and the list a server warms up.

XLA compiles a program per input shape, about a second each, so with `serving.xla` the serving
module pads its inputs to a few sizes before a compiled function: the batch to the next power
of two (`pad_batch`), and an `mmr` row's candidates to the next power of two of at least
`MIN_BUCKET` (`pad_candidates`). A server then compiles a handful of programs, not one per
request shape. The export's warmup requests (`serving/export.py`) send one request of each
batch size `batch_buckets` lists, so each program compiles when a version loads rather than on
its first request: the padding and that list must agree, hence one module.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["MIN_BUCKET", "batch_buckets", "pad_batch", "pad_candidates"]

MIN_BUCKET = 16  # the compiled `mmr` pads a row's candidates to a power of two, at least this


def batch_buckets(limit: int) -> list[int]:
    """The batch sizes a compiled signature pads batches of 1 to `limit` rows to (see
    `pad_batch`): 1, 2, 4, ... up to the first power of two ≥ `limit`."""
    sizes = [1]
    while sizes[-1] < limit:
        sizes.append(sizes[-1] * 2)
    return sizes


def pad_batch(inputs: list[tf.Tensor], batch: tf.Tensor) -> list[tf.Tensor]:
    """Every `[batch, ...]` input with zero rows after its own, to the next power of two
    (a bucket of `batch_buckets`). The extra rows ask for nothing (k = 0); callers cut them
    from the outputs."""
    extra = _power_of_two_at_least(batch) - batch
    return [tf.pad(x, [[0, extra]] + [[0, 0]] * (x.shape.rank - 1)) for x in inputs]


def pad_candidates(inputs: list[tf.Tensor], n: tf.Tensor) -> list[tf.Tensor]:
    """Every `[batch, n]` input with zero columns after its own, to the next power of two of
    at least `MIN_BUCKET`."""
    pad = [[0, 0], [0, _power_of_two_at_least(n, MIN_BUCKET) - n]]
    return [tf.pad(x, pad) for x in inputs]


def _power_of_two_at_least(n: tf.Tensor, minimum: int = 1) -> tf.Tensor:
    """The smallest power of two ≥ max(n, minimum) (an int32 scalar)."""
    powers = tf.constant([2**i for i in range(31)])
    found = tf.gather(powers, tf.searchsorted(powers, tf.reshape(n, [1])))[0]
    return tf.maximum(found, minimum)
