"""Serving latency on a synthetic 100,000-item catalog, in one process.

Builds the serving module (`serving/module.py`) over a randomly initialized recommender whose
catalog has 100,000 items (64-d vectors, 384-d text embeddings, 20 categories), saves it as a
SavedModel and loads it back, as TF Serving would. Then times, batch 1, after warm-up:

* `serving_default` (N = 200 retrieved and ranked, k = 20 after MMR) against the brute-force
  floor: the same index's matmul + top-200 alone, saved and called the same way;
* `mmr` (N = 500, k = 50) against the NumPy reference of the tests, on the same inputs; also
  `mmr_select` alone (the in-graph MMR without the id lookups and duplicate check).

The query text encoder is left out (no query is the common request, and the graph skips BERT
when every query of a batch is empty).

    python benchmarks/serving_bench.py [--items 100000] [--repeats 400]

Targets (issue 5): recommend ≤ 1.5× the floor; mmr ≤ 1 ms at N = 500, k = 50 and no slower
than the NumPy reference. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.features import FeatureSpace  # noqa: E402
from models.recommender import Recommender  # noqa: E402
from pipeline.config import ModelConfig, ServingConfig  # noqa: E402
from serving.mmr import mmr_select  # noqa: E402
from serving.module import RecommenderServing  # noqa: E402
from tests.serving.mmr_reference import mmr_reference  # noqa: E402


def synthetic_space(n_items: int, n_users: int, text_dim: int, seed: int = 0) -> FeatureSpace:
    rng = np.random.default_rng(seed)
    items = [f"i{i:06d}" for i in range(n_items)]
    text = rng.normal(size=(n_items, text_dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    counts = rng.zipf(1.3, n_items).clip(max=10_000)
    return FeatureSpace(
        user_ids=[f"u{u:06d}" for u in range(n_users)],
        trained_item_ids=items,
        categories=[f"c{c}" for c in range(20)],
        catalog_ids=items,
        item_categories=[[int(c)] for c in rng.integers(0, 20, n_items)],
        text_embeddings=text,
        has_text=np.ones(n_items, np.float32),
        train_counts=counts,
    )


class Floor(tf.Module):
    """The index's matmul + top-k alone: the least any brute-force retrieval can cost."""

    def __init__(self, index: np.ndarray, count: int):
        super().__init__()
        self.index = tf.Variable(index, trainable=False)
        self.count = count

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="query")])
    def retrieve(self, query):
        top = tf.math.top_k(tf.matmul(query, self.index, transpose_b=True), k=self.count)
        return {"rows": top.indices, "scores": top.values}


