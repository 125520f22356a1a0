"""The text encoder as a Beam RunInference model handler.

`RunInference` batches the texts (up to `text.batch_size`), loads the encoder once per worker
with `load_model` and calls `run_inference` per batch; the handler knows nothing of items, so a
`KeyedModelHandler` around it carries item ids through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipeline.core.config import TextConfig

__all__ = ["TextEncoderModelHandler"]


class TextEncoderModelHandler(ModelHandler[str, PredictionResult, Any]):
    """Texts in, `PredictionResult(text, embedding)` out (embedding: float32 `[dim]`).

    Args:
      text: The text feature's configuration (checkpoint, max_length, pooling, normalize,
        batch_size).
    """

    # Beam batches hold this many encoder batches: `encode_texts` orders each Beam batch by length
    # before cutting it into encoder batches, so larger Beam batches pad less.
    BATCHES_PER_CALL = 4

    def __init__(self, text: TextConfig):
        size = text.batch_size * self.BATCHES_PER_CALL
        super().__init__(min_batch_size=size, max_batch_size=size)
        self._text = text

    def load_model(self):
        # Deliberately lazy, here and in run_inference: TensorFlow loads in the worker that runs
        # the model (RunInference calls load_model there), not in the process that builds the
        # pipeline, which with `model.use_text` off never needs it.
        from pipeline.embed.text_encoder import build_text_encoder, encode_texts

        t = self._text
        encoder = build_text_encoder(t.checkpoint, t.max_length, t.pooling, t.normalize)
        # Trace the graph now, so loading (measured by RunInference) includes it and the first
        # batch runs at full speed.
        encode_texts(encoder, ["warm-up"], batch_size=1)
        return encoder

    def run_inference(
        self, batch: Sequence[str], model, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        from pipeline.embed.text_encoder import encode_texts  # lazy: see load_model

        texts = list(batch)
        vectors = encode_texts(model, texts, batch_size=self._text.batch_size)
        return [PredictionResult(text, vector) for text, vector in zip(texts, vectors, strict=True)]

    def get_num_bytes(self, batch: Sequence[str]) -> int:
        return sum(len(text.encode("utf-8")) for text in batch)

    def get_metrics_namespace(self) -> str:
        return "recsys.text_encoder"
