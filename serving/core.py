"""The numeric half of the serving module: retrieval, ranking, MMR and explanations.

`ServingCore` holds the catalog index (`serving/index.py`) as variables and the steps of a
request that take and give numbers only: catalog rows, hashes and vectors in; rows, positions
and scores out. That is what XLA can compile (it takes no strings), so with `serving.xla`
recommend's and mmr's numbers each run as one program (`_recommend_numbers`, `_mmr_numbers`,
wrapped as `_recommend_core` and `_mmr_core`): the executor's few microseconds per op, over
hundreds of small ops, were most of a request's time past retrieval. Without `serving.xla`
the same functions run as executor ops, and return the same answers.

The string half (id lookups, request checks, padding to compiled shapes, the signatures) is
`RecommenderServing` in `serving/module.py`, which extends this class; the benchmarks call
these methods on it to time a request's stages alone.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from models.query_blend import blend_query
from models.recommender import Recommender
from pipeline.core.config import ServingConfig
from serving.ids import first_hashes
from serving.index import CatalogIndex
from serving.mmr import mmr_select
from serving.mmr_compiled import mmr_select_static
from serving.partitions import Partitions, probes_for
from serving.probe import PartitionedIndex, blend_candidates
from serving.top_k import NEG, block_width, blocked_top_k

__all__ = ["NEG", "ServingCore", "relative_likelihood", "take", "top_k_excluding"]


def relative_likelihood(scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Log-scale scores `[batch, n]` → exp(score − the row's best valid score), in (0, 1]: each
    candidate's likelihood relative to the request's top candidate (0 where not valid).

    This is the relevance MMR receives. On this scale a candidate nearly as likely as the top
    one is worth nearly as much, and one a hundred times less likely is worth almost nothing,
    so diversity is bought among plausible items; the same scores min-max normalized would give
    the long tail of the candidates a large share of the range."""
    best = tf.reduce_max(tf.where(valid, scores, NEG), axis=1, keepdims=True)
    return tf.where(valid, tf.exp(tf.minimum(scores - best, 0.0)), 0.0)


