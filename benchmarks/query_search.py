"""Free-text search for a new user: the served model against plain BERT cosine search.

For `--queries` movies drawn with a fixed seed from the items that have a description, the
description's first sentence is the query of a user the model has never seen, with no history.
The model answers through the exported module's `retrieve` signature (the query encoded in the
graph by the same BERT as the item text, blended with the model's score as
`serving.query_weight` says); plain search ranks the catalog by the cosine of the query's BERT
embedding to each item's text embedding. Printed: recall@10 of each (the share of queries whose
movie is in the first 10) and their ratio.

    python benchmarks/query_search.py --config configs/movielens1m.yaml [--set work_dir=...]

It reads a trained work directory (`recsys run` or `benchmarks/real_quality.py` made it); the
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np
import tensorflow as tf

from models.query_blend import text_index
from models.text_encoder import build_text_encoder, encode_texts
from models.train import load_feature_space, load_trained_model
from pipeline import schema
from pipeline.config import Config, load_config
from pipeline.reader import read_all
from serving.module import RecommenderServing

__all__ = ["first_sentence", "query_search"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def first_sentence(text: str) -> str:
    """The text up to its first sentence end followed by a capitalized word."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def query_search(config: Config, queries: int = 300, k: int = 10, seed: int = 0) -> dict:
    """recall@k of the served model and of plain BERT cosine search (see the module doc)."""
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    t = config.text
    encoder = build_text_encoder(t.checkpoint, t.max_length, t.pooling, t.normalize)
    module = RecommenderServing(
        model, space.catalog_ids, space.text_embeddings, encoder, config.serving
    )
    pattern = schema.output_pattern(config.step_dir("preprocess"), "items")
    described = sorted(
        (r["item_id"], r["description"])
        for r in read_all(pattern, schema.ITEMS)
        if r["description"].strip()
    )
    if not described:
        raise ValueError(f"no item in {pattern} has a description")
    rng = np.random.default_rng(seed)
    picked = [described[i] for i in rng.choice(len(described), min(queries, len(described)), False)]
    targets = [item for item, _ in picked]
    texts = [first_sentence(description) for _, description in picked]

    served = []
    for start in range(0, len(texts), 50):
        chunk = texts[start : start + 50]
        n = len(chunk)
        out = module.retrieve(
            user_id=tf.constant(["a-new-user"] * n),
            history_item_ids=tf.fill([n, 1], ""),
            query=tf.constant(chunk),
            timestamp=tf.zeros([n], tf.int64),
            k=tf.fill([n], k),
            exclude_seen=tf.fill([n], True),
        )
        served += [list(row) for row in out["item_ids"].numpy().astype(str)]

    vectors = encode_texts(encoder, texts)
    cosines = vectors @ text_index(space.text_embeddings).T
    top = np.argsort(-cosines, axis=1, kind="stable")[:, :k]
    plain = [[space.catalog_ids[j] for j in row] for row in top]

    def recall(lists):
        return float(np.mean([target in row for target, row in zip(targets, lists, strict=True)]))

    model_recall, plain_recall = recall(served), recall(plain)
    return {
        "queries": len(texts),
        "query_weight": config.serving.query_weight,
        f"model_recall@{k}": round(model_recall, 4),
        f"bert_cosine_recall@{k}": round(plain_recall, 4),
        "model_over_bert": round(model_recall / plain_recall, 3) if plain_recall else None,
        "example": {"query": texts[0], "target": targets[0], "model_top3": served[0][:3]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/movielens1m.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = query_search(load_config(args.config, args.set), args.queries, seed=args.seed)
    print(
        f"query search, {result['queries']} plot first sentences as a new user's query: "
        f"recall@10 model {result['model_recall@10']:.4f}, plain BERT cosine "
        f"{result['bert_cosine_recall@10']:.4f} ({result['model_over_bert']}×)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