def timed(fn, repeats: int) -> dict[str, float]:
    for _ in range(20):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=400)
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(0)
    space = synthetic_space(args.items, 10_000, 384)
    model = Recommender(space, ModelConfig(embedding_dim=64))
    serving = ServingConfig(num_candidates=200, max_k=50, max_candidates=1000)
    print(f"building the serving module over {args.items:,} items", file=sys.stderr)
    module = RecommenderServing(model, space.catalog_ids, space.text_embeddings, None, serving)
    folder = tempfile.mkdtemp(prefix="serving_bench_")
    tf.saved_model.save(module, f"{folder}/model", signatures=module.signatures())
    floor_module = Floor(module.index.numpy(), serving.num_candidates)
    tf.saved_model.save(
        floor_module, f"{folder}/floor", signatures={"retrieve": floor_module.retrieve}
    )
    loaded = tf.saved_model.load(f"{folder}/model")
    floor = tf.saved_model.load(f"{folder}/floor").signatures["retrieve"]
    recommend = loaded.signatures["serving_default"]
    mmr = loaded.signatures["mmr"]

    rng = np.random.default_rng(1)
    history = tf.constant([[space.catalog_ids[i] for i in rng.integers(0, args.items, 20)]])
    request = dict(
        user_id=tf.constant([space.user_ids[7]]),
        history_item_ids=history,
        query=tf.constant([""]),
        timestamp=tf.constant([1_700_000_000], tf.int64),
        k=tf.constant([20]),
        mmr_lambda=tf.constant([0.7]),
        exclude_seen=tf.constant([True]),
    )
    query = tf.constant(rng.normal(size=(1, 64)).astype(np.float32))
    print("timing serving_default and the floor (interleaved)", file=sys.stderr)
    rec_times, floor_times = [], []
    for _ in range(4):
        rec_times.append(timed(lambda: recommend(**request), args.repeats // 4))
        floor_times.append(timed(lambda: floor(query=query), args.repeats // 4))
    rec = {k: float(np.median([t[k] for t in rec_times])) for k in rec_times[0]}
    flo = {k: float(np.median([t[k] for t in floor_times])) for k in floor_times[0]}

    n, k = 500, 50
    ids = [space.catalog_ids[i] for i in rng.choice(args.items, n, replace=False)]
    relevance = rng.normal(size=(1, n)).astype(np.float32)
    mmr_inputs = dict(
        item_ids=tf.constant([ids]),
        relevance=tf.constant(relevance),
        k=tf.constant([k]),
        mmr_lambda=tf.constant([0.7]),
    )
    rows = np.array([int(i[1:]) for i in ids])  # synthetic ids are "i" + catalog row
    vectors = module.similarity.numpy()[1 + rows][np.newaxis]  # similarity row 0 is "unknown"
    valid = np.ones((1, n), bool)
    lam = np.array([0.7], np.float32)
    ks = np.array([k], np.int32)
    select = tf.function(
        lambda e, r, v, kk, lm: mmr_select(e, r, v, kk, lm, tf.reduce_max(kk)),
        input_signature=[
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, None], tf.bool),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ],
    )
    tensors = [tf.constant(x) for x in (vectors, relevance, valid, ks, lam)]
    graph_positions = select(*tensors)[0].numpy()
    reference_positions = mmr_reference(vectors, relevance, valid, ks, lam)[0]
    assert (graph_positions == reference_positions).all(), "graph MMR differs from the reference"
    print("timing mmr (signature, mmr_select alone) and the NumPy reference", file=sys.stderr)
    mmr_sig = timed(lambda: mmr(**mmr_inputs), args.repeats)
    mmr_alone = timed(lambda: select(*tensors), args.repeats)
    reference = timed(lambda: mmr_reference(vectors, relevance, valid, ks, lam), args.repeats)

    figures = {
        "items": args.items,
        "recommend_p50_ms": round(rec["p50_ms"], 3),
        "recommend_p99_ms": round(rec["p99_ms"], 3),
        "floor_p50_ms": round(flo["p50_ms"], 3),
        "floor_p99_ms": round(flo["p99_ms"], 3),
        "recommend_vs_floor_p50": round(rec["p50_ms"] / flo["p50_ms"], 3),
        "recommend_vs_floor_p99": round(rec["p99_ms"] / flo["p99_ms"], 3),
        "mmr_signature_p50_ms": round(mmr_sig["p50_ms"], 3),
        "mmr_signature_p99_ms": round(mmr_sig["p99_ms"], 3),
        "mmr_select_p50_ms": round(mmr_alone["p50_ms"], 3),
        "mmr_select_p99_ms": round(mmr_alone["p99_ms"], 3),
        "mmr_numpy_reference_p50_ms": round(reference["p50_ms"], 3),
        "mmr_numpy_reference_p99_ms": round(reference["p99_ms"], 3),
        "mmr_signature_vs_reference_p50": round(mmr_sig["p50_ms"] / reference["p50_ms"], 3),
    }
    print(f"recommend (N=200, k=20): p50 {rec['p50_ms']:.2f} ms, p99 {rec['p99_ms']:.2f} ms")
    print(f"floor (matmul + top-200): p50 {flo['p50_ms']:.2f} ms, p99 {flo['p99_ms']:.2f} ms")
    print(f"recommend / floor: {figures['recommend_vs_floor_p50']:.2f}× at p50 (target ≤ 1.5)")
    print(
        f"mmr (N=500, k=50): signature p50 {mmr_sig['p50_ms']:.3f} ms, p99 "
        f"{mmr_sig['p99_ms']:.3f} ms; mmr_select alone p50 {mmr_alone['p50_ms']:.3f} ms; "
        f"NumPy reference p50 {reference['p50_ms']:.3f} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
