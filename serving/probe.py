"""The partitioned (IVF) index, served half: retrieval that scores a few partitions, not the whole
catalog, in core TensorFlow ops that XLA compiles and the stock TF Serving binary runs.

A request scores the partitions' centroids, takes its `probes` closest partitions, scores their
members exactly, leaves out its excluded rows and returns the top `count` as (scores, catalog
rows), the answer exact retrieval (`ServingCore._retrieve`) gives, so ranking, MMR and the
explanations after it do not know which index ran.

The layout (`serving/partitions.py`) is one table of the catalog's vectors reordered by
partition, plus offsets: partition p is rows `offsets[p]` to `offsets[p + 1]`. Every probed
partition takes `width` (its largest size) consecutive rows from its start, so each request
scores `probes × width` slots whatever partitions it probes: static shapes, one compiled
program. Slots past a partition's end (they belong to the next partition, or lie past the
table) are masked to `NEG` with row -1, so they are never picked before a real item. Nothing
pads the table itself, which stays the catalog's size.

Excluded rows are found through `places` (each catalog row's partition and position in it):
where that partition is probed, the row's slot drops to `NEG`, a scatter of at most one entry
per history item. A probed partition that the history mostly fills thus gives few items, and
the other probed ones the rest: the export probes enough partitions that any of them together
hold the most a request takes plus the most it excludes (`probes_for`), so a request gets as
many items as exact retrieval would give it, if not always the same ones.
"""

from __future__ import annotations

import tensorflow as tf

from serving.partitions import Partitions
from serving.top_k import NEG

__all__ = ["PartitionedIndex", "blend_candidates", "top_by_row"]


class PartitionedIndex(tf.Module):
    """The partitioned index as variables, and its search.

    Args:
      partitions: The export's partitions (`build_partitions`).
      probes: Partitions each request scores (at most all of them).
    """

    def __init__(self, partitions: Partitions, probes: int):
        super().__init__()
        if probes < 1:
            raise ValueError(f"probes must be at least 1 (got {probes})")
        self.probes = min(probes, partitions.count)
        self.width = partitions.width
        self.catalog_size = len(partitions.rows)
        self.centroids = tf.Variable(partitions.centroids, trainable=False, name="centroids")
        self.vectors = tf.Variable(partitions.vectors, trainable=False, name="partition_vectors")
        self.rows = tf.Variable(partitions.rows, trainable=False, name="partition_rows")
        self.offsets = tf.Variable(partitions.offsets, trainable=False, name="partition_offsets")
        self.places = tf.Variable(partitions.places(), trainable=False, name="partition_places")

    @property
    def slots(self) -> int:
        """Items each request scores: `probes × width`, padding included."""
        return self.probes * self.width

    def search(self, query, count, rows, mask, rescore=None) -> tuple[tf.Tensor, tf.Tensor]:
        """The top `count` of the probed partitions' members for each request, as exact
        retrieval returns them.

        Args:
          query: `[batch, dim]` query vectors (the scores are their dot products with the
            candidate vectors).
          count: Items per request: an int (static, as XLA needs) or a scalar tensor; at most
            `slots`.
          rows: `[batch, n]` int32 catalog rows a request may exclude (-1: outside the
            catalog).
          mask: `[batch, n]` bool: which of `rows` it excludes.
          rescore: Optional `(scores [batch, slots], catalog rows [batch, slots]) → scores`,
            applied before the exclusions (a free-text query's blend).

        Returns:
          `[batch, count]` scores, best first, and catalog rows: excluded items and padding
          last, at `NEG` (padding with row -1), only where fewer than `count` others exist.
          Equal scores keep the lower catalog row first, as exact top-k does (see
          `top_by_row` for the one limit).
        """
        probed = tf.math.top_k(tf.matmul(query, self.centroids, transpose_b=True), self.probes)
        probed = probed.indices  # [batch, probes]: the closest centroids first
        starts = tf.gather(self.offsets, probed)[:, :, tf.newaxis]
        ends = tf.gather(self.offsets, probed + 1)[:, :, tf.newaxis]
        positions = starts + tf.range(self.width)  # [batch, probes, width]
        member = tf.reshape(positions < ends, [-1, self.slots])
        positions = tf.reshape(tf.minimum(positions, self.catalog_size - 1), [-1, self.slots])
        candidate_rows = tf.where(member, tf.gather(self.rows, positions), -1)
        scores = tf.einsum("bd,bsd->bs", query, tf.gather(self.vectors, positions))
        if rescore is not None:
            scores = rescore(scores, candidate_rows)
        scores = self._exclude(tf.where(member, scores, NEG), probed, rows, mask)
        return top_by_row(scores, candidate_rows, count)

    def _exclude(self, scores, probed, rows, mask):
        """`scores` `[batch, slots]` with the slot of each masked row, where its partition is
        probed, at `NEG` (rows outside the probed partitions are not among the slots)."""
        places = tf.gather(self.places, tf.maximum(rows, 0))
        partition, position = places // self.width, places % self.width
        match = partition[:, :, tf.newaxis] == probed[:, tf.newaxis, :]  # [batch, n, probes]
        hit = tf.reduce_any(match, axis=2) & mask
        probe = tf.argmax(tf.cast(match, tf.int32), axis=2, output_type=tf.int32)
        slot = tf.where(hit, probe * self.width + position, 0)
        requests = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, tf.newaxis], tf.shape(rows))
        entries = tf.stack([requests, slot], axis=-1)
        return tf.tensor_scatter_nd_min(scores, entries, tf.where(hit, NEG, float("inf")))