def top_k_excluding(
    scores: tf.Tensor, count, rows: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top `count` scores of `[batch, catalog]` and their rows, without `rows` `[batch, n]`
    where `mask` (those come last, at `NEG`, only where fewer than `count` others exist).

    Of the top count + n, at most n are excluded: a second top-k over those few leaves them
    out, cheaper than writing into the catalog-wide score row before one top-k. Ties keep the
    lowest row first either way."""
    width = tf.minimum(count + tf.shape(rows)[1], tf.shape(scores)[1])
    top = tf.math.top_k(scores, k=width)
    hit = (top.indices[:, :, tf.newaxis] == rows[:, tf.newaxis, :]) & mask[:, tf.newaxis, :]
    kept = tf.math.top_k(tf.where(tf.reduce_any(hit, axis=2), NEG, top.values), k=count)
    return kept.values, tf.gather(top.indices, kept.indices, batch_dims=1)


def take(values: tf.Tensor, positions: tf.Tensor, fill) -> tf.Tensor:
    """`values[b, positions[b, j]]`, and `fill` where a position is -1 (no pick)."""
    taken = tf.gather(values, tf.maximum(positions, 0), batch_dims=1)
    return tf.where(positions >= 0, taken, fill)


class ServingCore(tf.Module):
    """The catalog index as variables, and the numbers of recommend and mmr.

    The index's candidate vectors are searched exactly or, where `serving.index` partitions
    them (a large catalog), through `PartitionedIndex`; either way retrieval returns the same
    kind of answer, and what follows it does not change.

    Args:
      model: The trained recommender (weights loaded).
      index: The model's catalog index (`build_index`).
      config: Serving limits and defaults.
    """

    def __init__(self, model: Recommender, index: CatalogIndex, config: ServingConfig):
        super().__init__()
        self.model = model
        self.config = config
        self.catalog_size = index.catalog_size
        self.num_candidates = min(config.num_candidates, self.catalog_size)
        # recommend's and mmr's numbers, after their string lookups: one XLA program per input
        # shape with `serving.xla`, executor ops otherwise.
        self._recommend_core = tf.function(
            self._recommend_numbers, jit_compile=config.xla, autograph=False
        )
        self._mmr_core = tf.function(self._mmr_numbers, jit_compile=config.xla, autograph=False)
        # The catalog index (`CatalogIndex` says what each table is), as variables.
        self.ids = tf.Variable(index.ids, dtype=tf.string, trainable=False, name="ids")
        self.item_vectors = tf.Variable(index.item_vectors, trainable=False, name="item_vectors")
        # The candidate vectors, searched exactly, or (`serving.index`) grouped in partitions
        # of which a request searches a few: then the exact table is left out of the model.
        self.index = self.partitioned = None
        if index.partitions is None:
            self.index = tf.Variable(index.index, trainable=False, name="index")
        else:
            self.partitioned = PartitionedIndex(index.partitions, self._probes(index.partitions))
        self.text_index = None
        if index.text_index is not None:
            self.text_index = tf.Variable(index.text_index, trainable=False, name="text_index")
        self.unknown_similarity = tf.Variable(
            index.unknown_similarity, trainable=False, name="unknown_similarity"
        )
        self.similarity_dim = index.similarity_dim
        self.catalog_table = tf.Variable(index.catalog_table, trainable=False, name="catalog_table")

    def _probes(self, partitions: Partitions) -> int:
        """`serving.index_probes`, raised so that any probed partitions hold the most items a
        signature asks for plus the most it excludes (the history; one item in
        `similar_items`): then no request gets fewer items than from exact search."""
        c = self.config
        most = max(self.num_candidates, c.max_candidates, c.max_k) + c.max_history
        return probes_for(partitions.sizes, c.index_probes, min(most, self.catalog_size))

    def index_summary(self) -> dict[str, object]:
        """How the catalog is searched, for the export's manifest and log."""
        if self.partitioned is None:
            return {"kind": "exact"}
        p = self.partitioned
        return {
            "kind": "partitioned",
            "partitions": int(p.centroids.shape[0]),
            "probes": p.probes,
            "width": p.width,  # slots per probed partition: its largest size
        }

    def _similarity(self, table_rows: tf.Tensor) -> tf.Tensor:
        """Similarity vectors of `_rows` (catalog row + 1; 0: zeros): whole rows of the table,
        cut (`mmr` measured about 0.007 ms slower than from a table of its own)."""
        return self._catalog(table_rows)[0]

    def _catalog(self, table_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Similarity and candidate vectors of `_rows` (catalog row + 1), one gather."""
        rows = tf.gather(self.catalog_table, table_rows)
        return rows[..., : self.similarity_dim], rows[..., self.similarity_dim :]

    def similarity_vectors(self) -> np.ndarray:
        """`[catalog, similarity_dim]`: the vectors MMR and the explanations compare."""
        return self.catalog_table.numpy()[1:, : self.similarity_dim]

    def _retrieve(
        self, query_vector, history_rows, exclude_seen, count, compiled=False, query_embedding=None
    ):
        """Top `count` cosines and catalog rows (0-based) for each request; `history_rows`: the
        history ids' catalog rows + 1 (0: outside the catalog); `compiled`: the caller runs
        under XLA; `query_embedding`: the requests' query text embeddings (zero rows: none),
        blended in where present. With a partitioned index, the top of the probed partitions
        (`serving/probe.py`), compiled or not."""
        query_vector = tf.math.l2_normalize(query_vector, axis=-1)
        rows = history_rows - 1  # -1: not in the catalog
        seen = (rows >= 0) & exclude_seen[:, tf.newaxis]
        blend = self.text_index is not None and query_embedding is not None
        if self.partitioned is not None:
            rescore = None
            if blend:  # the query's text over the probed candidates alone
                rescore = functools.partial(
                    blend_candidates,
                    query_embedding=query_embedding,
                    text_index=self.text_index,
                    weight=self.config.query_weight,
                )
            return self.partitioned.search(query_vector, count, rows, seen, rescore)
        scores = tf.matmul(query_vector, self.index, transpose_b=True)
        if blend:
            scores = blend_query(scores, query_embedding, self.text_index, self.config.query_weight)
        if not compiled:
            return top_k_excluding(scores, count, rows, seen)
        # Compiled, the score row is updated in place: the history's entries drop to `NEG`
        # (a scatter of n entries) before one top-k, which costs less than a wider top-k. Over
        # a large catalog that top-k is blocked (`serving/top_k.py`): the same result, cheaper.
        requests = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, tf.newaxis], tf.shape(rows))
        entries = tf.stack([requests, tf.maximum(rows, 0)], axis=-1)
        scores = tf.tensor_scatter_nd_min(scores, entries, tf.where(seen, NEG, float("inf")))
        block = block_width(self.catalog_size, count)
        if block is None:
            top = tf.math.top_k(scores, k=count)
            return top.values, top.indices
        return blocked_top_k(scores, count, block)

    def _relevance(self, query_vector, candidates, retrieval_scores):
        """The relevance MMR trades off (`serving.relevance`) for candidate vectors
        `[batch, n, dim]`: by default the retrieval logit (cosine / temperature) plus the log of
        the ranking head's prediction, i.e. the product of the two models' scores; a model
        trained without one task uses the other alone."""
        logit = retrieval_scores / self.model.config.temperature
        mode = self.config.relevance
        if not self.model.config.ranking_weight or mode == "retrieval":
            return logit
        ranked = self.model.rank_candidates(query_vector, candidates)
        if not self.model.config.retrieval_weight or mode == "ranking":
            return ranked
        return logit + tf.math.log(tf.maximum(ranked, 1e-3))

    def _explain(self, picked_rows, history_rows, valid):
        """For each picked item, the position in the history of the most similar history item
        (of those `valid` keeps that are in the catalog) and the cosine; the history's last
        position (a "" pad) and 0 when no such item is left or there is no pick."""
        # An id outside the catalog has table row 0, zeros: its cosine 0 would beat every
        # negative one, so it would explain picks it says nothing about.
        valid &= history_rows > 0
        picked = self._similarity(picked_rows + 1)
        history = self._similarity(history_rows)
        if self.config.xla:  # a dot, the cheapest form for XLA
            sims = tf.einsum("bkd,bhd->bkh", picked, history)
        else:  # products and a sum: at k × history × d this small, the executor's batched
            # matmul kernel costs more than the arithmetic
            sims = tf.reduce_sum(picked[:, :, tf.newaxis, :] * history[:, tf.newaxis], axis=-1)
        sims = tf.where(valid[:, tf.newaxis, :], sims, NEG)
        best = tf.argmax(sims, axis=-1, output_type=tf.int32)
        has_history = tf.reduce_any(valid, axis=-1)[:, tf.newaxis]
        found = tf.broadcast_to(has_history, tf.shape(best)) & (picked_rows >= 0)
        none = tf.shape(history_rows)[1] - 1
        best_score = tf.gather(sims, best, batch_dims=2)
        return tf.where(found, best, none), tf.where(found, best_score, 0.0)

    def _select(self, embeddings, relevance, valid, k, mmr_lambda):
        """MMR positions and scores: `max_k` columns when compiled (static shapes), max(k)
        columns otherwise; callers keep the first max(k)."""
        if self.config.xla:
            return mmr_select_static(embeddings, relevance, valid, k, mmr_lambda, self._max_picks)
        return mmr_select(embeddings, relevance, valid, k, mmr_lambda, tf.reduce_max(k))

    @property
    def _max_picks(self) -> int:
        return min(self.config.max_k, max(self.config.max_candidates, self.num_candidates))

    def _recommend_numbers(
        self,
        user_rows,
        history_rows,
        history_hashes,
        history_present,
        query_embedding,
        timestamp,
        exclude_seen,
        k,
        mmr_lambda,
    ):
        """recommend after its string lookups: history dedupe → query tower → retrieval →
        ranking → MMR → explanation, numbers in and out, so XLA can compile it whole.

        Returns the picks' catalog rows (-1 pads), MMR scores, relevance, and the position in
        the history of each pick's explanation (the last, a "" pad: none) with its cosine."""
        query_vector, history_mask = self._query_numbers(
            user_rows, history_rows, history_hashes, history_present, query_embedding, timestamp
        )
        cosines, rows = self._retrieve(
            query_vector,
            history_rows,
            exclude_seen,
            self.num_candidates,
            self.config.xla,
            query_embedding,
        )
        valid = cosines > NEG / 2  # excluded items are never picked
        embeddings, candidates = self._catalog(rows + 1)
        relevance = relative_likelihood(self._relevance(query_vector, candidates, cosines), valid)
        positions, scores = self._select(embeddings, relevance, valid, k, mmr_lambda)
        picked = take(rows, positions, -1)
        explanation, explanation_score = self._explain(picked, history_rows, history_mask)
        return (
            picked,
            scores,
            take(relevance, positions, 0.0),
            explanation,
            explanation_score,
        )

    def _query_numbers(
        self, user_rows, history_rows, history_hashes, history_present, query_embedding, timestamp
    ):
        """The query vectors and the history's mask (first occurrences) from the lookups'
        results (`_history_numbers`), numbers only."""
        history_mask = first_hashes(history_hashes, history_present, self.config.max_history)
        query_vector = self.model.query_tower.encode(
            user_rows,
            tf.gather(self.item_vectors, history_rows),
            history_mask,
            query_embedding,
            timestamp,
        )
        return query_vector, history_mask

    def _mmr_numbers(self, rows, relevance, valid, k, mmr_lambda):
        """mmr after its lookups: the candidates' catalog rows (-1: outside the catalog) → MMR
        positions and scores (see `_select`) and the picks' relevance."""
        embeddings = self._similarity(rows + 1)
        # An id outside the catalog still has a vector (the model's out-of-vocabulary one).
        outside = valid & (rows < 0)
        embeddings = tf.where(outside[..., tf.newaxis], self.unknown_similarity, embeddings)
        positions, scores = self._select(embeddings, relevance, valid, k, mmr_lambda)
        return positions, scores, take(relevance, positions, 0.0)
