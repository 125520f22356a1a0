"""The BERT text encoder: raw strings in, one L2-normalized vector per string out.

One encoder serves three places with identical results: the Beam `embed-items` job (item
embeddings at scale), training (the candidate tower's text feature, the query tower's free-text
query) and the exported SavedModel. Tokenization runs inside the graph (`pipeline.embed.tokenizer`),
so the SavedModel takes raw strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.core.config import TEXT_POOLINGS as POOLINGS
from pipeline.embed.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_bert_weights,
    resolve_checkpoint,
)
from pipeline.embed.tokenizer import BertTokenizerLayer

__all__ = ["TextEncoder", "build_text_encoder", "encode_texts", "export_text_encoder"]


class TextEncoder(tf.keras.layers.Layer):
    """Strings `[batch]` → embeddings `[batch, hidden_size]` (float32).

    Why a layer around `TFBertModel`: it owns tokenization, pooling and normalization, so every
    caller gets the same vector for the same text, and freezing is decided once, here.

    Args:
      bert: A built `transformers.TFBertModel` (weights loaded).
      tokenizer: The in-graph tokenizer for the same vocabulary.
      pooling: `mean` over real tokens (default; what sentence-transformers checkpoints were
        trained with) or `cls`, the [CLS] token's final state.
      normalize: L2-normalize the output, so dot products are cosines.
      trainable_layers: 0 freezes BERT (the CPU default); N fine-tunes the top N transformer
        layers (embeddings and lower layers stay frozen).
    """

    def __init__(
        self,
        bert,
        tokenizer: BertTokenizerLayer,
        pooling: str = "mean",
        normalize: bool = True,
        trainable_layers: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS} (got {pooling!r})")
        layers = bert.config.num_hidden_layers
        if not 0 <= trainable_layers <= layers:
            raise ValueError(f"trainable_layers must be in [0, {layers}] (got {trainable_layers})")
        self.bert = bert
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.trainable_layers = trainable_layers
        self.dimension = int(bert.config.hidden_size)
        self._freeze(trainable_layers)

    def _freeze(self, trainable_layers: int) -> None:
        main = self.bert.bert
        self.bert.trainable = trainable_layers > 0
        if trainable_layers:
            main.embeddings.trainable = False
            if getattr(main, "pooler", None) is not None:
                main.pooler.trainable = False  # unused: pooling happens here
            n = len(main.encoder.layer)
            for i, layer in enumerate(main.encoder.layer):
                layer.trainable = i >= n - trainable_layers

    def call(self, texts: tf.Tensor, training: bool = False) -> tf.Tensor:
        input_ids, mask = self.tokenizer(texts)
        hidden = self.bert.bert(
            input_ids=input_ids,
            attention_mask=mask,
            token_type_ids=tf.zeros_like(input_ids),
            training=training and self.trainable_layers > 0,
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = tf.cast(mask, hidden.dtype)[:, :, tf.newaxis]
            pooled = tf.reduce_sum(hidden * weights, axis=1) / tf.maximum(
                tf.reduce_sum(weights, axis=1), 1.0
            )
        if self.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1)
        return pooled

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "bert_config": self.bert.config.to_dict(),
            "tokenizer": self.tokenizer.get_config(),
            "pooling": self.pooling,
            "normalize": self.normalize,
            "trainable_layers": self.trainable_layers,
        }


def build_text_encoder(
    checkpoint: str | Checkpoint,
    max_length: int = 128,
    pooling: str = "mean",
    normalize: bool = True,
    trainable_layers: int = 0,
) -> TextEncoder:
    """Builds the encoder from a checkpoint spec or a resolved `Checkpoint`, weights loaded."""
    from transformers import BertConfig, TFBertModel

    if isinstance(checkpoint, str):
        checkpoint = resolve_checkpoint(checkpoint)
    config = BertConfig.from_json_file(checkpoint.config_path)
    vocabulary = checkpoint.vocabulary()
    if len(vocabulary) != config.vocab_size:
        raise CheckpointError(
            f"checkpoint {checkpoint.spec!r}: vocab.txt has {len(vocabulary)} tokens but "
            f"config.json says vocab_size={config.vocab_size}"
        )
    bert = TFBertModel(config)
    load_bert_weights(bert, checkpoint)
    tokenizer = BertTokenizerLayer(vocabulary, checkpoint.do_lower_case, max_length)
    return TextEncoder(bert, tokenizer, pooling, normalize, trainable_layers)


def encode_texts(encoder: TextEncoder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Encodes texts with one traced function; returns `[len(texts), dim]` float32 in input order.

    Texts are encoded in order of length, `batch_size` at a time, so each batch pads to texts of
    similar length; padding changes nothing in the output (the attention mask excludes it) and
    sorting saves most of the padded work on catalogs of mixed lengths.
    """
    fn = _traced(encoder)
    out = np.zeros((len(texts), encoder.dimension), np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = fn(tf.constant([texts[i] for i in chunk], dtype=tf.string)).numpy()
    return out


def _traced(encoder: TextEncoder):
    fn = getattr(encoder, "_encode_fn", None)
    if fn is None:
        fn = tf.function(
            lambda texts: encoder(texts, training=False),
            input_signature=[tf.TensorSpec([None], tf.string)],
            reduce_retracing=True,
        )
        encoder._encode_fn = fn
    return fn


class _EncoderModule(tf.Module):
    def __init__(self, encoder: TextEncoder):
        super().__init__()
        self.encoder = encoder

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def encode(self, texts):
        return {"embeddings": self.encoder(texts, training=False)}


def export_text_encoder(encoder: TextEncoder, path: str) -> None:
    """Saves the encoder alone as a SavedModel with one signature, `encode`:
    `texts` (string `[batch]`) → `embeddings` (float32 `[batch, dim]`)."""
    module = _EncoderModule(encoder)
    tf.saved_model.save(module, path, signatures={"encode": module.encode})
