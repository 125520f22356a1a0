"""One `tfrs.Model` with a retrieval task and a ranking task sharing the two towers.

Retrieval: in-batch softmax over cosine scores divided by a temperature, with the logQ
correction (each candidate's score minus the log of its sampling probability, i.e. its share of
train events: popular items appear as in-batch negatives more often than their relevance
warrants) and accidental hits removed (another row's positive that is this row's positive too is
not a negative). No top-k metrics during training: full-catalog metrics belong to evaluation
(computing them per batch is what makes TFRS training slow).

Ranking: a DCN-v2 head (`tfrs.layers.dcn.Cross`) over the query and candidate vectors and their
product, then dense layers, regressing the label (rating, or 1.0 for implicit feedback) with
sample weights. Implicit feedback has only positives, so there each positive is joined by
in-batch negatives (the candidates of other rows, label 0): the head then scores how likely an
interaction is, which is what the serving graph's ranking stage needs.

The loss weights in `ModelConfig` select retrieval-only, ranking-only or joint training.

Free-text queries: the logs carry no typed queries, so during training a share
(`model.query_text_rate`) of examples get the target item's own text embedding as their query,
which teaches the query tower what a query in the BERT space means; at serving time the query
string goes through the same text encoder.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.features import FeatureSpace
from models.softmax import (
    batch_mean,
    catalog_softmax_loss,
    history_columns,
    in_batch_softmax_loss,
    sampled_softmax_loss,
    sampling_log_probability,
)
from models.towers import ItemEncoder, QueryTower, dense_history
from pipeline.core.config import ModelConfig

__all__ = ["Recommender"]


class Recommender(tfrs.Model):
    """The two-tower retrieval and DCN ranking model.

    Args:
      space: Vocabularies, item tables and popularity.
      config: Model settings.
      history_length: Items each event's history holds (`preprocess.history_length`): what
        the self-attention history encoder reads.
    """

    def __init__(self, space: FeatureSpace, config: ModelConfig, history_length: int = 20):
        super().__init__()
        dim = config.embedding_dim
        self.config = config
        # See `_running_mean`. Set past Keras's tracking: a reporting tally, not model state,
        # so it stays out of the weights and the checkpoints.
        object.__setattr__(self, "_mean_loss", tf.keras.metrics.Mean(name="loss"))
        self.items = ItemEncoder(space, dim, config.use_text, name="items")
        self.query_tower = QueryTower(
            space,
            self.items,
            dim,
            config.history_pooling,
            config.use_time,
            history_length=history_length,
            history_blocks=config.history_blocks,
            history_heads=config.history_heads,
            history_dropout=config.history_dropout,
            name="query_tower",
        )
        self.negatives = negatives_mode(config, len(space.trained_item_ids))
        self._catalog_ids = tf.constant(space.catalog_ids or [""])
        self.candidate_output = tf.keras.layers.Dense(dim, name="candidate_output")
        probability = space.sampling_probability()
        # Row 0 (ids outside the catalog): the mean probability.
        unknown = probability.mean() if len(probability) else 1.0
        self._probability_value = np.concatenate([[unknown], probability]).astype(np.float32)
        # Both tasks' losses per example, each averaged over the batch by `batch_mean` (TFRS
        # sums), so the loss weights compare like with like.
        self.retrieval = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(
                from_logits=True, reduction=tf.keras.losses.Reduction.NONE
            ),
            temperature=config.temperature,
            remove_accidental_hits=config.remove_accidental_hits,
        )
        self.cross = [
            tfrs.layers.dcn.Cross(projection_dim=config.cross_projection_dim, name=f"cross_{i}")
            for i in range(config.cross_layers)
        ]
        self.deep = [
            tf.keras.layers.Dense(n, activation="relu", name=f"deep_{i}")
            for i, n in enumerate(config.deep_layers)
        ]
        self.rating = tf.keras.layers.Dense(1, name="rating")
        self.ranking = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(reduction=tf.keras.losses.Reduction.NONE),
            metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")],
        )
        negatives = config.ranking_negatives
        self.ranking_negatives = (
            (1 if space.implicit_labels else 0) if negatives is None else negatives
        )
        self.probability_table = tf.Variable(
            self._probability_value, trainable=False, name="candidate_probability"
        )
        # Each catalog item's train events (row i is catalog item i): the catalog and sampled
        # softmaxes draw negatives from the items that have some.
        self.train_count_table = tf.Variable(
            np.asarray(space.train_counts, np.float32).reshape(-1),
            trainable=False,
            name="train_count",
        )

    def query_vector(
        self, features: dict[str, tf.Tensor], item_vectors=None, training=None
    ) -> tf.Tensor:
        """Query tower output `[batch, dim]` (the ranking head's input). `item_vectors`: see
        `QueryTower.call`."""
        return self.query_tower(features, item_vectors=item_vectors, training=training)

    def candidate_vector(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Candidate tower output `[..., dim]` for item ids of any shape."""
        return self.candidate_output(self.items(item_ids))

    def query_embedding(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Unit-length query vectors `[batch, dim]` (retrieval scores are cosines)."""
        return tf.math.l2_normalize(self.query_vector(features), axis=-1)

    def candidate_embedding(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Unit-length candidate vectors `[..., dim]` for item ids of any shape."""
        return tf.math.l2_normalize(self.candidate_vector(item_ids), axis=-1)

    def candidate_probability(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Each candidate's sampling probability (share of train events) for logQ."""
        return tf.gather(self.probability_table, self.items.catalog_rows(item_ids))

    def rank(self, query: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
        """Predicted labels `[batch]` for aligned tower outputs `[batch, dim]`
        (`query_vector`, `candidate_vector`: their norms carry information retrieval's cosine
        drops)."""
        x0 = tf.concat([query, candidate, query * candidate], axis=-1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self._head_top(x)

    def rank_candidates(self, query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """`rank` of many candidates per query: query vectors `[batch, dim]`, candidate
        vectors `[batch, n, dim]` → `[batch, n]`, the same numbers with less arithmetic (the
        serving graph's ranking stage).

        The head's first product, x0·W with x0 = [q, c, q⊙c], is q·W_q + c·(W_c + diag(q)·W_p):
        the query's part is computed once per request, and each candidate then pays a
        `dim`-wide product where `rank` pays a 3·`dim`-wide one. That product is the first
        cross layer's or, without cross layers, the first deep layer's."""
        if not self.rating.built:  # an untrained model: build the head the usual way first
            self.rank(query[:1], candidates[:1, 0])
        n = tf.shape(candidates)[1]
        deep = self.deep
        if self.cross:
            x0 = _pairs(query, candidates)
            x = self._first_cross(query, candidates, x0)
            x0, x = (tf.reshape(t, [-1, t.shape[-1]]) for t in (x0, x))
            for layer in self.cross[1:]:
                x = layer(x0, x)
        elif deep:  # the first deep layer folded
            x, deep = self._folded_dense(deep[0], query, candidates), deep[1:]
        else:
            x = _pairs(query, candidates)
        x = tf.reshape(x, [-1, x.shape[-1]])
        return tf.reshape(self._head_top(x, deep), [-1, n])

    def _folded_dense(self, dense, query, candidates):
        """`dense` (kernel `[3·dim, width]`) on x0 = [q, c, q⊙c], folded as `rank_candidates`
        says: `[batch, n, width]`."""
        dim = query.shape[-1]
        kernel = dense.kernel  # the rows of q, of c and of q⊙c
        per_query = tf.matmul(query, kernel[:dim])  # [batch, width]
        folded = kernel[dim : 2 * dim] + query[:, :, tf.newaxis] * kernel[2 * dim :]
        product = tf.einsum("bnd,bdw->bnw", candidates, folded) + per_query[:, tf.newaxis, :]
        if dense.use_bias:
            product += dense.bias
        return dense.activation(product)

    def _first_cross(self, query, candidates, x0):
        """The first `tfrs.layers.dcn.Cross` on x0 = [q, c, q⊙c], with its first dense
        product folded (TFRS 0.7's layer: `_dense`, or `_dense_u` then `_dense_v` when
        low-rank; `tests/models/test_recommender.py` holds the two forms equal)."""
        layer = self.cross[0]
        low_rank = layer._projection_dim is not None
        product = self._folded_dense(
            layer._dense_u if low_rank else layer._dense, query, candidates
        )
        if low_rank:
            product = layer._dense_v(product)
        if layer._diag_scale:
            product += layer._diag_scale * x0
        return x0 * product + x0

    def _head_top(self, x: tf.Tensor, deep: list | None = None) -> tf.Tensor:
        """The deep layers (`deep`, all of them by default) and the rating after the cross
        layers."""
        for layer in self.deep if deep is None else deep:
            x = layer(x)
        return tf.squeeze(self.rating(x), axis=-1)

    def retrieval_loss(
        self,
        query: tf.Tensor,
        candidate: tf.Tensor,
        item_ids: tf.Tensor,
        sample_weight: tf.Tensor | None = None,
        history_rows: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Softmax loss of aligned (unit query, unit positive candidate) rows against the
        negatives `model.retrieval_negatives` names. `history_rows`: each row's history as
        catalog rows + 1 `[batch, h]` (0: padding), no negatives of that row; None keeps them."""
        c = self.config
        if self.negatives == "catalog":
            table = self.candidate_embedding(self._catalog_ids)
            return catalog_softmax_loss(
                query,
                table,
                self.items.catalog_rows(item_ids) - 1,
                self.train_count_table > 0,
                c.temperature,
                sample_weight,
                history_rows,
            )
        if self.negatives == "sampled":
            return sampled_softmax_loss(
                query,
                candidate,
                self.items.catalog_rows(item_ids) - 1,
                lambda rows: self.candidate_embedding(tf.gather(self._catalog_ids, rows)),
                sampling_log_probability(self.train_count_table),
                c.sampled_negatives,
                c.temperature,
                sample_weight,
            )
        if history_rows is not None:
            rows = self.items.catalog_rows(item_ids)
            return in_batch_softmax_loss(
                query,
                candidate,
                rows if c.remove_accidental_hits else None,
                c.temperature,
                tf.math.log(self.candidate_probability(item_ids)) if c.logq_correction else None,
                history_columns(history_rows, rows),
                sample_weight,
            )
        return batch_mean(
            self.retrieval(
                query,
                candidate,
                sample_weight=sample_weight,
                candidate_sampling_probability=(
                    self.candidate_probability(item_ids) if c.logq_correction else None
                ),
                candidate_ids=item_ids if c.remove_accidental_hits else None,
                compute_metrics=False,
                compute_batch_metrics=False,
            )
        )

    def history_rows(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Each example's history as catalog rows + 1 `[batch, h]` (0: padding)."""
        ids, mask = dense_history(features)
        return self.items.catalog_rows(ids) * tf.cast(mask, tf.int64)

    def with_query_text(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Training features where a random `query_text_rate` share of rows carry the target
        item's text embedding as a free-text query (rows whose item has no text stay empty)."""
        items = self.items
        rows = items.catalog_rows(features["item_id"])
        text = tf.gather(items.text_table, rows)
        keep = tf.random.uniform(tf.shape(rows)) < self.config.query_text_rate
        keep = tf.cast(keep, text.dtype) * tf.gather(items.has_text_table, rows)
        return {**features, "query_text_embedding": text * keep[:, tf.newaxis]}

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        c = self.config
        candidate = self.candidate_vector(features["item_id"])
        if training and c.query_text_rate > 0 and self.items.use_text:
            features = self.with_query_text(features)
        query = self.query_vector(features, training=training)
        weight = features.get("weight")
        ranking_weight = weight
        if "query_text_embedding" in features:
            # The stand-in query names the target item: fine for learning retrieval from a
            # query, but the ranking head would learn to lean on it; it does not see those rows.
            stand_in = tf.reduce_any(features["query_text_embedding"] != 0.0, axis=-1)
            ranking_weight = (1.0 if weight is None else weight) * tf.cast(~stand_in, tf.float32)
        loss = tf.constant(0.0)
        if c.retrieval_weight:
            loss += c.retrieval_weight * self.retrieval_loss(
                tf.math.l2_normalize(query, axis=-1),
                tf.math.l2_normalize(candidate, axis=-1),
                features["item_id"],
                weight,
                None  # the sampled softmax's pool is shared by the batch: it keeps them
                if c.history_negatives or self.negatives == "sampled"
                else self.history_rows(features),
            )
        if c.ranking_weight:
            if c.ranking_head_only:  # the towers learn from retrieval alone
                query, candidate = tf.stop_gradient(query), tf.stop_gradient(candidate)
            labels, predictions, weights = self.ranking_examples(
                query, candidate, features["item_id"], features["label"], ranking_weight
            )
            loss += c.ranking_weight * batch_mean(
                self.ranking(
                    labels=labels[:, tf.newaxis],
                    predictions=predictions[:, tf.newaxis],
                    sample_weight=weights,
                )
            )
        # Under a tf.distribute strategy each replica's loss is the mean over its slice of the
        # global batch and the replicas' gradients are summed: divided by their number, the sum
        # is the gradient of the global batch's mean (as Keras scales a compiled loss), and the
        # loss Keras reports, summed over the replicas, is that mean.
        replicas = _replicas()
        return loss if replicas == 1 else loss / replicas

    @property
    def metrics(self):
        # Keras resets these at each epoch and each evaluation.
        return [*super().metrics, self._mean_loss]

    def train_step(self, inputs):
        return self._replica_share(self._running_mean(super().train_step(inputs)))

    def test_step(self, inputs):
        return self._replica_share(self._running_mean(super().test_step(inputs)))

    def _running_mean(self, logs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A step's logs with `loss` the mean over the epoch's (or the evaluation's) batches so
        far. TFRS's steps report the batch's own loss, and Keras logs a step's value as the
        epoch's: `val_loss`, on which training chooses its number of epochs, was the last
        validation batch's loss alone (876 of ML-1M's 43,884 validation events)."""
        self._mean_loss.update_state(logs["loss"] * _replicas())  # the replica's whole mean
        return {**logs, "loss": self._mean_loss.result()}

    def _replica_share(self, logs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A step's logs as this replica's share: Keras sums the replicas' logs
        (`distribute_reduction_method` "auto"). The losses are shares already (`compute_loss`);
        a metric's result is synchronised across the replicas, the same on each, so each
        returns that divided by their number."""
        replicas = _replicas()
        if replicas == 1:
            return logs
        names = {metric.name for metric in self.metrics}
        return {k: v / replicas if k in names else v for k, v in logs.items()}

    def ranking_examples(
        self,
        query: tf.Tensor,
        candidate: tf.Tensor,
        item_ids: tf.Tensor,
        labels: tf.Tensor,
        weight: tf.Tensor | None,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """The positives plus `ranking_negatives` in-batch negatives per row (the candidate of
        the row `s` places further on, label 0; weight 0 where that is the same item)."""
        predictions = [self.rank(query, candidate)]
        all_labels = [labels]
        weights = [tf.ones_like(labels) if weight is None else weight]
        for shift in range(1, self.ranking_negatives + 1):
            predictions.append(self.rank(query, tf.roll(candidate, shift, axis=0)))
            all_labels.append(tf.zeros_like(labels))
            distinct = tf.cast(tf.roll(item_ids, shift, axis=0) != item_ids, labels.dtype)
            weights.append(weights[0] * distinct)
        if len(predictions) == 1:
            return labels, predictions[0], weight
        return tf.concat(all_labels, 0), tf.concat(predictions, 0), tf.concat(weights, 0)


def _replicas() -> int:
    """The replicas training in sync under the current tf.distribute strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def negatives_mode(config: ModelConfig, trained_items: int) -> str:
    """`model.retrieval_negatives` with `auto` resolved by the number of trained items."""
    if config.retrieval_negatives != "auto":
        return config.retrieval_negatives
    return "catalog" if trained_items <= config.catalog_softmax_max_items else "sampled"


def _pairs(query: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """The ranking head's input x0 = [q, c, q⊙c] `[batch, n, 3·dim]` for query vectors
    `[batch, dim]` and candidate vectors `[batch, n, dim]`."""
    queries = tf.broadcast_to(query[:, tf.newaxis, :], tf.shape(candidates))
    return tf.concat([queries, candidates, queries * candidates], axis=-1)
