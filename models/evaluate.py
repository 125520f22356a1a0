"""`recsys evaluate`: full-catalog evaluation of the trained model against strong baselines.

Every eval event is a query (its user, history and time) whose true item is ranked among the
whole catalog, cold items included. The model and the baselines of `models.baselines` (most
popular, co-occurrence, item-kNN, EASE, content-only) rank the same queries through
`models.ranking.rank_queries`, with the same exclusions (`evaluate.exclude_seen`: the items the
user interacted with before the event) and random tie-breaking. This step is the only reader of
the eval split; training and model selection read the validation slice of train. Outputs in
`<work_dir>/evaluation/`: `metrics.json` (flat keys, baselines under `baselines.<name>.<metric>`),
`report.md` and PNG plots.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from models import baselines as b
from models import metrics as m
from models.compare import best_baseline
from models.eval_data import EvalQueries, EventColumns, read_events, seen_before
from models.features import FeatureSpace
from models.ranking import Ranking, rank_queries
from models.train import load_feature_space, load_trained_model, trained_id
from pipeline.core import schema
from pipeline.core.config import Config, EvaluateConfig
from pipeline.core.errors import DataError
from pipeline.core.manifest import code_version, read_json, write_json_atomic, write_text_atomic
from pipeline.core.progress import ProgressBar, say
from pipeline.core.reader import make_dataset
from pipeline.core.timestamps import format_timestamp

__all__ = [
    "BASELINES",
    "baseline_scorers",
    "eval_queries",
    "evaluate",
    "output_dir",
    "summarize",
]

KS = (10, 50, 100)
ACCURACY_KS = (1, 5, 10, 50, 100)
STEP = "evaluation"
BASELINES = ("most_popular", "cooccurrence", "item_knn", "ease", "content")


def model_scorer(model, space: FeatureSpace, pattern: str, expected: int):
    """The model's cosine scores of the eval queries and its predicted labels of their items.

    Returns `(score, predictions)`: `score(rows)` gives `[rows, catalog]` query–candidate
    cosines (what serving's retrieval ranks by), `predictions` the ranking head's label for
    each query's true item (for RMSE)."""
    raw_candidates = model.candidate_vector(tf.constant(space.catalog_ids))
    candidates = tf.math.l2_normalize(raw_candidates, axis=-1).numpy()
    index = {item: i for i, item in enumerate(space.catalog_ids)}
    queries, predictions = [], []
    bar = ProgressBar("evaluate: model query vectors", expected)
    for batch in make_dataset(pattern, schema.EVENTS, batch_size=512):
        raw_query = model.query_vector(batch)
        queries.append(tf.math.l2_normalize(raw_query, axis=-1).numpy())
        rows = [index.get(i.decode(), 0) for i in batch["item_id"].numpy()]
        predictions.append(model.rank(raw_query, tf.gather(raw_candidates, rows)).numpy())
        bar.update(sum(len(q) for q in queries))
    vectors = np.concatenate(queries) if queries else np.zeros((0, candidates.shape[1]))
    if len(vectors) != expected:
        raise RuntimeError(
            f"read {len(vectors)} eval queries for the model, {expected} for the rest"
        )
    return (lambda rows: vectors[rows] @ candidates.T), (
        np.concatenate(predictions) if predictions else np.zeros(0, np.float32)
    )


def baseline_scorers(
    settings: EvaluateConfig, space: FeatureSpace, before: EventColumns, queries: EvalQueries
) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, str]]:
    """Each baseline's scorer of query rows, and the reason for each baseline left out.

    `before` holds every event before the eval split (train and validation): what the
    baselines learn from, as a deployed model would."""
    n = len(space.catalog_ids)
    known = before.items >= 0
    counts = queries.train_counts
    scorers: dict[str, b.Scorer] = {"most_popular": b.popularity_scorer(counts)}
    entries = known[before.history_rows]
    follows = b.follow_counts(
        before.history_items[entries], before.history_rows[entries], before.items, n
    )
    scorers["cooccurrence"] = b.cooccurrence_scorer(follows, counts)
    skipped: dict[str, str] = {}
    limit = settings.ease_max_items
    if n <= limit:
        _, users = np.unique(before.users[known], return_inverse=True)
        gram = b.gram_matrix(users, before.items[known], n)
        scorers["item_knn"] = b.item_knn_scorer(gram)
        scorers["ease"] = b.ease_scorer(gram, settings.ease_lambda)
    else:
        reason = (
            f"the catalog has {n:,} items, above evaluate.ease_max_items = {limit:,} "
            "(an items × items matrix)"
        )
        skipped.update(item_knn=reason, ease=reason)
    if space.text_dim and space.has_text.any():
        scorers["content"] = b.content_scorer(space.text_embeddings, space.has_text)
    else:
        skipped["content"] = "no item text embeddings (model.use_text is off or no item has text)"
    histories = queries.histories
    return {
        name: (lambda rows, s=scorer: s([histories[r] for r in rows]))
        for name, scorer in scorers.items()
    }, skipped


