"""The serving module: the trained towers, the catalog index and MMR in one `tf.Module`.

Every signature in `serving/signatures.py` is a `tf.function` here. The catalog index is the
candidate embedding of every catalog item (cold items included, through their text and
categories), computed once at export and stored as a variable; retrieval is an exact
brute-force matmul + top-k inside the graph, which the stock TF Serving binary runs.

recommend (`serving_default`) = query tower → top `num_candidates` of the catalog (the request's
history excluded when asked) → the ranking head scores them → MMR picks `k` → for each pick,
the history item most similar to it (the explanation).

TF Serving's server-side batching pads a shorter row of a 2-D string input with the first
element of that request's tensor (not ""), so every id list is read as "first occurrence of each
id, "" ignored": padding then changes nothing. The one cost: a history that returns to an item
counts it once, at its first position.

With `serving.xla` (the default), recommend's and mmr's numbers after their string lookups run
as one XLA program (`_recommend_numbers`, `_mmr_numbers`): the executor's few microseconds per op,
over hundreds of small ops, were most of a request's time past retrieval. Inputs are padded to
static shapes first (the history to `max_history` + 1, an `mmr` row to a power of two, the batch to
a power of two), so a server compiles a handful of programs, not one per request shape.

Requests are checked in the graph: an input of the wrong rank or number of rows, a bad `k`,
`mmr_lambda`, history or query length, or a NaN or infinite `mmr` relevance fails with
INVALID_ARGUMENT and a message that names the argument, and so does a non-empty query to a model
exported without a text encoder (rather than being ignored). Unknown user and item ids go through
the model's out-of-vocabulary rows, and a history id outside the catalog never explains a pick;
an empty history ("" pads), an empty query and a batch of no rows (an empty answer) are normal.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.query_blend import blend_query, text_index
from models.recommender import Recommender
from models.text_encoder import TextEncoder
from pipeline.config import ServingConfig
from serving.mmr import mmr_select
from serving.mmr_compiled import mmr_select_static
from serving.signatures import input_specs
from serving.top_k import block_width, blocked_top_k

__all__ = ["RecommenderServing", "batch_buckets"]

_NEG = -1e9
_PAIRWISE_MAX = 256  # `first_occurrences` compares every pair of ids up to this many per row
_MIN_BUCKET = 16  # the compiled `mmr` pads a row's candidates to a power of two, at least this


def _assert(ok: tf.Tensor, data: list, name: str, summarize: int = 3) -> tf.Operation:
    """Fails the request with `data` as the message unless `ok`.

    The Assert op itself: `tf.debugging.Assert` wraps one with float data in a cond, which
    costs a request about ten more graph nodes per check, whether it passes or not."""
    data = [tf.convert_to_tensor(x) for x in data]
    return tf.raw_ops.Assert(condition=ok, data=data, summarize=summarize, name=name)


def _check_range(value: tf.Tensor, low, high, name: str) -> tf.Operation:
    """Fails the request unless every `low ≤ value ≤ high`."""
    low = tf.cast(low, value.dtype)
    high = tf.cast(high, value.dtype)
    ok = tf.reduce_all((value >= low) & (value <= high))
    message = [f"{name} must be in [", low, ", ", high, "]; got ", value]
    return _assert(ok, message, "check_" + name.replace(" ", "_"), summarize=10)


def _checked_ranks(signature: str, *inputs: tf.Tensor) -> list[tf.Tensor]:
    """A signature's inputs, as identities that run after a check of each one's rank.

    Neither a loaded signature nor TF Serving holds a request to the signature's shapes (the
    REST row format turns a bare id per instance into a 1-D `history_item_ids`), and a value of
    another rank would fail deep in the graph, naming an op (strided_slice, ConcatV2) instead
    of the input. The rank is counted from the shape's values: Rank, or Size of the shape,
    would be folded by Grappler to the signature's static rank, and pass anything."""
    checks = []
    for value, spec in zip(inputs, input_specs(signature), strict=True):
        dims = tf.shape(value)
        rank = tf.reduce_sum(tf.sign(dims + 1))  # 1 per dimension, at run time
        layout = "[batch, n]" if spec.shape.rank == 2 else "[batch]"
        message = [f"{spec.name} must be {layout}, rank {spec.shape.rank}; got shape ", dims]
        checks.append(_assert(tf.equal(rank, spec.shape.rank), message, f"{spec.name}_rank"))
    with tf.control_dependencies(checks):
        return [tf.identity(value) for value in inputs]


