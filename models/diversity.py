"""`recsys evaluate --diversity-sweep`: the relevance–diversity trade-off of the exported MMR.

For every eval event, the export's own signatures produce the lists: `serving_default` at
λ = 1 with k = `serving.max_k` gives the ranking stage's candidates and their relevance, then
`mmr` reranks them to 10 items for each λ of a grid. The protocol is `recsys evaluate`'s: the
request carries the event's history with `exclude_seen` on, and with `evaluate.exclude_seen`
every item the user interacted with before the event is dropped from the candidates before
MMR (as a deployment filters what a user already has), so λ = 1 reproduces the evaluation's
NDCG@10 of the served ranking. NDCG@10 (of the event's true item) and
ILD@10 (mean pairwise cosine distance of the items' text embeddings, the metric `recsys
evaluate` reports) are measured at each λ, written as `diversity_sweep.json` and drawn as a
frontier in `diversity_frontier.png`. The summary names the smallest λ (most diverse) whose
NDCG@10 is within `max_ndcg_loss` of λ = 1 (pure relevance order) and the ILD@10 gain there;
the ILD@10 of seeded random lists of the catalog is reported beside it as the scale of that gain.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import tensorflow as tf

from models import metrics as m
from models.evaluate import eval_queries, output_dir
from models.features import FeatureSpace
from models.train import load_feature_space
from pipeline.core import schema
from pipeline.core.config import Config
from pipeline.core.errors import DataError
from pipeline.core.manifest import write_bytes_atomic, write_json_atomic
from pipeline.core.progress import ProgressBar, say
from pipeline.core.reader import make_dataset
from pipeline.core.version_dirs import latest_version

__all__ = ["LAMBDAS", "diversity_sweep", "drop_seen", "frontier_summary"]

LAMBDAS = (
    1.0,
    0.975,
    0.95,
    0.925,
    0.9,
    0.875,
    0.85,
    0.8,
    0.75,
    0.7,
    0.6,
    0.5,
    0.4,
    0.3,
    0.2,
    0.1,
    0.0,
)
K = 10


def _pad(rows: list[list[bytes]]) -> np.ndarray:
    width = max(1, max(len(r) for r in rows))
    return np.array([list(r) + [b""] * (width - len(r)) for r in rows], dtype=object)


def drop_seen(
    ids: np.ndarray, relevance: np.ndarray, seen: list[set[bytes]]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidates `[batch, n]` (bytes ids, "" pads) without the ids in its `seen`
    set, order kept, re-padded with "" (relevance 0) to the longest remaining row."""
    kept = [
        [(i, r) for i, r in zip(row_ids, row_rel, strict=True) if i and i not in row_seen]
        for row_ids, row_rel, row_seen in zip(ids, relevance, seen, strict=True)
    ]
    width = max(1, max(len(row) for row in kept))
    out_ids = np.full((len(kept), width), b"", dtype=object)
    out_rel = np.zeros((len(kept), width), np.float32)
    for r, row in enumerate(kept):
        for c, (item, rel) in enumerate(row):
            out_ids[r, c], out_rel[r, c] = item, rel
    return out_ids, out_rel


