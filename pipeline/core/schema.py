"""The single source of truth for the pipeline's TFRecord features and output layout.

The Beam writer (`Schema.encode`), the `tf.data` reader (`Schema.tf_feature_spec`, used by
`pipeline.core.reader`) and the serving signatures all take feature names, dtypes and shapes from
here.

Examples are `tf.train.Example` protos on the wire. The writer builds them with message classes
declared below from the same field numbers as TensorFlow's `example.proto`, so Beam workers encode
records without importing TensorFlow; `tests/pipeline/core/test_schema.py` checks that TensorFlow
parses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "EMBEDDINGS",
    "EVENTS",
    "ITEMS",
    "SCHEMA_VERSION",
    "Feature",
    "Schema",
    "decode_example",
    "output_pattern",
    "pre_eval_patterns",
]

SCHEMA_VERSION = 1

STRING, INT64, FLOAT = "string", "int64", "float"


@dataclass(frozen=True)
class Feature:
    """One feature of a record.

    Attributes:
      name: Feature key in the tf.train.Example.
      dtype: `string`, `int64` or `float`.
      varlen: False for a scalar (shape `[]`), True for a list of any length (ragged when
        batched, shape `[batch, None]`).
      doc: What the feature holds.
    """

    name: str
    dtype: str
    varlen: bool = False
    doc: str = ""


class Schema:
    """An ordered set of features with an encoder and a TensorFlow parsing spec."""

    def __init__(self, name: str, features: Sequence[Feature]):
        self.name = name
        self.features = tuple(features)
        self.by_name = {f.name: f for f in self.features}
        if len(self.by_name) != len(self.features):
            raise ValueError(f"schema {name!r} has duplicate feature names")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """Serializes one record as a tf.train.Example.

        Args:
          values: A value for every feature: a str/int/float for scalars, a sequence for varlen
            features. Strings are stored as UTF-8 bytes.

        Raises:
          KeyError: naming a feature with no value.
          ValueError: naming a feature whose value has the wrong shape.
        """
        example = _EXAMPLE()
        feature_map = example.features.feature
        for f in self.features:
            try:
                value = values[f.name]
            except KeyError:
                raise KeyError(f"{self.name} record has no value for feature {f.name!r}") from None
            if f.varlen:
                if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                    raise ValueError(f"feature {f.name!r} must be a list (got {value!r})")
                items = value
            else:
                if isinstance(value, list | tuple):
                    raise ValueError(f"feature {f.name!r} must be a scalar (got {value!r})")
                items = (value,)
            slot = feature_map[f.name]
            if f.dtype == STRING:
                slot.bytes_list.value.extend(
                    v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in items
                )
            elif f.dtype == INT64:
                slot.int64_list.value.extend(int(v) for v in items)
            else:
                slot.float_list.value.extend(float(v) for v in items)
        return example.SerializeToString()

    def tf_feature_spec(self) -> dict[str, Any]:
        """The spec for `tf.io.parse_example`: scalars dense, lists ragged."""
        import tensorflow as tf

        dtypes = {STRING: tf.string, INT64: tf.int64, FLOAT: tf.float32}
        spec: dict[str, Any] = {}
        for f in self.features:
            if f.varlen:
                spec[f.name] = tf.io.RaggedFeature(dtypes[f.dtype], row_splits_dtype=tf.int64)
            else:
                spec[f.name] = tf.io.FixedLenFeature([], dtypes[f.dtype])
        return spec


EVENTS = Schema(
    "events",
    [
        Feature("user_id", STRING, doc="The user's id as in the input."),
        Feature("item_id", STRING, doc="The item's id as in the input and the catalog."),
        Feature("timestamp", INT64, doc="Event time, epoch seconds UTC."),
        Feature("event_type", STRING, doc="Event type, or the configured default."),
        Feature("label", FLOAT, doc="The rating when the data has one, else 1.0 (implicit)."),
        Feature("weight", FLOAT, doc="Sample weight (weight field or per-event-type weight)."),
        Feature("item_categories", STRING, varlen=True, doc="The item's categories."),
        Feature(
            "history_item_ids",
            STRING,
            varlen=True,
            doc="The user's last H items strictly before this event, oldest first.",
        ),
        Feature(
            "history_timestamps",
            INT64,
            varlen=True,
            doc="Event times of history_item_ids, aligned with it.",
        ),
    ],
)

ITEMS = Schema(
    "items",
    [
        Feature("item_id", STRING, doc="The item's id."),
        Feature("title", STRING, doc="The title."),
        Feature("description", STRING, doc="The description, possibly empty."),
        Feature("categories", STRING, varlen=True, doc="Categories, primary first."),
        Feature("text", STRING, doc="Title, categories, description and extra text, joined."),
        Feature(
            "train_count",
            INT64,
            doc="Train and validation events on this item (popularity, for logQ).",
        ),
        Feature("total_count", INT64, doc="Kept events on this item in all splits."),
        Feature(
            "first_event_timestamp", INT64, doc="Time of the item's first kept event, -1 if none."
        ),
    ],
)

EMBEDDINGS = Schema(
    "item_embeddings",
    [
        Feature("item_id", STRING, doc="The item's id."),
        Feature("text_hash", STRING, doc="SHA-256 (hex) of the item text that was encoded."),
        Feature(
            "has_text",
            INT64,
            doc="1 when the item has text and an embedding, 0 when its text is empty.",
        ),
        Feature(
            "embedding",
            FLOAT,
            varlen=True,
            doc="The text encoder's L2-normalized vector; empty when has_text is 0 (no vector "
            "pretends to describe an item without text).",
        ),
    ],
)

# Output layout of each step, relative to the step's folder. Readers glob these patterns.
_OUTPUTS = {
    "train": "train/events-*.tfrecord.gz",
    "validation": "validation/events-*.tfrecord.gz",
    "eval": "eval/events-*.tfrecord.gz",
    "items": "items/items-*.tfrecord.gz",
    "dead_letters": "dead_letters/*.jsonl",
    "vocab_users": "vocab/users.txt",
    "vocab_items": "vocab/items.txt",
    "vocab_categories": "vocab/categories.txt",
    "counts_users": "vocab/users_counts.tsv",
    "counts_items": "vocab/items_counts.tsv",
    "counts_categories": "vocab/categories_counts.tsv",
    "stats": "stats.json",
    "manifest": "manifest.json",
    "item_embeddings": "item_embeddings-*.tfrecord.gz",
}


def output_pattern(step_dir: str, name: str) -> str:
    """Path or glob of a step output: `train`, `validation`, `eval`, `items`, ... in the
    preprocess folder, `item_embeddings` in the embeddings folder, `manifest` in any."""
    try:
        relative = _OUTPUTS[name]
    except KeyError:
        raise KeyError(f"unknown preprocess output {name!r}; known: {sorted(_OUTPUTS)}") from None
    return os.path.join(step_dir, relative)


def pre_eval_patterns(step_dir: str) -> list[str]:
    """The globs of every event before the eval split (train, then validation), for the
    evaluation baselines: they learn from all the data the deployed model saw, model selection
    included. `pipeline.core.reader` reads such a list as one data set."""
    return [output_pattern(step_dir, "train"), output_pattern(step_dir, "validation")]


def decode_example(data: bytes, schema: Schema) -> dict[str, Any]:
    """Parses a serialized Example into Python values (str/int/float or lists), for tools and
    tests that must not depend on TensorFlow."""
    example = _EXAMPLE.FromString(data)
    out: dict[str, Any] = {}
    for f in schema.features:
        slot = example.features.feature[f.name]
        if f.dtype == STRING:
            values: list[Any] = [v.decode("utf-8") for v in slot.bytes_list.value]
        elif f.dtype == INT64:
            values = list(slot.int64_list.value)
        else:
            values = list(slot.float_list.value)
        out[f.name] = values if f.varlen else values[0]
    return out


def _build_example_class() -> type:
    """Message classes wire-compatible with tensorflow/core/example/{example,feature}.proto."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="recsys_pipeline/example_wire.proto", package="recsys_pipeline.wire", syntax="proto3"
    )
    label_repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    label_optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    type_message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    for name, scalar in (
        ("BytesList", descriptor_pb2.FieldDescriptorProto.TYPE_BYTES),
        ("FloatList", descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT),
        ("Int64List", descriptor_pb2.FieldDescriptorProto.TYPE_INT64),
    ):
        message = proto.message_type.add(name=name)
        message.field.add(name="value", number=1, label=label_repeated, type=scalar)
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (field_name, type_name) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")),
        start=1,
    ):
        feature.field.add(
            name=field_name,
            number=number,
            label=label_optional,
            type=type_message,
            type_name=f".recsys_pipeline.wire.{type_name}",
            oneof_index=0,
        )
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(
        name="key",
        number=1,
        label=label_optional,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    )
    entry.field.add(
        name="value",
        number=2,
        label=label_optional,
        type=type_message,
        type_name=".recsys_pipeline.wire.Feature",
    )
    features.field.add(
        name="feature",
        number=1,
        label=label_repeated,
        type=type_message,
        type_name=".recsys_pipeline.wire.Features.FeatureEntry",
    )
    example = proto.message_type.add(name="Example")
    example.field.add(
        name="features",
        number=1,
        label=label_optional,
        type=type_message,
        type_name=".recsys_pipeline.wire.Features",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("recsys_pipeline.wire.Example")
    )


_EXAMPLE = _build_example_class()