def summarize(ranking: Ranking, queries: EvalQueries, space: FeatureSpace) -> dict[str, float]:
    """Every metric of one system, flat keys such as `recall@50`, `ndcg@10`.

    `recall@k`, `ndcg@k` are per eval event (the headline); `user_recall@k`, `user_ndcg@k`
    average each user's mean first, so a user with a quarter of a temporal eval split counts
    once; `user_hit_rate@k` is the share of users with at least one hit."""
    users = queries.events.users
    truth = queries.events.items
    out: dict[str, float] = {}
    for k in KS:
        out[f"recall@{k}"] = m.recall_at_k(ranking.ranks, k)
        out[f"ndcg@{k}"] = m.ndcg_at_k(ranking.ranks, k)
        out[f"user_recall@{k}"] = m.user_mean(m.hits_at_k(ranking.ranks, k), users)
        out[f"user_ndcg@{k}"] = m.user_mean(m.gains_at_k(ranking.ranks, k), users)
        out[f"user_hit_rate@{k}"] = m.user_hit_rate_at_k(ranking.ranks, users, k)
        out[f"coverage@{k}"] = m.catalog_coverage(ranking.topk[:, :k], len(space.catalog_ids))
    for k in ACCURACY_KS:
        out[f"top_{k}_accuracy"] = m.recall_at_k(ranking.ranks, k)
    out["mrr"] = m.mrr(ranking.ranks)
    top10 = ranking.topk[:, :10]
    if space.text_dim:
        out["ild@10"] = m.embedding_ild(top10, space.text_embeddings, space.has_text)
    out["category_ild@10"] = m.category_ild(top10, space.item_categories)
    out["novelty@10"] = m.novelty(top10, space.sampling_probability())
    out["long_tail_share@10"] = m.long_tail_share(top10, queries.train_counts)
    cold = queries.train_counts[truth] == 0
    for k in KS:
        out[f"cold_start_recall@{k}"] = m.recall_at_k(ranking.ranks[cold], k)
    return out


def eval_queries(config: Config, space: FeatureSpace) -> tuple[EvalQueries, EventColumns]:
    """The queries of `evaluate.split` and the events the systems learn from: everything before
    the eval split, or, when tuning on the validation slice, the train events alone (nothing of
    the eval split is read then)."""
    pre_dir = config.step_dir("preprocess")
    split = config.evaluate.split
    events = read_events(schema.output_pattern(pre_dir, split), space.catalog_ids)
    learned = (
        schema.pre_eval_patterns(pre_dir)
        if split == "eval"
        else schema.output_pattern(pre_dir, "train")
    )
    before = read_events(learned, space.catalog_ids)
    outside = int((events.items < 0).sum())
    if outside:
        raise RuntimeError(
            f"{outside} {split} events are on items outside the model's catalog "
            "(preprocess.vocab.item_min_count left them out); evaluation ranks catalog items only"
        )
    exclusions = seen_before(events, [before, events]) if config.evaluate.exclude_seen else None
    counts = np.bincount(before.items[before.items >= 0], minlength=len(space.catalog_ids))
    return EvalQueries(events, events.histories(), exclusions, counts), before


def _check_tunable(config: Config) -> None:
    """Tuning on the validation slice needs a model that never trained on it."""
    if config.evaluate.split != "validation":
        return
    path = os.path.join(config.step_dir("model"), "trained", "manifest.json")
    if os.path.exists(path) and read_json(path).get("refit"):
        raise DataError(
            "evaluate.split is validation but the trained model was refit on train + "
            "validation; train with train.refit=false to tune on the validation slice"
        )


