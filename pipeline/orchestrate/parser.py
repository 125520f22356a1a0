"""The `recsys` command line's grammar: every step's help text and flags.

`cli` holds what each step does (its handler) and `main`; this module only describes the
arguments, so the help of every step reads in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from pipeline.core.config import Config

__all__ = ["STEP_HELP", "Handler", "build_parser", "split_list"]


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


Handler = Callable[[Config, argparse.Namespace, list[str]], None]
"""What a step does: `handler(config, args, beam_args)`."""

# name, one-line help, description; in the order `recsys --help` lists them
STEP_HELP: tuple[tuple[str, str, str], ...] = (
    (
        "sample-data",
        "write the embedded synthetic marketplace data set",
        "Writes a deterministic synthetic marketplace (events + items with text) to --out, by "
        "default the config's data.path.",
    ),
    (
        "preprocess",
        "validate, join, split and write TFRecords with Apache Beam",
        "Runs the Beam preprocessing job: parses and validates events and items (bad records go "
        "to dead letters), builds histories, splits, writes TFRecords, vocabularies, statistics "
        "and manifest.json under work_dir/preprocess. Unknown flags go to Beam, e.g. --runner "
        "DataflowRunner --project P --temp_location gs://... --setup_file ./setup.py.",
    ),
    (
        "embed-items",
        "encode item text with BERT (Beam RunInference), incrementally",
        "Encodes every catalog item's text with the configured BERT checkpoint in a Beam "
        "RunInference job and writes item id → embedding under work_dir/embeddings. Items whose "
        "text is unchanged since the last run with the same encoder are not encoded again; items "
        "without text get no vector (has_text = 0). Unknown flags go to Beam.",
    ),
    (
        "train",
        "train the TFRS retrieval + ranking model",
        "Trains the two-tower retrieval and DCN ranking model on the preprocess TFRecords (and "
        "the item embeddings when model.use_text is on). Backs up every epoch and resumes an "
        "interrupted run; stops early on the eval loss; TensorBoard logs go to "
        "work_dir/model/tensorboard.",
    ),
    (
        "evaluate",
        "full-catalog metrics of the trained model against baselines",
        "Ranks every eval event's true item over the whole catalog with the trained model, a "
        "most-popular baseline and an item co-occurrence baseline; writes metrics.json, "
        "report.md and plots under work_dir/evaluation. With --diversity-sweep, instead runs "
        "the exported model's MMR over a grid of λ on the eval events and writes the NDCG@10 "
        "against ILD@10 frontier (table and PNG).",
    ),
    (
        "export",
        "export the model as the next TF Serving version, with deployment files",
        "Writes the trained model, the catalog index and the MMR reranker as one SavedModel "
        "version under serving.export_base/serving.model_name/N (built beside, replayed with "
        "its warmup requests, then renamed into place), plus models.config, batching.config, "
        "monitoring.config and docker-compose.yml in serving.export_base.",
    ),
    (
        "validate",
        "run the validation gate on the newest export",
        "Checks the newest export's evaluation metrics against gate.min_metrics and, against "
        "the served version's, gate.max_regression, and writes the verdict to "
        "work_dir/validation/blessing.json. A failing gate exits 3 with the report of which "
        "metric failed and by how much.",
    ),
    (
        "push",
        "gate the newest export and push it to the served model base",
        "Runs the validation gate (or, with --blessed, takes the last `recsys validate` "
        "verdict); when every check passes, copies the newest export into serving.model_base "
        "as the next version (atomically, keeping serving.keep_versions) and writes the "
        "deployment files there. A failing gate pushes nothing and exits 3 with the report.",
    ),
    (
        "rollback",
        "serve the previously pushed version again",
        "Moves the newest served version aside (into .rolled-back/), so TF Serving serves the "
        "previous one again.",
    ),
    (
        "run",
        "run the pipeline: every step whose inputs, config or code changed",
        "Runs sample-data (when run.sample_data is on), preprocess, embed-items, train, "
        "evaluate, export, validate and push in order, each recording its status in "
        "work_dir/runs/. A step whose inputs, config and code are unchanged since its last "
        "success is skipped, so a failed run resumes at the failed step. One run per work_dir "
        "at a time. Exits 3 when the validation gate blocks the model.",
    ),
    (
        "status",
        "what the last run did, what is served, and how to serve it",
        "Prints each step's last status and time, the newest export, the served versions, "
        "the evaluation report and the command that serves the model with TF Serving.",
    ),
    (
        "recommend",
        "recommend for a user (in-process on the export, or against a server)",
        "Asks the newest export (or a TF Serving server with --server) for recommendations and "
        "prints their titles, each with the history item that explains it.",
    ),
)


def _add_list(parser: argparse.ArgumentParser, flag: str, what: str) -> None:
    """A comma-separated list flag that may be repeated; read it with `_split_list`."""
    parser.add_argument(
        flag, action="append", default=[], help=f"{what} (comma-separated, repeatable)"
    )


def split_list(values: list[str]) -> list[str]:
    """The values of a list flag (`_add_list`), each comma-separated part apart."""
    return [v for part in values for v in part.split(",") if v]


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The `recsys` parser; each step's parsed arguments carry its handler (`args.handler`).

    Raises:
      ValueError: when `handlers` does not name exactly the steps of `STEP_HELP`.
    """
    names = [name for name, _, _ in STEP_HELP]
    if sorted(handlers) != sorted(names):
        raise ValueError(f"handlers for {sorted(handlers)}, but the steps are {sorted(names)}")
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="Two-stage TFRS recommender pipeline: logs and item text to TF Serving.",
    )
    sub = parser.add_subparsers(dest="command", metavar="STEP", required=True)
    steps = {}
    for name, summary, description in STEP_HELP:
        step = sub.add_parser(name, help=summary, description=description)
        _add_common(step)
        step.set_defaults(handler=handlers[name])
        steps[name] = step
    steps["sample-data"].add_argument(
        "--out", metavar="DIR", help="output folder (default: data.path)"
    )
    steps["sample-data"].add_argument(
        "--format", choices=("jsonl", "csv", "parquet"), help="file format"
    )
    steps["evaluate"].add_argument(
        "--diversity-sweep",
        action="store_true",
        help="NDCG@10 against ILD@10 over MMR's λ through the exported model",
    )
    steps["push"].add_argument(
        "--blessed",
        action="store_true",
        help="push what the last `recsys validate` blessed instead of running the gate again",
    )
    run = steps["run"]
    _add_list(run, "--steps", "only these steps, e.g. --steps train,evaluate")
    run.add_argument("--force", action="store_true", help="run the steps even if unchanged")
    rec = steps["recommend"]
    rec.add_argument("--user", required=True, help="user id (unknown users are fine)")
    _add_list(rec, "--history", "recent item ids, oldest first")
    rec.add_argument("--query", default="", help="free-text query")
    rec.add_argument("--k", type=int, help="number of items (default: serving.default_k)")
    rec.add_argument(
        "--diversity",
        type=float,
        help="0 = pure relevance order … 1 = most diverse (MMR λ = 1 − diversity; "
        "default: 1 − serving.default_lambda)",
    )
    rec.add_argument("--include-seen", action="store_true", help="allow items of the history")
    rec.add_argument(
        "--server",
        metavar="URL",
        help="TF Serving: http://host:8501 (REST) or host:8500 (gRPC); default: the newest "
        "export, in this process",
    )
    rec.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds the whole call to --server may take, reply included (default: 10)",
    )
    return parser
