"""`recsys evaluate --diversity-sweep`: the relevance–diversity trade-off of the exported MMR.

For every eval event, the export's own signatures produce the lists: `serving_default` at
λ = 1 with k = `serving.max_k` gives the ranking stage's candidates and their relevance, then
`mmr` reranks them to 10 items for each λ of a grid. NDCG@10 (of the event's true item) and
ILD@10 (mean pairwise cosine distance of the items' text embeddings, the metric `recsys
evaluate` reports) are measured at each λ, written as `diversity_sweep.json` and drawn as a
frontier in `diversity_frontier.png`. The summary names the smallest λ (most diverse) whose
NDCG@10 is within `max_ndcg_loss` of λ = 1 (pure relevance order) and the ILD@10 gain there.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import tensorflow as tf

from models import metrics as m
from models.features import FeatureSpace
from models.train import load_feature_space
from pipeline import schema
from pipeline.config import Config
from pipeline.errors import DataError
from pipeline.manifest import write_json_atomic
from pipeline.progress import ProgressBar, say
from pipeline.reader import make_dataset
from serving.versions import latest_version

__all__ = ["LAMBDAS", "diversity_sweep", "frontier_summary"]

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


def _top_lists(signatures, batch: dict[str, tf.Tensor], candidates: int, lambdas) -> dict:
    """item-id lists `[batch, K]` per λ for one batch of eval events."""
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
        exclude_seen=tf.zeros([n], tf.bool),
    )
    ids, relevance = ranked["item_ids"], ranked["relevance"]
    out = {}
    for lam in lambdas:
        picked = signatures["mmr"](
            item_ids=ids,
            relevance=relevance,
            k=tf.fill([n], K),
            mmr_lambda=tf.fill([n], float(lam)),
        )
        out[lam] = picked["item_ids"].numpy()
    return out


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
        "ild@10": m.embedding_ild(top, space.text_embeddings, space.has_text)
        if space.text_dim
        else 0.0,
        "category_ild@10": m.category_ild(top, space.item_categories),
    }


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
    import tensorflow_text  # noqa: F401  (registers the TF Text ops, as TF Serving links them)

    loaded = tf.saved_model.load(export_dir)
    candidates = min(s.num_candidates, s.max_k, len(space.catalog_ids))
    index = {item.encode(): i for i, item in enumerate(space.catalog_ids)}
    pattern = schema.output_pattern(config.step_dir("preprocess"), "eval")
    dataset = make_dataset(pattern, schema.EVENTS, batch_size=256)
    total = sum(int(b["user_id"].shape[0]) for b in dataset)
    say(f"diversity sweep: {total:,} eval events, {len(lambdas)} λ values, export {export_dir}")
    bar = ProgressBar("diversity sweep: eval events", total)
    lists: dict[float, list[np.ndarray]] = {lam: [] for lam in lambdas}
    truth: list[bytes] = []
    for batch in dataset:
        for lam, top in _top_lists(loaded.signatures, batch, candidates, lambdas).items():
            lists[lam].append(top)
        truth.extend(batch["item_id"].numpy())
        bar.update(len(truth))
    points = []
    for lam in lambdas:
        measured = _measure(np.concatenate(lists[lam]), truth, space, index)
        points.append({"lambda": lam, **measured})
    output = {
        "export": export_dir,
        "eval_events": total,
        "candidates": candidates,
        "k": K,
        "points": points,
        "summary": frontier_summary(points),
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    out_dir = config.step_dir("evaluation")
    write_json_atomic(os.path.join(out_dir, "diversity_sweep.json"), output)
    _plot(output, os.path.join(out_dir, "diversity_frontier.png"))
    return output


def _plot(output: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.manifest import write_bytes_atomic

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