def _check_batch(name: str, tensor: tf.Tensor, batch: tf.Tensor) -> tf.Operation:
    rows = tf.shape(tensor)[0]
    message = [f"{name} must have one row per request (", batch, " rows); got ", rows]
    return _assert(tf.equal(rows, batch), message, f"{name}_rows")


def first_occurrences(ids: tf.Tensor, max_length: int) -> tf.Tensor:
    """`[batch, n]` bool: True where an id is not "" and did not appear earlier in its row.

    `max_length` is the longest row a request may send. Up to `_PAIRWISE_MAX` ids, every pair
    of id hashes is compared (n² integer comparisons, a handful of graph nodes: a history).
    Past that, n² costs more than the reranking itself (an `mmr` request's 500 ids), so a
    stable sort of each row's hashes puts the copies of an id side by side, earliest first,
    and a first occurrence is an entry whose sorted neighbour before it differs: O(n log n)."""
    return first_hashes(id_hashes(ids), ids != "", max_length)


def id_hashes(ids: tf.Tensor) -> tf.Tensor:
    """int64 hashes of string ids, the keys `first_hashes` compares."""
    return tf.strings.to_hash_bucket_fast(ids, 2**62)


def first_hashes(hashes: tf.Tensor, present: tf.Tensor, max_length: int) -> tf.Tensor:
    """`first_occurrences` from the ids' hashes `[batch, n]` and where an id is not "" (numbers
    only: a compiled function can take it)."""
    if max_length <= _PAIRWISE_MAX:
        positions = tf.range(tf.shape(hashes)[1])
        earlier = positions[tf.newaxis, :] < positions[:, tf.newaxis]  # [i, j]: j before i
        same = hashes[:, :, tf.newaxis] == hashes[:, tf.newaxis, :]
        return present & ~tf.reduce_any(same & earlier, axis=2)
    order = tf.argsort(hashes, axis=1, stable=True)
    ordered = tf.gather(hashes, order, batch_dims=1)
    new = tf.concat(
        [tf.ones_like(ordered[:, :1], tf.bool), ordered[:, 1:] != ordered[:, :-1]], axis=1
    )
    first = tf.gather(new, tf.argsort(order, axis=1, stable=True), batch_dims=1)
    return present & first