def _top_lists(
    signatures, batch: dict[str, tf.Tensor], seen: list[set[bytes]], candidates: int, lambdas
) -> tuple[dict, float]:
    """item-id lists `[batch, K]` per λ for one batch of eval events, and the mean number of
    candidates left after `seen` was dropped."""
    n = int(batch["user_id"].shape[0])
    history = _pad(batch["history_item_ids"].to_list())
    query = {
        "user_id": batch["user_id"],
        "history_item_ids": tf.constant(history, tf.string),
        "query": tf.constant([""] * n),
        "timestamp": batch["timestamp"],
    }
    # recommend at λ = 1 and k = all candidates: the ranking stage's order and relevance.
    ranked = signatures["serving_default"](
        **query,
        k=tf.fill([n], candidates),
        mmr_lambda=tf.ones([n]),
        exclude_seen=tf.ones([n], tf.bool),
    )
    ids, relevance = drop_seen(ranked["item_ids"].numpy(), ranked["relevance"].numpy(), seen)
    counts = (ids != b"").sum(axis=1)
    live = np.flatnonzero(counts)  # a row with nothing left gets an empty list
    k = np.minimum(K, counts[live]).astype(np.int32)
    ids, relevance = tf.constant(ids[live], tf.string), tf.constant(relevance[live])
    out = {}
    for lam in lambdas:
        top = np.full((n, K), b"", dtype=object)
        if len(live):
            picked = signatures["mmr"](
                item_ids=ids,
                relevance=relevance,
                k=tf.constant(k),
                mmr_lambda=tf.fill([len(live)], float(lam)),
            )["item_ids"].numpy()
            top[live, : picked.shape[1]] = picked
        out[lam] = top
    left = float(np.mean(counts))
    return out, left


def frontier_summary(points: list[dict[str, float]], max_ndcg_loss: float = 0.05) -> dict:
    """The most diverse λ whose NDCG@10 stays within `max_ndcg_loss` (relative) of λ = 1, and
    its ILD@10 gain over λ = 1."""
    base = next(p for p in points if p["lambda"] == 1.0)
    allowed = [p for p in points if p["ndcg@10"] >= (1.0 - max_ndcg_loss) * base["ndcg@10"]]
    best = max(allowed, key=lambda p: p["ild@10"])
    return {
        "max_ndcg_loss": max_ndcg_loss,
        "lambda": best["lambda"],
        "ndcg@10": best["ndcg@10"],
        "ndcg_change": best["ndcg@10"] / base["ndcg@10"] - 1.0 if base["ndcg@10"] else 0.0,
        "ild@10": best["ild@10"],
        "ild_gain": best["ild@10"] / base["ild@10"] - 1.0 if base["ild@10"] else 0.0,
    }


def _diversity(top: np.ndarray, space: FeatureSpace) -> dict:
    """ILD@10 (text-embedding cosine distance; 0 without text) and category ILD@10 of full
    lists of catalog rows `[lists, K]`."""
    return {
        "ild@10": m.embedding_ild(top, space.text_embeddings, space.has_text)
        if space.text_dim
        else 0.0,
        "category_ild@10": m.category_ild(top, space.item_categories),
    }


def _measure(lists: np.ndarray, truth: list[bytes], space: FeatureSpace, index: dict) -> dict:
    rows = np.array([[index.get(i, -1) for i in row] for row in lists])
    truth_rows = np.array([index.get(t, -2) for t in truth])
    hits = rows == truth_rows[:, np.newaxis]
    ranks = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 10**9)
    filled = [r[r >= 0] for r in rows]
    top = np.array([r for r in filled if len(r) == K])
    return {
        "ndcg@10": m.ndcg_at_k(ranks, K),
        "recall@10": m.recall_at_k(ranks, K),
        **_diversity(top, space),
    }


def _random_lists(space: FeatureSpace, rng: np.random.Generator, lists: int = 5000) -> dict:
    """ILD@10 of seeded random 10-item lists of the catalog: how diverse a list is that ignores
    relevance, the scale against which a gain in ILD reads (text embeddings of one domain are
    alike, so even random lists are far from ILD 1)."""
    pool = np.flatnonzero(space.has_text) if space.text_dim else np.arange(0)
    if len(pool) < K:
        pool = np.arange(len(space.catalog_ids))
    if len(pool) < K:
        return {"ild@10": 0.0, "category_ild@10": 0.0}
    top = np.stack([rng.choice(pool, K, replace=False) for _ in range(lists)])
    return _diversity(top, space)


