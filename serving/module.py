"""The serving module: the trained towers, the catalog index and MMR in one `tf.Module`.

Every signature in `serving/signatures.py` is a `tf.function` here. The catalog index is the
candidate embedding of every catalog item (cold items included, through their text and
categories), computed once at export and stored as a variable; retrieval is an exact
brute-force matmul + top-k inside the graph or, over a large catalog, a search of the few
k-means partitions closest to the query (`serving.index`: `serving/probe.py`), both in ops the
stock TF Serving binary runs; `retrieve`, recommend and `similar_items` search the same one.

recommend (`serving_default`) = query tower → top `num_candidates` of the catalog (the request's
history excluded when asked) → the ranking head scores them → MMR picks `k` → for each pick,
the history item most similar to it (the explanation).

Every id list is read as "first occurrence of each id, "" ignored" (`serving/ids.py`: TF
Serving's batching pads a shorter row with the request's first id, and so padding changes
nothing).

With `serving.xla` (the default), recommend's and mmr's numbers after their string lookups run
as one XLA program each (`serving/core.py`). Inputs are padded to static shapes first (the
history to `max_history` + 1, an `mmr` row and the batch to powers of two: `serving/buckets.py`),
so a server compiles a handful of programs, not one per request shape.

Requests are checked in the graph: an input of the wrong rank or number of rows, a bad `k`,
`mmr_lambda`, history or query length, or a NaN or infinite `mmr` relevance fails with
INVALID_ARGUMENT and a message that names the argument, and so does a non-empty query to a model
exported without a text encoder (rather than being ignored). Unknown user and item ids go through
the model's out-of-vocabulary rows, and a history id outside the catalog never explains a pick;
an empty history ("" pads), an empty query and a batch of no rows (an empty answer) are normal.
The checks themselves are in `serving/checks.py`.

This class is the string half: id lookups, checks, padding and the signatures, over the numeric
half it extends (`ServingCore`: the catalog index as variables, retrieval, ranking, MMR and the
explanations). The index itself is computed before either, in NumPy (`serving/index.py`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.recommender import Recommender
from pipeline.core.config import ServingConfig
from pipeline.embed.text_encoder import TextEncoder
from serving.buckets import pad_batch, pad_candidates
from serving.checks import check_batch, check_range, checked_ranks, mmr_checks, query_checks
from serving.core import NEG, ServingCore, take, top_k_excluding
from serving.ids import first_occurrences, id_hashes
from serving.index import build_index
from serving.signatures import input_specs

__all__ = ["RecommenderServing"]


class RecommenderServing(ServingCore):
    """The exported model.

    Args:
      model: The trained recommender (weights loaded).
      catalog_ids: Every catalog item, in the model's catalog order.
      text_embeddings: `[catalog, text_dim]` text embeddings (zero rows without text), used by
        MMR and the explanations when `config.mmr_embedding` is `text`; like the candidate
        vectors, projected to `config.similarity_dim` directions at export.
      text_encoder: The BERT encoder for free-text queries (None: a request with a non-empty
        query fails, naming `query`).
      config: Serving limits and defaults.
    """

    def __init__(
        self,
        model: Recommender,
        catalog_ids: list[str],
        text_embeddings: np.ndarray | None,
        text_encoder: TextEncoder | None,
        config: ServingConfig,
    ):
        index = build_index(
            model, catalog_ids, text_embeddings, config, text_queries=text_encoder is not None
        )
        super().__init__(model, index, config)
        self.text_encoder = text_encoder
        if text_encoder is not None:
            # One function that every signature calls: BERT is traced and saved once, not once
            # per signature that takes a query (the export's time and size were mostly that).
            self._encode_queries = tf.function(
                self._encode_queries_inline,
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            )

    # ----------------------------------------------------------------------------------------
    # Building blocks.

    def _rows(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Catalog row + 1 of each id (0 for "" and ids outside the catalog)."""
        return tf.cast(self.model.items.catalog_rows(item_ids), tf.int32)

    def _item_vectors(self, item_ids: tf.Tensor) -> tf.Tensor:
        """The item encoder's vectors of history ids, from the table computed at export."""
        return tf.gather(self.item_vectors, self._rows(item_ids))

    def _query_vector(self, features):
        return self.model.query_vector(features, item_vectors=self._item_vectors)

    def _query_features(self, user_id, history_item_ids, query, timestamp, mask=True):
        """The checked request as the query tower's features (`mask` False: without the
        history's `history_mask`, for a caller that computes it itself)."""
        c = self.config
        encoder = self.text_encoder is not None
        checks = query_checks(user_id, history_item_ids, query, timestamp, c, encoder)
        with tf.control_dependencies(checks):
            now = tf.cast(tf.timestamp(), tf.int64)
            timestamp = tf.where(timestamp == 0, now, timestamp)
            features = {  # identities: whatever reads them runs after the checks
                "user_id": tf.identity(user_id),
                "history_item_ids": tf.identity(history_item_ids),
                "timestamp": timestamp,
            }
            if mask:
                features["history_mask"] = first_occurrences(history_item_ids, c.max_history)
            if self.text_encoder is not None:
                features["query_text_embedding"] = self._encode_queries(query)
        return features

    def _encode_queries_inline(self, query: tf.Tensor) -> tf.Tensor:
        """BERT embeddings of the queries; zero rows for empty ones (BERT skipped when every
        query of the batch is empty)."""
        present = tf.strings.length(tf.strings.strip(query)) > 0
        dim = self.text_encoder.dimension

        def encode():
            vectors = self.text_encoder(query, training=False)
            return vectors * tf.cast(present, vectors.dtype)[:, tf.newaxis]

        return tf.cond(tf.reduce_any(present), encode, lambda: tf.zeros([tf.shape(query)[0], dim]))

    def _history_numbers(self, history_ids: tf.Tensor) -> list[tf.Tensor]:
        """What the compiled core takes of the (padded) history ids: their catalog rows + 1,
        their hashes, and where an id is not ""."""
        return [self._rows(history_ids), id_hashes(history_ids), history_ids != ""]

    def _compiled_inputs(self, inputs: list[tf.Tensor], batch: tf.Tensor) -> list[tf.Tensor]:
        """With `serving.xla`, every `[batch, ...]` input padded with zero rows to the next
        power of two: XLA compiles a program per input shape (about a second each), and
        buckets bound those to one per power of two (recommend's warmup requests compile each
        bucket up to the server's batch limit at load: `serving/buckets.py`). The extra rows
        ask for nothing (k = 0) and are cut from the outputs."""
        return pad_batch(inputs, batch) if self.config.xla else inputs

    def _first_k(self, scores, rows, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Ids and scores of each row's first `k` of a top-k over the index ("" and 0 past a
        row's `k` or where only excluded items are left)."""
        keep = tf.range(tf.shape(rows)[1])[tf.newaxis, :] < k[:, tf.newaxis]
        keep &= scores > NEG / 2
        rows = tf.where(keep, rows, -1)
        return {"item_ids": self._ids(rows), "scores": tf.where(keep, scores, 0.0)}

    def _ids(self, rows: tf.Tensor) -> tf.Tensor:
        """Item ids of catalog rows (0-based; -1 gives "")."""
        return tf.gather(self.ids, rows + 1)

    # ----------------------------------------------------------------------------------------
    # Signatures.

    @tf.function(input_signature=input_specs("serving_default"), autograph=False)
    def recommend(self, user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen):
        user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen = checked_ranks(
            "serving_default",
            user_id,
            history_item_ids,
            query,
            timestamp,
            k,
            mmr_lambda,
            exclude_seen,
        )
        c = self.config
        batch = tf.shape(user_id)[0]
        limit = min(c.max_k, self.num_candidates)
        checks = [
            check_batch("k", k, batch),
            check_batch("mmr_lambda", mmr_lambda, batch),
            check_batch("exclude_seen", exclude_seen, batch),
            check_range(k, 1, limit, "k"),
            check_range(mmr_lambda, 0.0, 1.0, "mmr_lambda"),
        ]
        features = self._query_features(user_id, history_item_ids, query, timestamp, mask=False)
        # The history's ids with "" columns after them: one more than it has (where a pick
        # without an explanation points) or, compiled, up to max_history + 1 (one program
        # for every history length). Its length is checked by now.
        checked = features["history_item_ids"]
        width = c.max_history + 1 if c.xla else tf.shape(checked)[1] + 1
        history_ids = tf.pad(checked, [[0, 0], [0, width - tf.shape(checked)[1]]])
        inputs = [
            self.model.query_tower.user_lookup(features["user_id"]),
            *self._history_numbers(history_ids),
            features["timestamp"],
            exclude_seen,
            k,
            mmr_lambda,
        ]
        if self.text_encoder is not None:
            inputs.append(features["query_text_embedding"])
        with tf.control_dependencies(checks):
            inputs = self._compiled_inputs(inputs, batch)
        query_embedding = inputs.pop() if self.text_encoder is not None else None
        user_rows, history_rows, hashes, present, timestamp, exclude_seen, k_rows, lam = inputs
        outputs = self._recommend_core(
            user_rows,
            history_rows,
            hashes,
            present,
            query_embedding,
            timestamp,
            exclude_seen,
            k_rows,
            lam,
        )
        picked, scores, relevance, explanation, explanation_score = (
            x[:batch, : tf.reduce_max(k)] for x in outputs
        )
        return {
            "item_ids": self._ids(picked),
            "scores": scores,
            "relevance": relevance,
            "explanation_item_ids": tf.gather(history_ids, explanation, batch_dims=1),
            "explanation_scores": explanation_score,
        }

    @tf.function(input_signature=input_specs("retrieve"), autograph=False)
    def retrieve(self, user_id, history_item_ids, query, timestamp, k, exclude_seen):
        user_id, history_item_ids, query, timestamp, k, exclude_seen = checked_ranks(
            "retrieve", user_id, history_item_ids, query, timestamp, k, exclude_seen
        )
        batch = tf.shape(user_id)[0]
        limit = min(self.config.max_candidates, self.catalog_size)
        checks = [
            check_batch("k", k, batch),
            check_batch("exclude_seen", exclude_seen, batch),
            check_range(k, 1, limit, "k"),
        ]
        features = self._query_features(user_id, history_item_ids, query, timestamp)
        query_vector = self._query_vector(features)
        with tf.control_dependencies(checks):  # k and exclude_seen are first used here
            scores, rows = self._retrieve(
                query_vector,
                self._rows(history_item_ids),
                exclude_seen,
                _widest(k),
                query_embedding=features.get("query_text_embedding"),
            )
        return self._first_k(scores, rows, k)

    @tf.function(input_signature=input_specs("rank"), autograph=False)
    def rank(self, user_id, history_item_ids, query, timestamp, item_ids):
        user_id, history_item_ids, query, timestamp, item_ids = checked_ranks(
            "rank", user_id, history_item_ids, query, timestamp, item_ids
        )
        batch = tf.shape(user_id)[0]
        checks = [
            check_batch("item_ids", item_ids, batch),
            check_range(tf.shape(item_ids)[1], 0, self.config.max_candidates, "item_ids length"),
        ]
        with tf.control_dependencies(checks):
            features = self._query_features(user_id, history_item_ids, query, timestamp)
        query_vector = self._query_vector(features)
        scores = self.model.rank_candidates(query_vector, self.model.candidate_vector(item_ids))
        return {"scores": tf.where(item_ids != "", scores, 0.0)}

    @tf.function(input_signature=input_specs("mmr"), autograph=False)
    def mmr(self, item_ids, relevance, k, mmr_lambda):
        item_ids, relevance, k, mmr_lambda = checked_ranks(
            "mmr", item_ids, relevance, k, mmr_lambda
        )
        batch = tf.shape(item_ids)[0]
        # The dedupe sorts 500 ids: the executor's sort costs less than XLA's here.
        valid = first_occurrences(item_ids, self.config.max_candidates)
        checks = mmr_checks(item_ids, relevance, valid, k, mmr_lambda, batch, self.config)
        with tf.control_dependencies(checks):
            inputs = [self._rows(item_ids) - 1, tf.identity(relevance), tf.identity(valid)]
        if self.config.xla:  # candidates padded to a power of two: few compiled programs
            inputs = pad_candidates(inputs, tf.shape(item_ids)[1])
        outputs = self._mmr_core(*self._compiled_inputs([*inputs, k, mmr_lambda], batch))
        positions, scores, picked_relevance = (x[:batch, : tf.reduce_max(k)] for x in outputs)
        return {
            "item_ids": take(item_ids, positions, ""),
            "scores": scores,
            "relevance": picked_relevance,
        }

    @tf.function(input_signature=input_specs("similar_items"), autograph=False)
    def similar_items(self, item_ids, k):
        item_ids, k = checked_ranks("similar_items", item_ids, k)
        batch = tf.shape(item_ids)[0]
        checks = [
            check_batch("k", k, batch),
            check_range(k, 1, min(self.config.max_k, max(self.catalog_size - 1, 1)), "k"),
        ]
        with tf.control_dependencies(checks):
            vectors = self.model.candidate_embedding(item_ids)
        own = (self._rows(item_ids) - 1)[:, tf.newaxis]  # an item is not similar to itself
        if self.partitioned is not None:
            found = self.partitioned.search(vectors, _widest(k), own, own >= 0)
        else:
            scores = tf.matmul(vectors, self.index, transpose_b=True)
            found = top_k_excluding(scores, _widest(k), own, own >= 0)
        return self._first_k(*found, k)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The signature map for `tf.saved_model.save`."""
        return {
            "serving_default": self.recommend.get_concrete_function(),
            "retrieve": self.retrieve.get_concrete_function(),
            "rank": self.rank.get_concrete_function(),
            "mmr": self.mmr.get_concrete_function(),
            "similar_items": self.similar_items.get_concrete_function(),
        }


def _widest(k: tf.Tensor) -> tf.Tensor:
    """The most columns a row asks for: max(k), and 0 for a batch of no rows (whose max is
    INT_MIN, which top-k refuses)."""
    return tf.maximum(tf.reduce_max(k), 0)