def relative_likelihood(scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Log-scale scores `[batch, n]` → exp(score − the row's best valid score), in (0, 1]: each
    candidate's likelihood relative to the request's top candidate (0 where not valid).

    This is the relevance MMR receives. On this scale a candidate nearly as likely as the top
    one is worth nearly as much, and one a hundred times less likely is worth almost nothing,
    so diversity is bought among plausible items; the same scores min-max normalized would give
    the long tail of the candidates a large share of the range."""
    best = tf.reduce_max(tf.where(valid, scores, _NEG), axis=1, keepdims=True)
    return tf.where(valid, tf.exp(tf.minimum(scores - best, 0.0)), 0.0)


def _top_k_excluding(
    scores: tf.Tensor, count, rows: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top `count` scores of `[batch, catalog]` and their rows, without `rows` `[batch, n]`
    where `mask` (those come last, at `_NEG`, only where fewer than `count` others exist).

    Of the top count + n, at most n are excluded: a second top-k over those few leaves them
    out, cheaper than writing into the catalog-wide score row before one top-k. Ties keep the
    lowest row first either way."""
    width = tf.minimum(count + tf.shape(rows)[1], tf.shape(scores)[1])
    top = tf.math.top_k(scores, k=width)
    hit = (top.indices[:, :, tf.newaxis] == rows[:, tf.newaxis, :]) & mask[:, tf.newaxis, :]
    kept = tf.math.top_k(tf.where(tf.reduce_any(hit, axis=2), _NEG, top.values), k=count)
    return kept.values, tf.gather(top.indices, kept.indices, batch_dims=1)


def _take(values: tf.Tensor, positions: tf.Tensor, fill) -> tf.Tensor:
    """`values[b, positions[b, j]]`, and `fill` where a position is -1 (no pick)."""
    taken = tf.gather(values, tf.maximum(positions, 0), batch_dims=1)
    return tf.where(positions >= 0, taken, fill)


class RecommenderServing(tf.Module):
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
        super().__init__()
        self.model = model
        self.text_encoder = text_encoder
        if text_encoder is not None:
            # One function that every signature calls: BERT is traced and saved once, not once
            # per signature that takes a query (the export's time and size were mostly that).
            self._encode_queries = tf.function(
                self._encode_queries_inline,
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            )
        self.config = config
        self.catalog_size = len(catalog_ids)
        self.num_candidates = min(config.num_candidates, self.catalog_size)
        # recommend's and mmr's numbers, after their string lookups: one XLA program per input
        # shape with `serving.xla`, executor ops otherwise (see `_compiled_inputs`).
        self._recommend_core = tf.function(
            self._recommend_numbers, jit_compile=config.xla, autograph=False
        )
        self._mmr_core = tf.function(self._mmr_numbers, jit_compile=config.xla, autograph=False)
        # Row 0: "", the id of no item (a -1 row in `_ids`).
        self.ids = tf.Variable(["", *catalog_ids], dtype=tf.string, trainable=False, name="ids")
        # Row 0: what the item encoder gives an id outside the catalog.
        items = _batched(model.items, ["", *catalog_ids])
        self.item_vectors = tf.Variable(items, trainable=False, name="item_vectors")
        vectors = _batched(model.candidate_vector, catalog_ids)
        normalized = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.index = tf.Variable(normalized, trainable=False, name="index")
        # A query's cosine to each item's text, blended into retrieval (models/query_blend.py).
        self.text_index = None
        if text_encoder is not None and text_embeddings is not None and text_embeddings.size:
            self.text_index = tf.Variable(
                text_index(text_embeddings), trainable=False, name="text_index"
            )
        similarity = normalized
        # An id outside the catalog, in the `mmr` signature: the model still embeds it (its
        # out-of-vocabulary id); it has no text, so with text similarity it is like nothing.
        unknown = model.candidate_embedding(tf.constant([""])).numpy()[0]
        if config.mmr_embedding == "text" and text_embeddings is not None and text_embeddings.size:
            similarity = _unit_rows(text_embeddings)
            unknown = np.zeros(similarity.shape[1], np.float32)
        basis = _principal_directions(similarity, config.similarity_dim)
        similarity = _unit_rows(similarity @ basis)
        unknown = _unit_rows((unknown @ basis)[np.newaxis])[0]
        self.unknown_similarity = tf.Variable(unknown, trainable=False, name="unknown_similarity")
        # Row r + 1: catalog row r's similarity vector, then its candidate vector (what the
        # ranking head takes). One table, so that each retrieved candidate costs one fetch of
        # a row from a table far larger than the caches, not one per table. Row 0 is for ids
        # outside the catalog and padding: zeros, similar to nothing.
        self.similarity_dim = similarity.shape[1]
        table = np.concatenate([similarity, vectors], axis=1)
        table = np.concatenate([np.zeros((1, table.shape[1])), table])
        self.catalog_table = tf.Variable(
            table.astype(np.float32), trainable=False, name="catalog_table"
        )

    # ----------------------------------------------------------------------------------------
    # Building blocks.

    def _rows(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Catalog row + 1 of each id (0 for "" and ids outside the catalog)."""
        return tf.cast(self.model.items.catalog_rows(item_ids), tf.int32)

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

    def _item_vectors(self, item_ids: tf.Tensor) -> tf.Tensor:
        """The item encoder's vectors of history ids, from the table computed at export."""
        return tf.gather(self.item_vectors, self._rows(item_ids))

    def _query_vector(self, features):
        return self.model.query_vector(features, item_vectors=self._item_vectors)

    def _query_features(self, user_id, history_item_ids, query, timestamp, mask=True):
        """The checked request as the query tower's features (`mask` False: without the
        history's `history_mask`, for a caller that computes it itself)."""
        c = self.config
        batch = tf.shape(user_id)[0]
        checks = [
            _check_batch("history_item_ids", history_item_ids, batch),
            _check_batch("query", query, batch),
            _check_batch("timestamp", timestamp, batch),
            _check_range(
                tf.shape(history_item_ids)[1],
                0,
                c.max_history,
                "history length of history_item_ids",
            ),
            _check_range(tf.strings.length(query), 0, c.max_query_bytes, "query length"),
        ]
        if self.text_encoder is None:  # nothing could read the query: refuse it, not ignore it
            empty = tf.strings.length(tf.strings.strip(query)) == 0
            message = [
                "query must be empty: this model has no text encoder (exported without text)"
            ]
            checks.append(_assert(tf.reduce_all(empty), message, "check_query_without_encoder"))
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

    def _retrieve(
        self, query_vector, history_rows, exclude_seen, count, compiled=False, query_embedding=None
    ):
        """Top `count` cosines and catalog rows (0-based) for each request; `history_rows` are
        `_rows` of the history ids; `compiled`: the caller runs under XLA; `query_embedding`:
        the requests' query text embeddings (zero rows: none), blended in where present."""
        scores = tf.matmul(
            tf.math.l2_normalize(query_vector, axis=-1), self.index, transpose_b=True
        )
        if self.text_index is not None and query_embedding is not None:
            scores = blend_query(scores, query_embedding, self.text_index, self.config.query_weight)
        rows = history_rows - 1  # -1: not in the catalog
        seen = (rows >= 0) & exclude_seen[:, tf.newaxis]
        if not compiled:
            return _top_k_excluding(scores, count, rows, seen)
        # Compiled, the score row is updated in place: the history's entries drop to `_NEG`
        # (a scatter of n entries) before one top-k, which costs less than a wider top-k. Over
        # a large catalog that top-k is blocked (`serving/top_k.py`): the same result, cheaper.
        requests = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, tf.newaxis], tf.shape(rows))
        entries = tf.stack([requests, tf.maximum(rows, 0)], axis=-1)
        scores = tf.tensor_scatter_nd_min(scores, entries, tf.where(seen, _NEG, float("inf")))
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
        sims = tf.where(valid[:, tf.newaxis, :], sims, _NEG)
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
        valid = cosines > _NEG / 2  # excluded items are never picked
        embeddings, candidates = self._catalog(rows + 1)
        relevance = relative_likelihood(self._relevance(query_vector, candidates, cosines), valid)
        positions, scores = self._select(embeddings, relevance, valid, k, mmr_lambda)
        picked = _take(rows, positions, -1)
        explanation, explanation_score = self._explain(picked, history_rows, history_mask)
        return (
            picked,
            scores,
            _take(relevance, positions, 0.0),
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

    def _history_numbers(self, history_ids: tf.Tensor) -> list[tf.Tensor]:
        """What the compiled core takes of the (padded) history ids: their catalog rows + 1,
        their hashes, and where an id is not ""."""
        return [self._rows(history_ids), id_hashes(history_ids), history_ids != ""]

    def _mmr_numbers(self, rows, relevance, valid, k, mmr_lambda):
        """mmr after its lookups: the candidates' catalog rows (-1: outside the catalog) → MMR
        positions and scores (see `_select`) and the picks' relevance."""
        embeddings = self._similarity(rows + 1)
        # An id outside the catalog still has a vector (the model's out-of-vocabulary one).
        outside = valid & (rows < 0)
        embeddings = tf.where(outside[..., tf.newaxis], self.unknown_similarity, embeddings)
        positions, scores = self._select(embeddings, relevance, valid, k, mmr_lambda)
        return positions, scores, _take(relevance, positions, 0.0)

    def _compiled_inputs(self, inputs: list[tf.Tensor], batch: tf.Tensor) -> list[tf.Tensor]:
        """With `serving.xla`, pads every `[batch, ...]` input with zero rows to the next
        power of two: XLA compiles a program per input shape (about a second each), and
        buckets bound those to one per power of two (recommend's warmup requests compile each
        bucket up to the server's batch limit at load). The extra rows ask for nothing (k = 0)
        and are cut from the outputs."""
        if not self.config.xla:
            return inputs
        extra = _power_of_two_at_least(batch) - batch
        return [tf.pad(x, [[0, extra]] + [[0, 0]] * (x.shape.rank - 1)) for x in inputs]

    def _first_k(self, scores, rows, k: tf.Tensor) -> dict[str, tf.Tensor]:
        """Ids and scores of each row's first `k` of a top-k over the index ("" and 0 past a
        row's `k` or where only excluded items are left)."""
        keep = tf.range(tf.shape(rows)[1])[tf.newaxis, :] < k[:, tf.newaxis]
        keep &= scores > _NEG / 2
        rows = tf.where(keep, rows, -1)
        return {"item_ids": self._ids(rows), "scores": tf.where(keep, scores, 0.0)}

    def _ids(self, rows: tf.Tensor) -> tf.Tensor:
        """Item ids of catalog rows (0-based; -1 gives "")."""
        return tf.gather(self.ids, rows + 1)

    # ----------------------------------------------------------------------------------------
    # Signatures.

    @tf.function(input_signature=input_specs("serving_default"), autograph=False)
    def recommend(self, user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen):
        user_id, history_item_ids, query, timestamp, k, mmr_lambda, exclude_seen = _checked_ranks(
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
            _check_batch("k", k, batch),
            _check_batch("mmr_lambda", mmr_lambda, batch),
            _check_batch("exclude_seen", exclude_seen, batch),
            _check_range(k, 1, limit, "k"),
            _check_range(mmr_lambda, 0.0, 1.0, "mmr_lambda"),
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
        user_id, history_item_ids, query, timestamp, k, exclude_seen = _checked_ranks(
            "retrieve", user_id, history_item_ids, query, timestamp, k, exclude_seen
        )
        batch = tf.shape(user_id)[0]
        limit = min(self.config.max_candidates, self.catalog_size)
        checks = [
            _check_batch("k", k, batch),
            _check_batch("exclude_seen", exclude_seen, batch),
            _check_range(k, 1, limit, "k"),
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
        user_id, history_item_ids, query, timestamp, item_ids = _checked_ranks(
            "rank", user_id, history_item_ids, query, timestamp, item_ids
        )
        batch = tf.shape(user_id)[0]
        checks = [
            _check_batch("item_ids", item_ids, batch),
            _check_range(tf.shape(item_ids)[1], 0, self.config.max_candidates, "item_ids length"),
        ]
        with tf.control_dependencies(checks):
            features = self._query_features(user_id, history_item_ids, query, timestamp)
        query_vector = self._query_vector(features)
        scores = self.model.rank_candidates(query_vector, self.model.candidate_vector(item_ids))
        return {"scores": tf.where(item_ids != "", scores, 0.0)}

    @tf.function(input_signature=input_specs("mmr"), autograph=False)
    def mmr(self, item_ids, relevance, k, mmr_lambda):
        item_ids, relevance, k, mmr_lambda = _checked_ranks(
            "mmr", item_ids, relevance, k, mmr_lambda
        )
        batch = tf.shape(item_ids)[0]
        # The dedupe sorts 500 ids: the executor's sort costs less than XLA's here.
        valid = first_occurrences(item_ids, self.config.max_candidates)
        count = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        same_shape = _assert(
            tf.reduce_all(tf.shape(relevance) == tf.shape(item_ids)),
            [
                "relevance must have the shape of item_ids ",
                tf.shape(item_ids),
                "; got ",
                tf.shape(relevance),
            ],
            "relevance_shape",
        )
        with tf.control_dependencies([same_shape]):
            # Where MMR reads it: not "" pads or repeats, whose relevance is ignored. NaN or
            # ±inf there would give NaN or infinite scores, or no pick at all.
            finite = tf.reduce_all(tf.math.is_finite(relevance) | ~valid)
        k_rows = _check_batch("k", k, batch)
        with tf.control_dependencies([k_rows]):  # k against the rows' counts
            enough = tf.reduce_all(k <= count)
        checks = [
            _check_batch("relevance", relevance, batch),
            k_rows,
            _check_batch("mmr_lambda", mmr_lambda, batch),
            same_shape,
            _assert(
                finite,
                [
                    "relevance must be finite at each item id that is neither empty nor a repeat; "
                    "got ",
                    relevance,
                ],
                "relevance_finite",
                summarize=10,
            ),
            _check_range(tf.shape(item_ids)[1], 0, self.config.max_candidates, "item_ids length"),
            _check_range(k, 1, self.config.max_k, "k"),
            _assert(
                enough,
                [
                    "k must not exceed the number of distinct item_ids per row (",
                    count,
                    "); got ",
                    k,
                ],
                "k_candidates",
                summarize=10,
            ),
            _check_range(mmr_lambda, 0.0, 1.0, "mmr_lambda"),
        ]
        with tf.control_dependencies(checks):
            inputs = [self._rows(item_ids) - 1, tf.identity(relevance), tf.identity(valid)]
        if self.config.xla:  # candidates padded to a power of two: few compiled programs
            n = tf.shape(item_ids)[1]
            pad = [[0, 0], [0, _power_of_two_at_least(n, _MIN_BUCKET) - n]]
            inputs = [tf.pad(x, pad) for x in inputs]
        outputs = self._mmr_core(*self._compiled_inputs([*inputs, k, mmr_lambda], batch))
        positions, scores, picked_relevance = (x[:batch, : tf.reduce_max(k)] for x in outputs)
        return {
            "item_ids": _take(item_ids, positions, ""),
            "scores": scores,
            "relevance": picked_relevance,
        }

    @tf.function(input_signature=input_specs("similar_items"), autograph=False)
    def similar_items(self, item_ids, k):
        item_ids, k = _checked_ranks("similar_items", item_ids, k)
        batch = tf.shape(item_ids)[0]
        checks = [
            _check_batch("k", k, batch),
            _check_range(k, 1, min(self.config.max_k, max(self.catalog_size - 1, 1)), "k"),
        ]
        with tf.control_dependencies(checks):
            vectors = self.model.candidate_embedding(item_ids)
        scores = tf.matmul(vectors, self.index, transpose_b=True)
        own = (self._rows(item_ids) - 1)[:, tf.newaxis]  # an item is not similar to itself
        return self._first_k(*_top_k_excluding(scores, _widest(k), own, own >= 0), k)

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The signature map for `tf.saved_model.save`."""
        return {
            "serving_default": self.recommend.get_concrete_function(),
            "retrieve": self.retrieve.get_concrete_function(),
            "rank": self.rank.get_concrete_function(),
            "mmr": self.mmr.get_concrete_function(),
            "similar_items": self.similar_items.get_concrete_function(),
        }


def batch_buckets(limit: int) -> list[int]:
    """The batch sizes a compiled signature pads batches of 1 to `limit` rows to (see
    `_compiled_inputs`): 1, 2, 4, ... up to the first power of two ≥ `limit`."""
    sizes = [1]
    while sizes[-1] < limit:
        sizes.append(sizes[-1] * 2)
    return sizes


def _widest(k: tf.Tensor) -> tf.Tensor:
    """The most columns a row asks for: max(k), and 0 for a batch of no rows (whose max is
    INT_MIN, which top-k refuses)."""
    return tf.maximum(tf.reduce_max(k), 0)


def _power_of_two_at_least(n: tf.Tensor, minimum: int = 1) -> tf.Tensor:
    """The smallest power of two ≥ max(n, minimum) (an int32 scalar)."""
    powers = tf.constant([2**i for i in range(31)])
    found = tf.gather(powers, tf.searchsorted(powers, tf.reshape(n, [1])))[0]
    return tf.maximum(found, minimum)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _principal_directions(vectors: np.ndarray, dim: int) -> np.ndarray:
    """`[width, min(width, dim)]`: the orthonormal directions that keep most of the rows' dot
    products (the top eigenvectors of VᵀV, not centered: cosines, not variances, are kept).

    MMR's cost per request grows with the similarity's width; projecting, for example, 384-d
    text embeddings onto 64 such directions keeps most of what makes two items alike."""
    width = vectors.shape[1]
    if width <= dim:
        return np.eye(width, dtype=np.float32)
    moments = vectors.astype(np.float64).T @ vectors.astype(np.float64)
    _, eigenvectors = np.linalg.eigh(moments)  # ascending eigenvalues
    return eigenvectors[:, ::-1][:, :dim].astype(np.float32)


def _batched(fn, ids: list[str], size: int = 4096) -> np.ndarray:
    parts = [fn(tf.constant(ids[i : i + size])).numpy() for i in range(0, len(ids), size)]
    return np.concatenate(parts).astype(np.float32)