def output_dir(config: Config) -> str:
    """Where the evaluation writes: `evaluation/`, or `evaluation-validation/` when tuning (so a
    tuning run never replaces the metrics the export and the gate read)."""
    suffix = "" if config.evaluate.split == "eval" else f"-{config.evaluate.split}"
    return config.step_dir(STEP) + suffix


def evaluate(config: Config) -> dict[str, Any]:
    """Evaluates the trained model and the baselines; writes metrics, report and plots."""
    started = time.time()
    space = load_feature_space(config)
    weights_id = trained_id(config)  # before loading: the weights these metrics belong to
    _check_tunable(config)
    model = load_trained_model(config, space)
    queries, before = eval_queries(config, space)
    n_queries = len(queries.events)
    truth = queries.events.items
    say(
        f"evaluate: {n_queries:,} {config.evaluate.split} events over "
        f"{len(space.catalog_ids):,} items, "
        f"seen items {'excluded' if queries.exclusions is not None else 'not excluded'}"
    )
    pattern = schema.output_pattern(config.step_dir("preprocess"), config.evaluate.split)
    score, predictions = model_scorer(model, space, pattern, n_queries)
    seed = config.evaluate.seed

    def rank(name: str, scorer) -> Ranking:
        bar = ProgressBar(f"evaluate: ranking with {name}", n_queries)
        return rank_queries(scorer, truth, queries.exclusions, seed, max(KS), bar.update)

    results = summarize(rank("the model", score), queries, space)
    results["rmse"] = m.rmse(queries.events.labels, predictions)
    scorers, skipped = baseline_scorers(config.evaluate, space, before, queries)
    baselines = {name: summarize(rank(name, s), queries, space) for name, s in scorers.items()}
    cold = int((queries.train_counts[truth] == 0).sum())
    output = {
        **results,
        "baselines": baselines,
        "baselines_skipped": skipped,
        "split": config.evaluate.split,
        "eval_events": n_queries,
        "eval_users": len(np.unique(queries.events.users)),
        "cold_start_events": cold,
        "catalog_items": len(space.catalog_ids),
        "exclude_seen": config.evaluate.exclude_seen,
        "excluded_per_query": (
            float(np.mean([len(x) for x in queries.exclusions]))
            if queries.exclusions is not None and n_queries
            else 0.0
        ),
        "ease_lambda": config.evaluate.ease_lambda,
        "trained_id": weights_id,
        "code_version": code_version(),
        "created_at": format_timestamp(int(time.time())),
        "timings": {"seconds": round(time.time() - started, 2)},
    }
    out_dir = output_dir(config)
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
    "user_recall@50",
    "user_ndcg@10",
    "mrr",
    "user_hit_rate@10",
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


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def _report(output: dict[str, Any]) -> str:
    systems = {"model": output, **output["baselines"]}
    exclusion = (
        f"the items each user interacted with before the event are excluded from every "
        f"ranking ({output['excluded_per_query']:.1f} per query on average)"
        if output["exclude_seen"]
        else "nothing is excluded (items the user has seen can be recommended again)"
    )
    lines = [
        "# Evaluation",
        "",
        f"{output['eval_events']:,} eval events of {output['eval_users']:,} users ranked over "
        f"the full catalog of {output['catalog_items']:,} items; "
        f"{output['cold_start_events']:,} of them are on items without train events (cold "
        f"start). Every system ranks the same queries; {exclusion}; ties are broken at random. "
        "`recall@k`/`ndcg@k` are per event, `user_*` average each user's mean.",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for key in _REPORT_KEYS:
        if key in output:
            cells = [f"{s[key]:.4f}" if key in s else "–" for s in systems.values()]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("")
    for metric in ("recall@50", "ndcg@10", "cold_start_recall@50"):
        best = best_baseline(output, metric)
        if best and best[1]:
            name, value = best
            lines.append(
                f"- {metric}: model / best baseline ({name}) = {_ratio(output[metric], value)}"
            )
    ease = output["baselines"].get("ease")
    if ease:
        lines.append(
            f"- model / EASE (λ = {output['ease_lambda']:g}): recall@50 "
            f"{_ratio(output['recall@50'], ease['recall@50'])}, ndcg@10 "
            f"{_ratio(output['ndcg@10'], ease['ndcg@10'])}"
        )
    for name, reason in output.get("baselines_skipped", {}).items():
        lines.append(f"- baseline {name} not run: {reason}")
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
