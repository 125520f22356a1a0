"""The model's view of the data: id vocabularies, the item table and item popularity.

`FeatureSpace.load` reads what `recsys preprocess` and `recsys embed-items` wrote. Two id spaces
matter and are kept apart:

* the **catalog**: every item, cold ones included, in `vocab/items.txt` order. The candidate
  index, the item table (categories, text embedding) and popularity are aligned with it;
* the **trained ids**: users and items with at least one train event. Only they get their own
  embedding row; every other id (new users, items never seen in training) maps to an
  out-of-vocabulary bucket, so the model never scores with a row it never trained. Cold items
  are then placed by their text and categories.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

import numpy as np

from pipeline.core import schema
from pipeline.core.errors import DataError
from pipeline.core.reader import read_all

__all__ = ["FeatureSpace"]


def _read_counts(path: str) -> tuple[list[str], np.ndarray]:
    """Ids and train counts from a `*_counts.tsv` file (id, train count, total count)."""
    if not os.path.exists(path):
        raise DataError(f"missing {path}; run `recsys preprocess` first")
    ids, train = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row:
                ids.append(row[0])
                train.append(int(row[1]))
    return ids, np.asarray(train, dtype=np.int64)


@dataclass
class FeatureSpace:
    """Vocabularies and item tables for the model.

    Attributes:
      user_ids: Users with train events (own embedding rows); others are OOV.
      trained_item_ids: Items with train events (own embedding rows); others are OOV.
      categories: Category vocabulary.
      catalog_ids: Every catalog item, the candidate index order.
      item_categories: For each catalog item, its category ids (indices into `categories`).
      text_embeddings: `[catalog, dim]` float32, zero rows where `has_text` is 0.
      has_text: `[catalog]` float32, 1 where the item has a text embedding.
      train_counts: `[catalog]` train events per catalog item.
      num_oov_buckets: Out-of-vocabulary buckets for unknown ids.
      implicit_labels: Every train label is the same value (clicks, views: implicit feedback),
        so the ranking head needs negatives to learn anything.
    """

    user_ids: list[str]
    trained_item_ids: list[str]
    categories: list[str]
    catalog_ids: list[str]
    item_categories: list[list[int]]
    text_embeddings: np.ndarray
    has_text: np.ndarray
    train_counts: np.ndarray
    num_oov_buckets: int = 1
    implicit_labels: bool = False

    @property
    def text_dim(self) -> int:
        return int(self.text_embeddings.shape[1])

    def sampling_probability(self) -> np.ndarray:
        """Each catalog item's share of train events, the in-batch sampling probability that the
        retrieval task's logQ correction subtracts (items without train events get the
        smallest observed share, so their correction stays finite)."""
        counts = self.train_counts.astype(np.float64)
        total = counts.sum()
        if total <= 0:
            return np.full(len(counts), 1.0 / max(len(counts), 1), np.float32)
        floor = counts[counts > 0].min() if (counts > 0).any() else 1.0
        return (np.maximum(counts, floor) / total).astype(np.float32)

    @classmethod
    def load(
        cls, preprocess_dir: str, embeddings_dir: str | None, num_oov_buckets: int = 1
    ) -> FeatureSpace:
        """Reads the preprocess outputs and, when given, the item embeddings.

        Raises:
          DataError: when an input is missing or the embeddings do not cover the catalog.
        """
        users, user_train = _read_counts(schema.output_pattern(preprocess_dir, "counts_users"))
        items, item_train = _read_counts(schema.output_pattern(preprocess_dir, "counts_items"))
        categories, _ = _read_counts(schema.output_pattern(preprocess_dir, "counts_categories"))
        category_index = {c: i for i, c in enumerate(categories)}
        catalog = {
            r["item_id"]: r
            for r in read_all(schema.output_pattern(preprocess_dir, "items"), schema.ITEMS)
        }
        missing = [i for i in items if i not in catalog]
        if missing:
            raise DataError(f"item vocabulary lists {missing[0]!r}, absent from the item records")
        item_categories = [
            [category_index[c] for c in catalog[i]["categories"] if c in category_index]
            for i in items
        ]
        text, has_text = np.zeros((len(items), 0), np.float32), np.zeros(len(items), np.float32)
        if embeddings_dir is not None:
            text, has_text = _read_embeddings(embeddings_dir, items)
        return cls(
            user_ids=[u for u, n in zip(users, user_train, strict=True) if n > 0],
            trained_item_ids=[i for i, n in zip(items, item_train, strict=True) if n > 0],
            categories=categories,
            catalog_ids=items,
            item_categories=item_categories,
            text_embeddings=text,
            has_text=has_text,
            train_counts=item_train,
            num_oov_buckets=num_oov_buckets,
            implicit_labels=_labels_are_constant(preprocess_dir),
        )


def _labels_are_constant(preprocess_dir: str) -> bool:
    with open(schema.output_pattern(preprocess_dir, "stats"), encoding="utf-8") as f:
        events = json.load(f)["events"]
    return events.get("label_min") == events.get("label_max")


def _read_embeddings(embeddings_dir: str, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    records = {
        r["item_id"]: r
        for r in read_all(
            schema.output_pattern(embeddings_dir, "item_embeddings"), schema.EMBEDDINGS
        )
    }
    absent = [i for i in items if i not in records]
    if absent:
        raise DataError(
            f"{len(absent)} catalog items have no embedding record (e.g. {absent[0]!r}); "
            "run `recsys embed-items` after `recsys preprocess`"
        )
    dim = max((len(r["embedding"]) for r in records.values()), default=0)
    text = np.zeros((len(items), dim), np.float32)
    has_text = np.zeros(len(items), np.float32)
    for row, item in enumerate(items):
        record = records[item]
        if record["has_text"]:
            text[row] = record["embedding"]
            has_text[row] = 1.0
    return text, has_text
