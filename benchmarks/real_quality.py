"""Model quality on real data against strong baselines measured in the same run.

For each set, runs preprocess → embed-items → train → evaluate with the project's own config and
prints the model beside every baseline of `recsys evaluate` (most popular, co-occurrence,
item-kNN, EASE, content-only) on the same queries, the ratios model / EASE for recall@50 and
ndcg@10, and cold-start recall@50 model / content-only. The sets:

* `ml1m_temporal`: ML-1M users 1–2999 with plot text, the last 10% of ratings by time as eval;
* `ml1m_leave_last_out`: the same, each user's last rating as eval;
* `ml1m_cold_items`: the temporal split plus 10% of the catalog held out of training entirely
  (`preprocess.split.cold_item_fraction`): cold start measured on thousands of events;
* `ml100k_temporal`: MovieLens 100K, titles and genres only, the last 10% by time.

Every set excludes the items a user rated before the event and breaks ties at random. The model
is chosen on a validation slice of train; the eval split is read only by the evaluation.
`--seeds N` trains N times (seeds 1..N) and reports each model figure as the median with its
range; the baselines are deterministic. The first seed chooses the number of epochs on the
validation slice and refits on train + validation; the other seeds fit train + validation for
that many epochs straight away (`--select-every-seed`: each seed chooses its own, at about
twice the training time).

    python benchmarks/real_quality.py [--seeds 3] [--sets ml1m_temporal,ml100k_temporal]
        [--data-root ../shared/data] [--set model.embedding_dim=128 ...]

Writes `<work-dir>/real_quality.json` and `real_quality.png`; the last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pipeline.core.keras2  # noqa: F401  (before TensorFlow: TFRS needs Keras 2)

# isort: split
from models import evaluate, train
from pipeline.core.config import load_config
from pipeline.core.manifest import write_json_atomic
from pipeline.embed import embed_items
from pipeline.preprocess import preprocess

ML1M = "movielens-1m-users1-2999"
SETS = {
    "ml1m_temporal": ("configs/movielens1m.yaml", ML1M),
    "ml1m_leave_last_out": ("configs/movielens1m_leave_last_out.yaml", ML1M),
    "ml1m_cold_items": ("configs/movielens1m_cold_items.yaml", ML1M),
    "ml100k_temporal": ("configs/movielens100k.yaml", "movielens-100k"),
}
METRICS = ("recall@50", "ndcg@10", "user_recall@50", "user_ndcg@10", "cold_start_recall@50")


def _median(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def run_set(name: str, args: argparse.Namespace, reuse_embeddings: str | None) -> dict:
    """Runs one set: preprocess and embeddings once, then train + evaluate per seed."""
    config_path, folder = SETS[name]
    work = os.path.join(args.work_dir, name)
    overrides = [f"data.path={os.path.join(args.data_root, folder)}", f"work_dir={work}"]
    config = load_config(config_path, [*overrides, *args.set])
    started = time.perf_counter()
    pre = preprocess.run(config)
    embeddings = config.step_dir("embeddings")
    if reuse_embeddings and config.model.use_text and not os.path.exists(embeddings):
        shutil.copytree(reuse_embeddings, embeddings)  # same catalog: nothing is re-encoded
    embed_items.run(config)
    runs = []
    for seed in range(1, args.seeds + 1):
        extra = [f"train.seed={seed}"]
        chosen = runs[0]["best_epochs"] if runs and not args.select_every_seed else None
        if chosen:  # the first seed's choice, made on the validation slice
            extra += [f"train.epochs={chosen}", "train.early_stopping_patience=0"]
        seeded = load_config(config_path, [*overrides, *args.set, *extra])
        manifest = train.train(seeded)
        out = evaluate.evaluate(seeded)
        runs.append({"metrics": out, "best_epochs": manifest["best_epochs"] or chosen})
        print(f"{name}: seed {seed}: recall@50 {out['recall@50']:.4f} ndcg@10 {out['ndcg@10']:.4f}")
    first = runs[0]["metrics"]
    model = {key: _median([r["metrics"][key] for r in runs]) for key in METRICS}
    baselines = {
        base: {key: round(values[key], 4) for key in METRICS}
        for base, values in first["baselines"].items()
    }
    ratios = {}
    ease = first["baselines"].get("ease")
    for key in ("recall@50", "ndcg@10"):
        if ease and ease[key]:
            ratios[f"{key}_model_over_ease"] = round(model[key]["median"] / ease[key], 3)
        best = max(v[key] for v in first["baselines"].values())
        ratios[f"{key}_model_over_best_baseline"] = round(model[key]["median"] / best, 3)
    content = first["baselines"].get("content")
    if content and content["cold_start_recall@50"]:
        ratios["cold_start_recall@50_model_over_content"] = round(
            model["cold_start_recall@50"]["median"] / content["cold_start_recall@50"], 3
        )
    return {
        "counts": {
            "train": pre["counts"].get("train"),
            "validation": pre["counts"].get("validation"),
            "eval": pre["counts"].get("eval"),
            "eval_users": first["eval_users"],
            "cold_start_events": first["cold_start_events"],
            "catalog_items": first["catalog_items"],
        },
        "model": model,
        "baselines": baselines,
        "ratios": ratios,
        "best_epochs": [r["best_epochs"] for r in runs],
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }


def print_table(name: str, result: dict) -> None:
    counts = result["counts"]
    print(
        f"\n## {name}: {counts['eval']:,} eval events of {counts['eval_users']:,} users, "
        f"{counts['catalog_items']:,} items, {counts['cold_start_events']:,} cold-start events; "
        f"{result['minutes']} min"
    )
    systems = ["model", *result["baselines"]]
    print("| metric | " + " | ".join(systems) + " |")
    print("|---|" + "---:|" * len(systems))
    for key in METRICS:
        m = result["model"][key]
        spread = f" ({m['min']:.4f}–{m['max']:.4f})" if m["min"] != m["max"] else ""
        cells = [f"{m['median']:.4f}{spread}"]
        cells += [f"{result['baselines'][b][key]:.4f}" for b in result["baselines"]]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()))


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key in zip(axes, ("recall@50", "ndcg@10"), strict=True):
        names = list(results)
        systems = ["model", *next(iter(results.values()))["baselines"]]
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            values = [
                results[n]["model"][key]["median"]
                if system == "model"
                else results[n]["baselines"].get(system, {}).get(key, 0.0)
                for n in names
            ]
            ax.bar([j + i * width for j in range(len(names))], values, width, label=system)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(names))], names)
        ax.set_title(f"{key} (model: median over seeds)")
        ax.tick_params(axis="x", labelsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument(
        "--sets", default=",".join(SETS), help="comma-separated, of: " + ", ".join(SETS)
    )
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--work-dir", default="work/bench_real")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--select-every-seed",
        action="store_true",
        help="each seed chooses its epochs on the validation slice (default: the first seed's)",
    )
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SETS]
    if unknown or args.seeds < 1:
        parser.error(f"unknown set {unknown[0]!r}" if unknown else "--seeds must be at least 1")
    started = time.perf_counter()
    results: dict[str, dict] = {}
    embeddings: dict[str, str] = {}
    for name in chosen:
        folder = SETS[name][1]
        results[name] = run_set(name, args, embeddings.get(folder))
        embeddings.setdefault(folder, os.path.join(args.work_dir, name, "embeddings"))
        print_table(name, results[name])  # each set's table as soon as it is done
        partial = {"seeds": args.seeds, "sets": results, "complete": False}
        write_json_atomic(os.path.join(args.work_dir, "real_quality.json"), partial)
    print("\n# all sets")
    for name, result in results.items():
        print_table(name, result)
    minutes = round((time.perf_counter() - started) / 60, 1)
    print(f"\nwall time: {minutes} min for {len(chosen)} set(s), {args.seeds} seed(s)")
    summary = {"seeds": args.seeds, "minutes": minutes, "sets": results, "complete": True}
    write_json_atomic(os.path.join(args.work_dir, "real_quality.json"), summary)
    plot(results, os.path.join(args.work_dir, "real_quality.png"))
    print(f"plots: {os.path.join(args.work_dir, 'real_quality.png')}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