def top_by_row(scores, rows, count) -> tuple[tf.Tensor, tf.Tensor]:
    """The top `count` of `scores` `[batch, n]` with their `rows` `[batch, n]`, equal scores in
    ascending row (exact retrieval's order: its scores' columns are the rows).

    A top-k breaks ties by column, and here the columns are in probe order, so: the top
    2 × `count` by score, reordered by row, and then the top `count` of those, whose ties now
    fall to the lower row. Exact wherever at most 2 × `count` items score at least the
    `count`-th score (a tie wider than that keeps the first of it in probe order)."""
    n = scores.shape[1]
    wide = min(2 * count, n) if isinstance(count, int) else tf.minimum(2 * count, n)
    top = tf.math.top_k(scores, k=wide)
    top_rows = tf.gather(rows, top.indices, batch_dims=1)
    by_row = tf.math.top_k(-top_rows, k=wide).indices  # ascending rows
    top_rows = tf.gather(top_rows, by_row, batch_dims=1)
    best = tf.math.top_k(tf.gather(top.values, by_row, batch_dims=1), k=count)
    return best.values, tf.gather(top_rows, best.indices, batch_dims=1)


def blend_candidates(scores, rows, query_embedding, text_index, weight: float) -> tf.Tensor:
    """`models/query_blend.py`'s blend over the probed candidates alone: `(1 - weight)` × their
    scores + `weight` × the query's cosine to their text, where a request has a query.

    Args:
      scores: `[batch, slots]` the model's cosines of the candidates.
      rows: `[batch, slots]` their catalog rows (-1: padding, given row 0's text).
      query_embedding: `[batch, text_dim]` the queries' text embeddings (zero rows: none).
      text_index: `[catalog, text_dim]` unit text embeddings.
      weight: The text cosine's share where a query is present.

    The candidates' text rows are gathered inside the cond: a batch without a query pays
    nothing. The partitions are probed with the model's query vector alone, so a query's
    text reranks what the model's neighbourhood holds; it does not reach beyond it."""
    present = tf.reduce_any(query_embedding != 0.0, axis=-1)

    def blended():
        unit = tf.math.l2_normalize(query_embedding, axis=-1)
        text = tf.einsum("bt,bst->bs", unit, tf.gather(text_index, tf.maximum(rows, 0)))
        mixed = (1.0 - weight) * scores + weight * text
        return tf.where(present[:, tf.newaxis], mixed, scores)

    return tf.cond(tf.reduce_any(present), blended, lambda: scores)