def diversity_sweep(config: Config, lambdas=LAMBDAS) -> dict[str, Any]:
    """Runs the sweep on the latest export and writes its JSON and plot under evaluation/."""
    started = time.time()
    s = config.serving
    export_dir = latest_version(os.path.join(s.export_path(config.work_dir), s.model_name))
    if export_dir is None:
        raise DataError(
            f"no export of {s.model_name!r} under {s.export_base!r}; run `recsys export`"
        )
    space = load_feature_space(config)
    queries, _ = eval_queries(config, space)
    seen = [
        {space.catalog_ids[i].encode() for i in items}
        for items in (queries.exclusions or [()] * len(queries.events))
    ]
    import tensorflow_text  # noqa: F401  (registers the TF Text ops, as TF Serving links them)

    loaded = tf.saved_model.load(export_dir)
    candidates = min(s.num_candidates, s.max_k, len(space.catalog_ids))
    index = {item.encode(): i for i, item in enumerate(space.catalog_ids)}
    pattern = schema.output_pattern(config.step_dir("preprocess"), config.evaluate.split)
    dataset = make_dataset(pattern, schema.EVENTS, batch_size=256)
    total = len(queries.events)
    say(
        f"diversity sweep: {total:,} eval events, {len(lambdas)} λ values, export {export_dir}, "
        f"seen items {'excluded' if queries.exclusions is not None else 'not excluded'}"
    )
    bar = ProgressBar("diversity sweep: eval events", total)
    lists: dict[float, list[np.ndarray]] = {lam: [] for lam in lambdas}
    truth: list[bytes] = []
    left = []
    for batch in dataset:
        n = int(batch["user_id"].shape[0])
        rows = seen[len(truth) : len(truth) + n]
        tops, kept = _top_lists(loaded.signatures, batch, rows, candidates, lambdas)
        for lam, top in tops.items():
            lists[lam].append(top)
        truth.extend(batch["item_id"].numpy())
        left.append(kept * n)
        bar.update(len(truth))
    expected = [space.catalog_ids[i].encode() for i in queries.events.items]
    if truth != expected:  # the exclusions were read in another order than the requests
        raise RuntimeError("diversity sweep: eval events read in two different orders")
    points = []
    for lam in lambdas:
        measured = _measure(np.concatenate(lists[lam]), truth, space, index)
        points.append({"lambda": lam, **measured})
    output = {
        "export": export_dir,
        "random_lists": _random_lists(space, np.random.default_rng(config.evaluate.seed)),
        "eval_events": total,
        "candidates": candidates,
        "exclude_seen": queries.exclusions is not None,
        "candidates_after_exclusion": float(sum(left) / total) if total else 0.0,
        "k": K,
        "points": points,
        "summary": frontier_summary(points),
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    out_dir = output_dir(config)
    write_json_atomic(os.path.join(out_dir, "diversity_sweep.json"), output)
    _plot(output, os.path.join(out_dir, "diversity_frontier.png"))
    return output


def _plot(output: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = output["points"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot([p["ild@10"] for p in points], [p["ndcg@10"] for p in points], "o-", color="C0")
    for p in points:
        ax.annotate(
            f"λ={p['lambda']:g}",
            (p["ild@10"], p["ndcg@10"]),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    chosen = output["summary"]
    ax.scatter(
        [chosen["ild@10"]],
        [chosen["ndcg@10"]],
        s=120,
        facecolors="none",
        edgecolors="C3",
        label=f"λ={chosen['lambda']:g}: ILD {chosen['ild_gain']:+.0%}, "
        f"NDCG {chosen['ndcg_change']:+.1%}",
    )
    ax.axvline(
        output["random_lists"]["ild@10"],
        color="0.5",
        linestyle="--",
        label=f"random 10-item lists (ILD {output['random_lists']['ild@10']:.3f})",
    )
    ax.set_xlabel("ILD@10 (text-embedding cosine distance)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(f"MMR relevance–diversity frontier ({output['eval_events']:,} eval events)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
