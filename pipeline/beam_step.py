"""What every Beam step shares: options from config and flags, small single-file outputs, and
running the job into a staging folder that is published only when the step succeeded."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle

from pipeline.config import Config
from pipeline.manifest import publish_dir
from pipeline.progress import Heartbeat, say, stderr_to_log
from pipeline.staging import staging_dir

# Subfolder of a step's output for the job's own counts and statistics; `run_step` deletes it
# once `finish` has read it.
SUMMARY = "_summary"

# Names under which `--runner` selects Beam's DirectRunner.
_DIRECT_RUNNERS = {"direct", "directrunner", "switchingdirectrunner"}

__all__ = [
    "SUMMARY",
    "count_lines",
    "new_pipeline",
    "pipeline_options",
    "run_step",
    "write_json",
    "write_lines",
]


def pipeline_options(
    config: Config,
    beam_args: list[str] | None = None,
    direct_num_workers: int | None = None,
    direct_running_mode: str | None = None,
) -> PipelineOptions:
    """Beam options from the config's `beam` section, then its `options`, then command-line flags
    (later flags win, so `--runner DataflowRunner ...` on the command line takes over).

    Args:
      config: The configuration.
      beam_args: Flags from the command line.
      direct_num_workers: Overrides `beam.direct_num_workers` for this step.
      direct_running_mode: Overrides `beam.direct_running_mode` for this step.
    """
    b = config.beam
    flags = [f"--runner={b.runner}"]
    if b.runner in ("DirectRunner", "direct"):
        workers = direct_num_workers or b.direct_num_workers or os.cpu_count() or 1
        flags += [
            f"--direct_num_workers={workers}",
            f"--direct_running_mode={direct_running_mode or b.direct_running_mode}",
            "--default_sdk_harness_log_level=WARNING",
        ]
    flags += list(b.options) + list(beam_args or [])
    return PipelineOptions(flags)


def new_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on the runner that `options` names, where the DirectRunner means its FnApiRunner.

    Beam's DirectRunner first tries Prism, a job server it downloads from GitHub as a binary at
    run time and starts as a subprocess. Offline the download fails and, after the attempt, the
    job runs on the FnApiRunner; online the job would run on Prism, which ignores
    `direct_num_workers` and `direct_running_mode`. So a DirectRunner job goes straight to the
    FnApiRunner, built as the DirectRunner builds it (the job's options reach its workers): a run
    downloads nothing and runs alike with and without a network. `--runner PrismRunner` still
    selects Prism; any other runner is left to Beam.
    """
    runner = str(options.get_all_options().get("runner") or "DirectRunner")
    if runner.lower() not in _DIRECT_RUNNERS:
        return beam.Pipeline(options=options)
    provision = beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=JobServiceHandle.encode_pipeline_options(options.get_all_options())
    )
    fn_api = fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(provision))
    return beam.Pipeline(runner=fn_api, options=options)


def write_lines(pcoll, path: str, label: str):
    """Writes a PCollection holding one list of lines as one file, in order."""
    return (
        pcoll
        | f"{label}Join" >> beam.Map(lambda lines: "\n".join(lines))
        | f"{label}NonEmpty" >> beam.Filter(bool)
        | f"{label}Write" >> beam.io.WriteToText(path, num_shards=1, shard_name_template="")
    )


def write_json(pcoll, path: str, label: str):
    """Writes a PCollection holding one JSON-serializable value as one file."""
    return (
        pcoll
        | f"{label}Json" >> beam.Map(lambda value: json.dumps(value, sort_keys=True))
        | f"{label}Write" >> beam.io.WriteToText(path, num_shards=1, shard_name_template="")
    )


def count_lines(path: str) -> int:
    """Non-empty lines of a (possibly remote) text file; 0 when it does not exist."""
    if not FileSystems.exists(path):
        return 0
    with FileSystems.open(path) as f:
        return sum(1 for line in f if line.strip())


def run_step(
    config: Config,
    step: str,
    options: PipelineOptions,
    build: Callable[[beam.Pipeline, str], None],
    finish: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """Builds and runs a Beam job for `step`, then publishes its folder.

    Locally the job writes into a sibling staging folder that replaces `<work_dir>/<step>` only
    after `finish` (which checks the results and writes the manifest) succeeded, so readers never
    see a half-written folder and a failed run leaves the previous result in place. On object
    stores the folder is written in place and its manifest, written last, marks it complete.

    Args:
      config: The configuration.
      step: The step's folder name under `work_dir`.
      options: Beam pipeline options.
      build: Adds the job to a pipeline, writing under the given folder.
      finish: Reads the job's outputs in the given folder and returns the manifest.
    """
    final_dir = config.step_dir(step)
    remote = "://" in final_dir
    out_dir = final_dir if remote else staging_dir(final_dir)
    runner = options.get_all_options().get("runner")
    log_path = os.path.join(config.work_dir, "logs", f"{step}-{time.strftime('%Y%m%d-%H%M%S')}.log")
    say(f"{step}: Beam and worker logs go to {log_path}")
    try:
        with stderr_to_log(log_path), Heartbeat(f"{step}: Beam job on {runner}"):
            p = new_pipeline(options)
            build(p, out_dir)
            p.run().wait_until_finish()
        manifest = finish(out_dir)
        if not remote:
            shutil.rmtree(os.path.join(out_dir, SUMMARY), ignore_errors=True)
    except BaseException:
        say(f"{step}: failed; the full log is {log_path}")
        if not remote:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if not remote:
        publish_dir(out_dir, final_dir)
    return manifest
