"""The `recsys` command line: one subcommand per pipeline step.

Every step takes `--config FILE` and repeated `--set key.path=value` overrides, prints progress on
stderr and a summary on stdout, and exits non-zero with a one-line reason on failure (`--debug`
shows the traceback). Flags the step does not know are handed to Beam (`--runner`, `--project`,
`--temp_location`, `--setup_file`, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable

from pipeline.config import Config, load_config
from pipeline.errors import RecsysError

__all__ = ["main"]

_BEAM_STEPS = {"preprocess", "embed-items"}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config (defaults when omitted)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config field, e.g. --set preprocess.split.method=random (repeatable)",
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback on errors")


def _cmd_sample_data(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from pipeline.progress import ProgressBar, say
    from pipeline.sample_data import generate, write_sample_data

    cfg = config.sample_data
    out = args.out or config.data_path()
    fmt = args.format or cfg.format
    say(f"sample-data: {cfg.n_users} users, {cfg.n_items} items, seed {cfg.seed}")
    bar = ProgressBar("sample-data: users simulated", cfg.n_users)
    data = generate(cfg, progress=bar.update)
    result = write_sample_data(data, out, fmt)
    print(
        f"Wrote {result['n_events']:,} events of {result['n_users']:,} users and "
        f"{result['n_items']:,} items ({fmt}):\n  {result['events']}\n  {result['items']}"
    )


def _cmd_preprocess(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from pipeline import preprocess, schema

    manifest = preprocess.run(config, extra)
    out = config.step_dir("preprocess")
    counts, items = manifest["counts"], manifest["item_counts"]
    lines = [
        f"Events: read {counts['read']:,}, kept {counts['kept']:,} "
        f"(train {counts['train']:,}, eval {counts['eval']:,}), rejected {counts['rejected']:,}",
        f"Items:  read {items['read']:,}, kept {items['kept']:,}, rejected {items['rejected']:,}",
    ]
    for what, block in (("events", counts), ("items", items)):
        for reason, n in block["rejected_by_reason"].items():
            lines.append(f"  rejected {what} ({reason}): {n:,}")
    sizes = manifest["vocab_sizes"]
    lines.append(
        f"Vocabularies: {sizes['users']:,} users, {sizes['items']:,} items, "
        f"{sizes['categories']:,} categories"
    )
    split = manifest["split"]
    if split.get("cutoff_iso"):
        lines.append(f"Split: temporal, eval from {split['cutoff_iso']}")
    else:
        lines.append(f"Split: {split['method']}")
    lines.append("TFRecords:")
    for name in ("train", "eval", "items"):
        lines.append(f"  {name:<6} {schema.output_pattern(out, name)}")
    if counts["rejected"] or items["rejected"]:
        lines.append(f"Dead letters: {schema.output_pattern(out, 'dead_letters')}")
    lines.append(f"Manifest: {schema.output_pattern(out, 'manifest')}")
    print("\n".join(lines))


def _cmd_embed_items(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from pipeline import embed_items, schema

    manifest = embed_items.run(config, extra)
    c = manifest["counts"]
    out = config.step_dir(embed_items.STEP)
    print(
        f"Items: {c['items']:,} (encoded {c['encoded']:,}, unchanged and reused {c['reused']:,}, "
        f"without text {c['without_text']:,}); {c['removed']:,} no longer in the catalog\n"
        f"Encoder: {manifest['text']['checkpoint']} ({manifest['text']['pooling']} pooling, "
        f"max_length {manifest['text']['max_length']}) in {manifest['timings']['seconds']:.1f} s\n"
        f"Embeddings: {schema.output_pattern(out, 'item_embeddings')}"
    )


def _cmd_train(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from models import train

    manifest = train.train(config)
    history = manifest["history"]
    lines = [f"Trained {manifest['epochs_run']} epoch(s) in {manifest['timings']['seconds']:.0f} s"]
    for key in ("loss", "val_loss", "rmse", "val_rmse"):
        if history.get(key):
            lines.append(f"  {key:<9} {history[key][-1]:.4f}")
    lines.append(f"Weights: {config.step_dir(train.STEP)}/trained/")
    print("\n".join(lines))


def _cmd_evaluate(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from models import evaluate

    out = evaluate.evaluate(config)
    systems = {"model": out, **out["baselines"]}
    keys = ("recall@10", "recall@50", "ndcg@10", "mrr", "cold_start_recall@50", "coverage@10")
    lines = [f"{'':<22}" + "".join(f"{name:>14}" for name in systems)]
    for key in keys:
        lines.append(f"{key:<22}" + "".join(f"{s[key]:>14.4f}" for s in systems.values()))
    lines.append(f"{'rmse':<22}{out['rmse']:>14.4f}")
    folder = config.step_dir(evaluate.STEP)
    lines.append(f"Report: {folder}/report.md (metrics.json, metrics_by_k.png, compare.png)")
    print("\n".join(lines))


_Handler = Callable[[Config, argparse.Namespace, list[str]], None]


# name, handler, one-line help, description
_STEPS: list[tuple[str, _Handler, str, str]] = [
    (
        "sample-data",
        _cmd_sample_data,
        "write the embedded synthetic marketplace data set",
        "Writes a deterministic synthetic marketplace (events + items with text) to --out, by "
        "default the config's data.path.",
    ),
    (
        "preprocess",
        _cmd_preprocess,
        "validate, join, split and write TFRecords with Apache Beam",
        "Runs the Beam preprocessing job: parses and validates events and items (bad records go "
        "to dead letters), builds histories, splits, writes TFRecords, vocabularies, statistics "
        "and manifest.json under work_dir/preprocess. Unknown flags go to Beam, e.g. --runner "
        "DataflowRunner --project P --temp_location gs://... --setup_file ./setup.py.",
    ),
    (
        "embed-items",
        _cmd_embed_items,
        "encode item text with BERT (Beam RunInference), incrementally",
        "Encodes every catalog item's text with the configured BERT checkpoint in a Beam "
        "RunInference job and writes item id → embedding under work_dir/embeddings. Items whose "
        "text is unchanged since the last run with the same encoder are not encoded again; items "
        "without text get no vector (has_text = 0). Unknown flags go to Beam.",
    ),
    (
        "train",
        _cmd_train,
        "train the TFRS retrieval + ranking model",
        "Trains the two-tower retrieval and DCN ranking model on the preprocess TFRecords (and "
        "the item embeddings when model.use_text is on). Backs up every epoch and resumes an "
        "interrupted run; stops early on the eval loss; TensorBoard logs go to "
        "work_dir/model/tensorboard.",
    ),
    (
        "evaluate",
        _cmd_evaluate,
        "full-catalog metrics of the trained model against baselines",
        "Ranks every eval event's true item over the whole catalog with the trained model, a "
        "most-popular baseline and an item co-occurrence baseline; writes metrics.json, "
        "report.md and plots under work_dir/evaluation.",
    ),
]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="Two-stage TFRS recommender pipeline: logs and item text to TF Serving.",
    )
    sub = parser.add_subparsers(dest="command", metavar="STEP", required=True)
    steps = {}
    for name, handler, summary, description in _STEPS:
        step = sub.add_parser(name, help=summary, description=description)
        _add_common(step)
        step.set_defaults(handler=handler)
        steps[name] = step
    steps["sample-data"].add_argument(
        "--out", metavar="DIR", help="output folder (default: data.path)"
    )
    steps["sample-data"].add_argument(
        "--format", choices=("jsonl", "csv", "parquet"), help="file format"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `recsys` console script; returns the exit status."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if extra and args.command not in _BEAM_STEPS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        config = load_config(args.config, args.overrides)
        args.handler(config, args, extra)
    except KeyboardInterrupt:
        print(f"recsys {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every failure becomes one line; --debug shows the rest
        if args.debug:
            traceback.print_exc()
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kind = "" if isinstance(e, RecsysError) else f"{type(e).__name__}: "
        print(f"recsys {args.command}: error: {kind}{reason}", file=sys.stderr)
        return 2 if isinstance(e, RecsysError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
