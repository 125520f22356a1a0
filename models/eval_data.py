"""What `recsys evaluate` reads: the eval queries, and every event before the eval split.

Event records become NumPy columns with item ids already mapped to catalog indices (a lookup
table inside the `tf.data` pipeline, so half a million events with their histories take
seconds, not a Python loop over strings). From them come, for each eval query:

* its history: the catalog indices of `history_item_ids`, the last H items strictly before it;
* its exclusions (with `evaluate.exclude_seen`): every item its user interacted with strictly
  before it, in any split, however long ago: what a deployment that sends the user's seen
  items excludes, not only the model's history window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import tensorflow as tf

from pipeline.core import schema
from pipeline.core.reader import make_dataset

__all__ = ["EvalQueries", "EventColumns", "read_events", "seen_before"]


@dataclass
class EventColumns:
    """Events as columns.

    Attributes:
      users: `[events]` user ids (bytes).
      items: `[events]` catalog index of each event's item (-1: not in the catalog).
      timestamps: `[events]` epoch seconds.
      labels: `[events]` float32 labels.
      history_items: `[m]` catalog indices of every history entry (ids outside the catalog
        left out).
      history_rows: `[m]` the event each history entry belongs to.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    history_items: np.ndarray
    history_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def histories(self) -> list[np.ndarray]:
        """Each event's history as an array of catalog indices, in history order."""
        bounds = np.searchsorted(self.history_rows, np.arange(len(self) + 1))
        return [self.history_items[a:b] for a, b in pairwise(bounds)]


@dataclass
class EvalQueries:
    """The eval events as queries.

    Attributes:
      events: The eval events.
      histories: Per query, the catalog indices of its history.
      exclusions: Per query, the catalog indices to leave out of every ranking; None when
        nothing is excluded.
      train_counts: `[catalog]` events per item that the systems learned from (an item with
        none is cold).
    """

    events: EventColumns
    histories: list[np.ndarray]
    exclusions: list[np.ndarray] | None
    train_counts: np.ndarray


def read_events(patterns: str | list[str], catalog_ids: Sequence[str]) -> EventColumns:
    """Reads event TFRecords into columns, mapping item ids to catalog indices."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(catalog_ids), tf.string),
            tf.range(len(catalog_ids), dtype=tf.int64),
        ),
        default_value=-1,
    )

    def columns(batch):
        history = batch["history_item_ids"]
        return {
            "user_id": batch["user_id"],
            "item": table.lookup(batch["item_id"]),
            "timestamp": batch["timestamp"],
            "label": batch["label"],
            "history_items": table.lookup(history.values),
            "history_lengths": history.row_lengths(),
        }

    parts: dict[str, list[np.ndarray]] = {}
    for batch in make_dataset(patterns, schema.EVENTS, batch_size=4096).map(columns):
        for name, value in batch.items():
            parts.setdefault(name, []).append(value.numpy())
    if not parts:
        empty = np.zeros(0, np.int64)
        return EventColumns(
            np.zeros(0, object), empty, empty, np.zeros(0, np.float32), empty, empty
        )
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    rows = np.repeat(np.arange(len(joined["item"])), joined["history_lengths"])
    known = joined["history_items"] >= 0
    return EventColumns(
        users=joined["user_id"],
        items=joined["item"],
        timestamps=joined["timestamp"],
        labels=joined["label"].astype(np.float32),
        history_items=joined["history_items"][known],
        history_rows=rows[known],
    )


def seen_before(queries: EventColumns, everything: Sequence[EventColumns]) -> list[np.ndarray]:
    """For each query event, the distinct catalog items its user had an event on strictly
    before it (in any of `everything`, which includes the queries' own split)."""
    names = np.concatenate([queries.users, *(e.users for e in everything)])
    _, codes = np.unique(names, return_inverse=True)
    query_users, users = codes[: len(queries)], codes[len(queries) :]
    items = np.concatenate([e.items for e in everything])
    times = np.concatenate([e.timestamps for e in everything])
    order = np.lexsort((times, users))
    users, items, times = users[order], items[order], times[order]
    starts = np.searchsorted(users, query_users, side="left")
    ends = np.searchsorted(users, query_users, side="right")
    seen = []
    for start, end, when in zip(starts, ends, queries.timestamps, strict=True):
        stop = start + np.searchsorted(times[start:end], when, side="left")
        chosen = items[start:stop]
        seen.append(np.unique(chosen[chosen >= 0]))
    return seen
