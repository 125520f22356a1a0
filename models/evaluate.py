"""`recsys evaluate`: full-catalog evaluation of the trained model against two baselines.

Every eval event is a query (its user, history and time) whose true item is ranked among the
whole catalog, cold items included. The model is compared, in the same run and on the same
queries, with two baselines: most-popular (train counts) and item co-occurrence (items that
followed the query's history items in training sequences). Outputs in `<work_dir>/evaluation/`:
`metrics.json` (flat keys, baselines under `baselines.<name>.<metric>`), `report.md` and PNG
plots.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from models import metrics as m
from models.features import FeatureSpace
from models.train import load_feature_space, load_trained_model, trained_id
from pipeline import schema
from pipeline.config import Config
from pipeline.manifest import code_version, write_json_atomic, write_text_atomic
from pipeline.progress import ProgressBar, say
from pipeline.reader import make_dataset
from pipeline.timestamps import format_timestamp

__all__ = ["Ranking", "evaluate", "summarize"]

KS = (10, 50, 100)
ACCURACY_KS = (1, 5, 10, 50, 100)
STEP = "evaluation"


@dataclass
class Ranking:
    """One system's answers to the eval queries.

    Attributes:
      ranks: `[queries]` full-catalog rank of each true item (1 = best).
      topk: `[queries, 100]` best catalog indices per query.
    """

    ranks: np.ndarray
    topk: np.ndarray


@dataclass
class EvalSet:
    users: np.ndarray
    truth: np.ndarray  # catalog index of each eval event's item
    histories: list[np.ndarray]  # catalog indices of each event's history
    labels: np.ndarray


def _rank_rows(scores: np.ndarray, truth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, scores.shape[1])
    true_scores = scores[np.arange(len(truth)), truth]
    ranks = 1 + (scores > true_scores[:, None]).sum(axis=1)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return ranks, np.take_along_axis(top, order, axis=1)


def _read_eval(config: Config, space: FeatureSpace) -> tuple[EvalSet, tf.data.Dataset]:
    pattern = schema.output_pattern(config.step_dir("preprocess"), "eval")
    dataset = make_dataset(pattern, schema.EVENTS, batch_size=512)
    index = {item: i for i, item in enumerate(space.catalog_ids)}
    users, truth, histories, labels = [], [], [], []
    for batch in dataset:
        users.extend(batch["user_id"].numpy())
        truth.extend(index[i.decode()] for i in batch["item_id"].numpy())
        labels.extend(batch["label"].numpy())
        for row in batch["history_item_ids"].to_list():
            histories.append(np.array([index[i.decode()] for i in row if i.decode() in index]))
    return (
        EvalSet(np.array(users), np.array(truth), histories, np.array(labels, np.float32)),
        dataset,
    )


def rank_with_model(
    model, space: FeatureSpace, dataset: tf.data.Dataset, truth: np.ndarray
) -> tuple[Ranking, np.ndarray]:
    """Model ranking and predicted labels of the eval queries."""
    raw_candidates = model.candidate_vector(tf.constant(space.catalog_ids))
    candidates = tf.math.l2_normalize(raw_candidates, axis=-1).numpy()
    raw_candidates = raw_candidates.numpy()
    ranks, tops, predictions = [], [], []
    done = 0
    bar = ProgressBar("evaluate: scoring eval events", len(truth))
    for batch in dataset:
        raw_query = model.query_vector(batch)
        query = tf.math.l2_normalize(raw_query, axis=-1).numpy()
        rows = truth[done : done + len(query)]
        r, t = _rank_rows(query @ candidates.T, rows, max(KS))
        ranks.append(r)
        tops.append(t)
        predictions.append(model.rank(raw_query, tf.constant(raw_candidates[rows])).numpy())
        done += len(query)
        bar.update(done)
    return Ranking(np.concatenate(ranks), np.concatenate(tops)), np.concatenate(predictions)


def rank_by_popularity(space: FeatureSpace, eval_set: EvalSet) -> Ranking:
    """Most-popular: the same list for everyone, by train events (ties by catalog order)."""
    order = np.argsort(-space.train_counts, kind="stable")
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(1, len(order) + 1)
    n = len(eval_set.truth)
    return Ranking(position[eval_set.truth], np.tile(order[: max(KS)], (n, 1)))


def cooccurrence_counts(config: Config, space: FeatureSpace) -> dict[int, Counter]:
    """For each item, how often each other item followed it in a train event's history."""
    pattern = schema.output_pattern(config.step_dir("preprocess"), "train")
    index = {item: i for i, item in enumerate(space.catalog_ids)}
    follows: dict[int, Counter] = {}
    for batch in make_dataset(pattern, schema.EVENTS, batch_size=2048):
        items = [index[i.decode()] for i in batch["item_id"].numpy()]
        for item, history in zip(items, batch["history_item_ids"].to_list(), strict=True):
            for h in set(history):
                follows.setdefault(index[h.decode()], Counter())[item] += 1
    return follows


def rank_by_cooccurrence(
    space: FeatureSpace, eval_set: EvalSet, follows: dict[int, Counter]
) -> Ranking:
    """Item co-occurrence: score = how often each item followed the query's history items in
    training, ties broken by popularity (so an empty history falls back to most-popular)."""
    tiebreak = (
        space.train_counts / (space.train_counts.max() + 1.0) if len(space.train_counts) else 0
    )
    ranks, tops = [], []
    for start in range(0, len(eval_set.truth), 512):
        rows = range(start, min(start + 512, len(eval_set.truth)))
        scores = np.tile(tiebreak, (len(rows), 1))
        for r, q in enumerate(rows):
            for h in eval_set.histories[q]:
                for item, count in follows.get(int(h), {}).items():
                    scores[r, item] += count
        rk, tp = _rank_rows(scores, eval_set.truth[list(rows)], max(KS))
        ranks.append(rk)
        tops.append(tp)
    return Ranking(np.concatenate(ranks), np.concatenate(tops))


