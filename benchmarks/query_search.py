"""Free-text search for a new user: the served model against plain BERT cosine search.

For `--queries` movies drawn with a fixed seed from the items that have a description, the
description's first sentence is the query of a user the model has never seen, with no history.
The model answers through the exported module's `retrieve` signature (the query encoded in the
graph by the same BERT as the item text, blended with the model's score as
`serving.query_weight` says); plain search ranks the catalog by the cosine of the query's BERT
embedding to each item's text embedding. Printed: recall@10 of each (the share of queries whose
movie is in the first 10) and their ratio.

`serving.query_weight` is chosen on other movies: the seeded draw is one permutation of the
described movies, whose first `--queries` are the test queries and the next `--queries` the
tuning ones (`--split tune`, disjoint by construction). `--weights 0,0.25,...` answers the same
queries once per weight and plots recall@10 against it (`--plot`).

    python benchmarks/query_search.py --config configs/movielens1m.yaml [--set work_dir=...]
    python benchmarks/query_search.py --split tune --weights 0.5,0.75,1 --plot query_weight.png

It reads a trained work directory (`recsys run` or `benchmarks/real_quality.py` made it); the
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pipeline.core.keras2  # noqa: F401  (before TensorFlow: TFRS needs Keras 2)

# isort: split
import numpy as np
import tensorflow as tf

from models.query_blend import text_index
from models.train import load_feature_space, load_trained_model
from pipeline.core import schema
from pipeline.core.config import Config, load_config
from pipeline.core.reader import read_all
from pipeline.embed.text_encoder import build_text_encoder, encode_texts
from serving.module import RecommenderServing

__all__ = ["first_sentence", "query_search"]

# A sentence ends at . ! or ?, perhaps followed by a closing quote or parenthesis, then space
# and a capital, a digit or an opening quote.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)]))\s+(?=[A-Z0-9\"'“‘(])")


def first_sentence(text: str) -> str:
    """The text up to its first sentence end followed by a capitalized word."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def query_search(
    config: Config,
    queries: int = 300,
    k: int = 10,
    seed: int = 0,
    split: str = "test",
    weights: list[float] | None = None,
) -> dict:
    """recall@k of the served model (once per `weights` entry, `serving.query_weight` by
    default) and of plain BERT cosine search (see the module doc)."""
    if weights and split == "test":
        raise ValueError("choose serving.query_weight on the tuning queries (split='tune')")
    space = load_feature_space(config)
    model = load_trained_model(config, space)
    t = config.text
    encoder = build_text_encoder(t.checkpoint, t.max_length, t.pooling, t.normalize)
    pattern = schema.output_pattern(config.step_dir("preprocess"), "items")
    described = sorted(
        (r["item_id"], r["description"])
        for r in read_all(pattern, schema.ITEMS)
        if r["description"].strip()
    )
    if not described:
        raise ValueError(f"no item in {pattern} has a description")
    order = np.random.default_rng(seed).permutation(len(described))
    start = {"test": 0, "tune": queries}[split]
    picked = [described[i] for i in order[start : start + queries]]
    if not picked:
        raise ValueError(f"{len(described)} described items leave no {split} queries")
    targets = [item for item, _ in picked]
    texts = [first_sentence(description) for _, description in picked]

    def recall(lists):
        return float(np.mean([target in row for target, row in zip(targets, lists, strict=True)]))

    vectors = encode_texts(encoder, texts)
    cosines = vectors @ text_index(space.text_embeddings).T
    top = np.argsort(-cosines, axis=1, kind="stable")[:, :k]
    plain = recall([[space.catalog_ids[j] for j in row] for row in top])
    per_weight, example = {}, None
    for weight in weights or [config.serving.query_weight]:
        serving = dataclasses.replace(config.serving, query_weight=weight)
        module = RecommenderServing(
            model, space.catalog_ids, space.text_embeddings, encoder, serving
        )
        served = _retrieve(module, texts, k)
        per_weight[weight] = round(recall(served), 4)
        example = example or {"query": texts[0], "target": targets[0], "model_top3": served[0][:3]}
    weight = config.serving.query_weight if weights is None else max(per_weight, key=per_weight.get)
    return {
        "split": split,
        "queries": len(texts),
        "query_weight": weight,
        f"model_recall@{k}": per_weight[weight],
        f"bert_cosine_recall@{k}": round(plain, 4),
        "model_over_bert": round(per_weight[weight] / plain, 3) if plain else None,
        f"model_recall@{k}_by_weight": per_weight,
        "example": example,
    }


def _retrieve(module: RecommenderServing, texts: list[str], k: int) -> list[list[str]]:
    """The `retrieve` signature's top `k` ids for each query of a new user without history."""
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
    return served


def plot(result: dict, path: str, k: int = 10) -> None:
    """recall@k against `serving.query_weight`, with plain BERT cosine search as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_weight = result[f"model_recall@{k}_by_weight"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(by_weight), list(by_weight.values()), "o-", label="model (retrieve signature)")
    ax.axhline(result[f"bert_cosine_recall@{k}"], color="gray", ls="--", label="plain BERT cosine")
    ax.set_xlabel("serving.query_weight")
    ax.set_ylabel(f"recall@{k}")
    ax.set_title(f"{result['queries']} {result['split']} queries: plot first sentence, new user")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/movielens1m.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("test", "tune"), default="test")
    parser.add_argument("--weights", help="comma-separated query weights to compare")
    parser.add_argument("--plot", help="PNG of recall@10 against the query weight")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    config = load_config(args.config, args.set)
    result = query_search(config, args.queries, seed=args.seed, split=args.split, weights=weights)
    for weight, value in result["model_recall@10_by_weight"].items():
        print(f"query_weight {weight}: recall@10 {value:.4f}")
    print(
        f"query search, {result['queries']} {args.split} plot first sentences as a new user's "
        f"query: recall@10 model {result['model_recall@10']:.4f} (query_weight "
        f"{result['query_weight']}), plain BERT cosine {result['bert_cosine_recall@10']:.4f} "
        f"({result['model_over_bert']}×)"
    )
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
