"""Training on several workers at once (`train.strategy: multi_worker`): who writes what.

With `tf.distribute.MultiWorkerMirroredStrategy` every worker runs the same `recsys train` on the
same work directory with its own TF_CONFIG, and the workers move in lockstep: every step ends
in an all-reduce of the gradients across them, so they hold the same weights throughout. Their
writes would collide, so only one, the chief, writes the files they share (the backups'
bookkeeping, the selection, the published weights and manifest). Keras's own writers split the
same way: `BackupAndRestore` saves under `<backup>/chief`, which every worker restores from, and
the other workers' saves (and TensorBoard logs) go to `workertemp_<task>` folders of their own,
deleted after each save.

A save of a distributed model may take part in collective operations, so every worker calls
it; the chief's copy is the one kept, the others go to a temporary folder of their own and are
thrown away (the pattern of TensorFlow's multi-worker guide).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["barrier", "distribution_strategy", "split_each_batch", "writes_shared"]


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The `train.strategy` setting as a tf.distribute strategy.

    `multi_worker` must be created before TensorFlow runs its first operation: it configures
    the collective operations, which TensorFlow accepts only at start-up.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def writes_shared(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the files the workers share: the chief (TF_CONFIG's task of
    type "chief", else worker 0), or the only process of a run on one machine. The test is
    Keras's own (`should_checkpoint`), so the files written here and Keras's backups agree on
    which worker keeps them."""
    return strategy.extended.should_checkpoint


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker has called it (an all-reduce waits for every worker's share):
    after the chief has changed the shared files, before the others read them."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function  # eager collectives are slow, TensorFlow warns
    def all_reduce_one() -> tf.Tensor:
        one = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None)

    all_reduce_one()


def split_each_batch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` (of global batches) with each worker taking its slice of every batch.

    Under multi-worker training a batch of the input is the global batch: `train.batch_size`
    events per step, split among the workers. TensorFlow's default sharding gives each worker
    whole files when there are at least as many files as workers, but preprocess's shards (one
    user hash each) hold different numbers of events, so the workers would run different
    numbers of steps (one out of data feeding empty batches to keep in step with the others).
    Sharding by data every worker reads all files and keeps its slice of each global batch:
    the same batches, in the same order, as one worker trains on (the shuffle is seeded,
    `train.seed`, so every worker's copy orders the events alike). The price, each worker
    reading the whole split, is small beside a training step. Other strategies ignore the
    option.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
