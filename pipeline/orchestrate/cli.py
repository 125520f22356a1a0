"""The `recsys` command line: one subcommand per pipeline step.

Every step takes `--config FILE` and repeated `--set key.path=value` overrides, prints progress on
stderr and a summary on stdout, and exits non-zero with a one-line reason on failure (`--debug`
shows the traceback). Flags the step does not know are handed to Beam (`--runner`, `--project`,
`--temp_location`, `--setup_file`, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

from models.compare import best_baseline
from pipeline.core import schema
from pipeline.core.cluster import is_chief
from pipeline.core.config import Config, load_config
from pipeline.core.errors import ConfigError, NoSpaceLeft, RecsysError
from pipeline.core.lock import work_dir_lock
from pipeline.core.progress import ProgressBar, say
from pipeline.core.staging import sweep_staging
from pipeline.core.steps import STEPS
from pipeline.orchestrate.parser import Handler, build_parser, split_list
from pipeline.orchestrate.status import status_report
from pipeline.sample_data import generate, write_sample_data
from serving.gate import GateFailed

# Deliberately lazy: each step's handler imports the layer that runs it (`pipeline.preprocess`
# and `pipeline.embed` load Beam; `models`, `serving.export|push|recommend` and
# `pipeline.orchestrate.run` load TensorFlow), so `recsys --help`, `recsys status` and a bad
# config answer in a fraction of a second instead of after TensorFlow's start-up. What is
# imported above loads neither.

__all__ = ["main"]

_BEAM_STEPS = {"preprocess", "embed-items"}
# Steps that write under work_dir take its lock (`recsys run` takes it once for all of them).
_WRITERS = {*STEPS, "rollback"}


def _cmd_sample_data(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
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
    from pipeline.preprocess import preprocess

    manifest = preprocess.run(config, extra)
    out = config.step_dir("preprocess")
    counts, items = manifest["counts"], manifest["item_counts"]
    lines = [
        f"Events: read {counts['read']:,}, kept {counts['kept']:,} "
        f"(train {counts['train']:,}, validation {counts.get('validation', 0):,}, eval "
        f"{counts['eval']:,}), rejected {counts['rejected']:,}",
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
        validation = (
            f", validation from {split['validation_cutoff_iso']}"
            if split.get("validation_cutoff_iso")
            else ""
        )
        lines.append(f"Split: temporal, eval from {split['cutoff_iso']}{validation}")
    else:
        lines.append(f"Split: {split['method']}")
    lines.append("TFRecords:")
    for name in ("train", "validation", "eval", "items"):
        lines.append(f"  {name:<10} {schema.output_pattern(out, name)}")
    if counts["rejected"] or items["rejected"]:
        lines.append(f"Dead letters: {schema.output_pattern(out, 'dead_letters')}")
    lines.append(f"Manifest: {schema.output_pattern(out, 'manifest')}")
    print("\n".join(lines))


def _cmd_embed_items(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from pipeline.embed import embed_items

    manifest = embed_items.run(config, extra)
    if manifest.get("skipped"):
        print(f"Skipped, nothing encoded: {manifest['reason']}")
        return
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
    if args.diversity_sweep:
        _diversity_sweep(config)
        return
    from models import evaluate

    out = evaluate.evaluate(config)
    systems = {"model": out, **out["baselines"]}
    keys = (
        "recall@10",
        "recall@50",
        "ndcg@10",
        "user_recall@50",
        "user_ndcg@10",
        "mrr",
        "cold_start_recall@50",
        "coverage@10",
    )
    lines = [f"{'':<22}" + "".join(f"{name:>14}" for name in systems)]
    for key in keys:
        lines.append(f"{key:<22}" + "".join(f"{s[key]:>14.4f}" for s in systems.values()))
    lines.append(f"{'rmse':<22}{out['rmse']:>14.4f}")
    for key in ("recall@50", "ndcg@10"):
        best = best_baseline(out, key)
        if best and best[1]:
            name, value = best
            lines.append(f"{key}: model / best baseline ({name}) = {out[key] / value:.2f}×")
    for name, reason in out["baselines_skipped"].items():
        lines.append(f"baseline {name} not run: {reason}")
    folder = evaluate.output_dir(config)
    lines.append(f"Report: {folder}/report.md (metrics.json, metrics_by_k.png, compare.png)")
    print("\n".join(lines))


def _diversity_sweep(config: Config) -> None:
    from models.diversity import diversity_sweep
    from models.evaluate import output_dir

    out = diversity_sweep(config)
    lines = [f"{'λ':>6}{'ndcg@10':>10}{'recall@10':>11}{'ild@10':>9}{'category_ild@10':>17}"]
    for p in out["points"]:
        lines.append(
            f"{p['lambda']:>6.2f}{p['ndcg@10']:>10.4f}{p['recall@10']:>11.4f}"
            f"{p['ild@10']:>9.4f}{p['category_ild@10']:>17.4f}"
        )
    rand = out["random_lists"]
    lines.append(
        f"{'random':>6}{'':>10}{'':>11}{rand['ild@10']:>9.4f}{rand['category_ild@10']:>17.4f}"
        "  (seeded random 10-item lists: diversity without relevance)"
    )
    best = out["summary"]
    lines.append(
        f"At λ = {best['lambda']:g} NDCG@10 changes {best['ndcg_change']:+.1%} (allowed: "
        f"-{best['max_ndcg_loss']:.0%}) and ILD@10 {best['ild_gain']:+.1%} against λ = 1."
    )
    folder = output_dir(config)
    lines.append(f"Frontier: {folder}/diversity_frontier.png (diversity_sweep.json)")
    print("\n".join(lines))


def _cmd_export(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from serving.export import export

    manifest = export(config)
    s = config.serving
    base = s.export_path(config.work_dir)
    print(
        f"Exported {s.model_name!r} version {manifest['version']} "
        f"({manifest['catalog_items']:,} items) to {base}/{s.model_name}/{manifest['version']}\n"
        "Next: `recsys push` (validation gate, then into serving.model_base)"
    )


def _gate_report(check: Callable[[Config], dict]) -> Callable[[Config], dict]:
    """Runs a gated step; a failed gate prints every check with its values first (the error
    line follows on stderr)."""

    def gated(config: Config) -> dict:
        try:
            return check(config)
        except GateFailed as e:
            print(e.result.report())
            raise

    return gated


def _cmd_validate(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from serving.push import blessing_path, validate

    blessing = _gate_report(validate)(config)
    print(f"{blessing['report']}\nBlessed {blessing['candidate']}: {blessing_path(config)}")


def _cmd_push(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from serving.push import push, push_blessed

    done = (push_blessed if args.blessed else _gate_report(push))(config)
    s = config.serving
    base = s.base_path(config.work_dir)
    what = (
        f"Pushed {done['from']} as version {done['version']}: {done['pushed']}"
        if done["new_version"]
        else f"{done['from']} is already served as version {done['version']}"
    )
    print(
        f"{done['gate']}\n{what}\nServed versions: {done['served_versions']}\n"
        f"Serve it: cd {base} && docker compose up   (gRPC :{s.grpc_port}, REST :{s.rest_port})"
    )


def _cmd_rollback(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from serving.push import rollback_served

    old, now = rollback_served(config)
    print(f"Rolled back version {old}; version {now} is served again")


def _cmd_recommend(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from serving.recommend import (
        connect,
        format_recommendations,
        item_titles,
        outside_catalog,
        recommend,
    )

    history = split_list(args.history)
    if args.diversity is not None and not 0.0 <= args.diversity <= 1.0:
        raise ConfigError(f"--diversity must be in [0, 1] (got {args.diversity})")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be a positive number of seconds (got {args.timeout})")
    texts = [("--user", args.user), ("--query", args.query), *(("--history", h) for h in history)]
    for flag, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise ConfigError(f"{flag} must be UTF-8 text (got {text!r})") from None
    lam = None if args.diversity is None else 1.0 - args.diversity
    backend = connect(config, args.server, args.timeout)
    results = recommend(
        backend, config, args.user, history, args.query, args.k, lam, not args.include_seen
    )
    titles = item_titles(config)
    unknown = outside_catalog(backend, history, titles)
    if unknown:  # the model reads them as unknown items; they explain nothing
        print(f"not in the catalog: {', '.join(unknown)}", file=sys.stderr)
    where = args.server or getattr(backend, "path", "")
    print(f"Recommendations for user {args.user!r} from {where}:")
    print(format_recommendations(results, titles))


def _cmd_run(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    from pipeline.orchestrate.run import run

    started = time.time()
    steps = split_list(args.steps) or None

    def execute(name: str) -> None:
        # push takes validate's verdict: the gate ran in its own step
        argv = [name, "--blessed"] if name == "push" else [name]
        step_args, _ = _build_parser().parse_known_args(argv)
        step_args.handler(config, step_args, extra if name in _BEAM_STEPS else [])

    records = run(config, execute, steps, args.force)
    ran = sum(r["status"] == "succeeded" for r in records)
    print(
        f"\nrecsys run: {ran} step(s) run, {len(records) - ran} skipped, in "
        f"{_duration(time.time() - started)}"
    )
    print(status_report(config, args.config))


def _cmd_status(config: Config, args: argparse.Namespace, extra: list[str]) -> None:
    print(status_report(config, args.config))


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


_HANDLERS: dict[str, Handler] = {
    "sample-data": _cmd_sample_data,
    "preprocess": _cmd_preprocess,
    "embed-items": _cmd_embed_items,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "export": _cmd_export,
    "validate": _cmd_validate,
    "push": _cmd_push,
    "rollback": _cmd_rollback,
    "run": _cmd_run,
    "status": _cmd_status,
    "recommend": _cmd_recommend,
}


def _build_parser() -> argparse.ArgumentParser:
    return build_parser(_HANDLERS)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `recsys` console script; returns the exit status."""
    if threading.current_thread() is threading.main_thread():
        # A process a non-interactive shell starts in the background inherits SIGINT ignored;
        # a scheduler stops a step with SIGINT first (the step is recorded as failed and its
        # lock released), so recsys always takes it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if extra and args.command not in _BEAM_STEPS | {"run"}:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    config = None
    try:
        config = load_config(args.config, args.overrides)
        if args.command in _WRITERS and _takes_lock(args.command, config):
            with work_dir_lock(config.work_dir):
                sweep_staging(config)
                args.handler(config, args, extra)
        else:
            args.handler(config, args, extra)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            print(f"recsys {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every failure becomes one line; --debug shows the rest
        if args.debug:
            traceback.print_exc()
        if isinstance(e, OSError) and e.errno == errno.ENOSPC and (e.filename or config):
            e = NoSpaceLeft.on(e.filename or config.work_dir)  # the disk, not a bug
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kind = "" if isinstance(e, RecsysError) else f"{type(e).__name__}: "
        with contextlib.suppress(OSError):  # a stderr on the full disk: the status still tells
            print(f"recsys {args.command}: error: {kind}{reason}", file=sys.stderr)
        return _exit_status(e)
    return 0


def _takes_lock(command: str, config: Config) -> bool:
    """Whether a writing step takes the work directory's lock (and sweeps the staging folders
    of killed runs): all do but `recsys train` on a worker of a multi-worker run that is not
    the chief. The chief writes every file the workers share (`models.distributed`) and holds
    the lock for the run; the others write only into folders of their own and cannot outlive
    it (every training step needs all of them). Their lock would refuse a second worker on the
    chief's machine, and their sweep would delete the chief's staging folder as it publishes.
    """
    if command != "train" or config.train.strategy != "multi_worker":
        return True
    return is_chief(os.environ.get("TF_CONFIG"))


def _exit_status(e: Exception) -> int:
    """3: the validation gate blocked the model (schedulers fail the run without retrying);
    2: another error the user can act on; 1: a bug."""
    if isinstance(e, GateFailed):
        return 3
    return 2 if isinstance(e, RecsysError) else 1


if __name__ == "__main__":
    sys.exit(main())