def summarize(ranking: Ranking, eval_set: EvalSet, space: FeatureSpace) -> dict[str, float]:
    """Every metric of one system, flat keys such as `recall@50`, `ndcg@10`."""
    out: dict[str, float] = {}
    for k in KS:
        out[f"recall@{k}"] = m.recall_at_k(ranking.ranks, k)
        out[f"ndcg@{k}"] = m.ndcg_at_k(ranking.ranks, k)
        out[f"hit_rate@{k}"] = m.user_hit_rate_at_k(ranking.ranks, eval_set.users, k)
        out[f"coverage@{k}"] = m.catalog_coverage(ranking.topk[:, :k], len(space.catalog_ids))
    for k in ACCURACY_KS:
        out[f"top_{k}_accuracy"] = m.recall_at_k(ranking.ranks, k)
    out["mrr"] = m.mrr(ranking.ranks)
    top10 = ranking.topk[:, :10]
    if space.text_dim:
        out["ild@10"] = m.embedding_ild(top10, space.text_embeddings, space.has_text)
    out["category_ild@10"] = m.category_ild(top10, space.item_categories)
    out["novelty@10"] = m.novelty(top10, space.sampling_probability())
    out["long_tail_share@10"] = m.long_tail_share(top10, space.train_counts)
    cold = space.train_counts[eval_set.truth] == 0
    for k in KS:
        out[f"cold_start_recall@{k}"] = m.recall_at_k(ranking.ranks[cold], k)
    return out


def evaluate(config: Config) -> dict[str, Any]:
    """Evaluates the trained model and the baselines; writes metrics, report and plots."""
    started = time.time()
    space = load_feature_space(config)
    weights_id = trained_id(config)  # before loading: the weights these metrics belong to
    model = load_trained_model(config, space)
    eval_set, dataset = _read_eval(config, space)
    say(f"evaluate: {len(eval_set.truth):,} eval events over {len(space.catalog_ids):,} items")
    ranking, predictions = rank_with_model(model, space, dataset, eval_set.truth)
    results = summarize(ranking, eval_set, space)
    results["rmse"] = m.rmse(eval_set.labels, predictions)
    say("evaluate: baselines (most popular, item co-occurrence)")
    baselines = {
        "most_popular": summarize(rank_by_popularity(space, eval_set), eval_set, space),
        "cooccurrence": summarize(
            rank_by_cooccurrence(space, eval_set, cooccurrence_counts(config, space)),
            eval_set,
            space,
        ),
    }
    cold = int((space.train_counts[eval_set.truth] == 0).sum())
    output = {
        **results,
        "baselines": baselines,
        "eval_events": len(eval_set.truth),
        "cold_start_events": cold,
        "catalog_items": len(space.catalog_ids),
        "trained_id": weights_id,
        "code_version": code_version(),
        "created_at": format_timestamp(int(time.time())),
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    out_dir = config.step_dir(STEP)
    write_json_atomic(os.path.join(out_dir, "metrics.json"), output)
    write_text_atomic(os.path.join(out_dir, "report.md"), _report(output))
    _plots(output, out_dir)
    return output


_REPORT_KEYS = (
    "recall@10",
    "recall@50",
    "recall@100",
    "ndcg@10",
    "ndcg@50",
    "mrr",
    "hit_rate@10",
    "top_1_accuracy",
    "top_5_accuracy",
    "top_10_accuracy",
    "top_50_accuracy",
    "top_100_accuracy",
    "cold_start_recall@50",
    "coverage@10",
    "coverage@100",
    "ild@10",
    "category_ild@10",
    "novelty@10",
    "long_tail_share@10",
    "rmse",
)


def _report(output: dict[str, Any]) -> str:
    systems = {"model": output, **output["baselines"]}
    lines = [
        "# Evaluation",
        "",
        f"{output['eval_events']:,} eval events ranked over the full catalog of "
        f"{output['catalog_items']:,} items; {output['cold_start_events']:,} of them are on items "
        "without train events (cold start).",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for key in _REPORT_KEYS:
        if key in output:
            cells = [f"{s[key]:.4f}" if key in s else "–" for s in systems.values()]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![metrics by K](metrics_by_k.png)",
        "",
        "![model and baselines](compare.png)",
        "",
    ]
    return "\n".join(lines)


def _plots(output: dict[str, Any], out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = {"model": output, **output["baselines"]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, values in systems.items():
        axes[0].plot(KS, [values[f"recall@{k}"] for k in KS], marker="o", label=name)
        axes[1].plot(KS, [values[f"ndcg@{k}"] for k in KS], marker="o", label=name)
    for ax, title in zip(axes, ("Recall@K", "NDCG@K"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("K")
        ax.set_xticks(KS)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "metrics_by_k.png"), dpi=110)
    plt.close(fig)

    keys = ["recall@50", "ndcg@10", "cold_start_recall@50", "coverage@10", "long_tail_share@10"]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / len(systems)
    for i, (name, values) in enumerate(systems.items()):
        ax.bar(np.arange(len(keys)) + i * width, [values[k] for k in keys], width, label=name)
    ax.set_xticks(np.arange(len(keys)) + width * (len(systems) - 1) / 2, keys)
    ax.set_title("Model and baselines on the eval events")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "compare.png"), dpi=110)
    plt.close(fig)
