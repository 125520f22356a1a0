"""recommend's compiled parts timed alone, for serving_bench's breakdown of a request's time
past the brute-force floor (what the string handling, the ranking head and MMR each cost)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from serving.mmr_compiled import mmr_select_static
from serving.module import RecommenderServing

__all__ = ["Stages"]


class Stages(tf.Module):
    """recommend's compiled parts alone, as the export runs them (`serving.xla`), for the
    breakdown of where a request's time goes past the floor:

    * `core`: the whole numeric program (history dedupe → query tower → retrieval → ranking →
      MMR → explanations), fed the lookups' results: recommend minus its string handling;
    * `ranking`: the ranking head and relevance over `num_candidates` retrieved items;
    * `mmr`: MMR to `k` at `lam` over those candidates' similarity vectors;
    * `call`: a compiled program that adds one to its input: what a call costs by itself,
      taken off the two parts above.
    """

    def __init__(self, module: RecommenderServing, k: int, lam: float):
        super().__init__()
        self.module = module
        self.k = k
        self.lam = lam
        self._ranking = tf.function(
            lambda q, rows, cosines: module._relevance(q, module._catalog(rows + 1)[1], cosines),
            jit_compile=True,
        )
        width = module._max_picks
        self._mmr = tf.function(
            lambda e, r, v, kk, lm: mmr_select_static(e, r, v, kk, lm, width), jit_compile=True
        )
        history = module.config.max_history + 1
        specs = [
            tf.TensorSpec([None], tf.int64, name="user_rows"),
            tf.TensorSpec([None, history], tf.int32, name="history_rows"),
            tf.TensorSpec([None, history], tf.int64, name="history_hashes"),
            tf.TensorSpec([None, history], tf.bool, name="history_present"),
            tf.TensorSpec([None], tf.int64, name="timestamp"),
            tf.TensorSpec([None], tf.bool, name="exclude_seen"),
            tf.TensorSpec([None], tf.int32, name="k"),
            tf.TensorSpec([None], tf.float32, name="mmr_lambda"),
        ]
        self.core = tf.function(self._core, input_signature=specs)
        dim = module.index.shape[1]
        self.ranking = tf.function(
            self._rank,
            input_signature=[
                tf.TensorSpec([None, dim], tf.float32, name="query_vector"),
                tf.TensorSpec([None, None], tf.int32, name="rows"),
                tf.TensorSpec([None, None], tf.float32, name="cosines"),
            ],
        )
        self.mmr = tf.function(
            self._select,
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="rows"),
                tf.TensorSpec([None, None], tf.float32, name="relevance"),
            ],
        )

        self.call = tf.function(
            tf.function(lambda x: {"y": x + 1.0}, jit_compile=True),
            input_signature=[tf.TensorSpec([None], tf.float32, name="x")],
        )

    def _core(self, user_rows, rows, hashes, present, timestamp, exclude_seen, k, mmr_lambda):
        outputs = self.module._recommend_core(
            user_rows, rows, hashes, present, None, timestamp, exclude_seen, k, mmr_lambda
        )
        return {f"output_{i}": x for i, x in enumerate(outputs)}

    def _rank(self, query_vector, rows, cosines):
        return {"relevance": self._ranking(query_vector, rows, cosines)}

    def _select(self, rows, relevance):
        batch = tf.shape(rows)[:1]
        embeddings = self.module._similarity(rows + 1)
        valid = tf.ones_like(rows, tf.bool)
        k, lam = tf.fill(batch, self.k), tf.fill(batch, self.lam)
        positions, scores = self._mmr(embeddings, relevance, valid, k, lam)
        return {"positions": positions, "scores": scores}

    def inputs(self, request: dict[str, tf.Tensor]) -> dict[str, dict[str, np.ndarray]]:
        """Each stage's inputs for `request` (a recommend request), from the module itself:
        the lookups' results for `core`, and the request's query vector with its retrieved
        candidates for `ranking` and `mmr`."""
        m = self.module
        history = request["history_item_ids"]
        padded = tf.pad(history, [[0, 0], [0, m.config.max_history + 1 - history.shape[1]]])
        rows, hashes, present = m._history_numbers(padded)
        core = {
            "user_rows": m.model.query_tower.user_lookup(request["user_id"]),
            "history_rows": rows,
            "history_hashes": hashes,
            "history_present": present,
            "timestamp": request["timestamp"],
            "exclude_seen": request["exclude_seen"],
            "k": request["k"],
            "mmr_lambda": request["mmr_lambda"],
        }
        query, _ = m._query_numbers(
            core["user_rows"], rows, hashes, present, None, request["timestamp"]
        )
        cosines, retrieved = m._retrieve(query, rows, request["exclude_seen"], m.num_candidates)
        relevance = m._relevance(query, m._catalog(retrieved + 1)[1], cosines)
        return {
            "core": {name: np.asarray(value) for name, value in core.items()},
            "ranking": {
                "query_vector": query.numpy(),
                "rows": retrieved.numpy(),
                "cosines": cosines.numpy(),
            },
            "mmr": {"rows": retrieved.numpy(), "relevance": relevance.numpy()},
            "call": {"x": np.zeros(1, np.float32)},
        }
