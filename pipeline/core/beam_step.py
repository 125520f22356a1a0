"""What every Beam step shares: options from config and flags, small single-file outputs, and
running the job into a staging folder that is published only when the step succeeded."""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.transforms.environments import SubprocessSDKEnvironment

from pipeline.core.abort import abortable
from pipeline.core.beam_worker import kill_own_workers, worker_command
from pipeline.core.config import Config
from pipeline.core.errors import NoSpaceLeft, RecsysError
from pipeline.core.manifest import publish_dir
from pipeline.core.progress import Heartbeat, say
from pipeline.core.staging import staging_dir
from pipeline.core.step_log import stderr_to_log

# Subfolder of a step's output for the job's own counts and statistics; `run_step` deletes it
# once `finish` has read it.
SUMMARY = "_summary"

# Names under which `--runner` selects Beam's DirectRunner.
_DIRECT_RUNNERS = {"direct", "directrunner", "switchingdirectrunner"}
# What Beam appends to the message of an exception raised in a step, and the last line of a
# worker's traceback (`module.Type: message`).
_STEP_NOTE = re.compile(r"( \[while running '[^']*'\])+$")
_EXCEPTION_LINE = re.compile(r"(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)", re.DOTALL)
# An OSError's message: `[Errno 28] No space left on device`, perhaps with the step note.
_ERRNO = re.compile(r"\[Errno (?P<errno>\d+)\] (?P<strerror>.*)", re.DOTALL)

__all__ = [
    "SUMMARY",
    "count_lines",
    "failed_dir",
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


class _FnApiRunner(fn_runner.FnApiRunner):
    """Beam's FnApiRunner whose `multi_processing` workers run `worker_command` (they die with
    this process; `pipeline/core/beam_worker.py`) instead of Beam's `sdk_worker_main` directly.

    `run_pipeline` makes the subprocess environment from the job's options just before it
    builds the job's graph, so the command is swapped in that graph, where Beam hands it over.
    """

    def __init__(self, worker_command: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._worker_command = worker_command

    def run_via_runner_api(self, pipeline_proto, options):
        beam_env = self._default_environment
        if isinstance(beam_env, SubprocessSDKEnvironment):
            for env in pipeline_proto.components.environments.values():
                if env.urn == python_urns.SUBPROCESS_SDK and env.payload.decode() == (
                    beam_env.command_string
                ):
                    env.payload = self._worker_command.encode()
        return super().run_via_runner_api(pipeline_proto, options)


def new_pipeline(options: PipelineOptions, work_dir: str = ".") -> beam.Pipeline:
    """A pipeline on the runner that `options` names, where the DirectRunner means its FnApiRunner.

    Beam's DirectRunner first tries Prism, a job server it downloads from GitHub as a binary at
    run time and starts as a subprocess. Offline the download fails and, after the attempt, the
    job runs on the FnApiRunner; online the job would run on Prism, which ignores
    `direct_num_workers` and `direct_running_mode`. So a DirectRunner job goes straight to the
    FnApiRunner, built as the DirectRunner builds it (the job's options reach its workers): a run
    downloads nothing and runs alike with and without a network. `--runner PrismRunner` still
    selects Prism; any other runner is left to Beam.

    `multi_processing` workers start as `pipeline.core.beam_worker` for `work_dir`: they die with
    this process, and a later run's sweep finds any that did not.
    """
    runner = str(options.get_all_options().get("runner") or "DirectRunner")
    if runner.lower() not in _DIRECT_RUNNERS:
        return beam.Pipeline(options=options)
    provision = beam_provision_api_pb2.ProvisionInfo(
        pipeline_options=JobServiceHandle.encode_pipeline_options(options.get_all_options())
    )
    fn_api = _FnApiRunner(
        worker_command(work_dir), provision_info=fn_runner.ExtendedProvisionInfo(provision)
    )
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


def failed_dir(config: Config, step: str) -> str:
    """Where a failed run of `step` keeps the outputs that `run_step` was told to keep: locally
    `<work_dir>/<step>-failed` (its staging folder is deleted; the next failed run replaces this
    folder and the next successful one removes it); on object stores the step's own folder,
    which the job writes in place and a failed run leaves as it is."""
    final_dir = config.step_dir(step)
    return final_dir if "://" in final_dir else f"{final_dir}-failed"


def run_step(
    config: Config,
    step: str,
    options: PipelineOptions,
    build: Callable[[beam.Pipeline, str], None],
    finish: Callable[[str], dict[str, Any]],
    keep_on_failure: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Builds and runs a Beam job for `step`, then publishes its folder.

    Locally the job writes into a sibling staging folder that replaces `<work_dir>/<step>` only
    after `finish` (which checks the results and writes the manifest) succeeded, so readers never
    see a half-written folder and a failed run leaves the previous result in place. On object
    stores the folder is written in place and its manifest, written last, marks it complete.

    An error raised in a Beam worker reaches the caller as the worker raised it, with its one-line
    message (see `_job_error`), not as Beam's RuntimeError holding the worker's traceback.

    A full disk ends the step at once with `NoSpaceLeft`, naming the file (or, for a worker's
    write, the step's folder): also when it is the log that cannot be written
    (`step_log.StepLog`), which aborts the job (`abort.abortable`) rather than let it run on.

    Args:
      config: The configuration.
      step: The step's folder name under `work_dir`.
      options: Beam pipeline options.
      build: Adds the job to a pipeline, writing under the given folder.
      finish: Reads the job's outputs in the given folder and returns the manifest.
      keep_on_failure: Glob patterns, relative to the step's folder, of outputs that explain a
        failure (dead letters); when the step fails they are moved to `failed_dir`.
    """
    final_dir = config.step_dir(step)
    remote = "://" in final_dir
    out_dir = final_dir if remote else staging_dir(final_dir)
    runner = options.get_all_options().get("runner")
    log_path = os.path.join(config.work_dir, "logs", f"{step}-{time.strftime('%Y%m%d-%H%M%S')}.log")
    say(f"{step}: Beam and worker logs go to {log_path}")
    try:
        # The log outlives the abortable block: no abort interrupts the restoring of stderr.
        with (
            stderr_to_log(log_path) as log,
            abortable(lambda: kill_own_workers(config.work_dir)) as abort,
            Heartbeat(f"{step}: Beam job on {runner}"),
        ):
            log.notify(lambda e: abort(_write_error(e, log_path)))
            p = new_pipeline(options, config.work_dir)
            build(p, out_dir)
            try:
                p.run().wait_until_finish()
            except Exception as e:
                error = _job_error(e)
                if error is None:
                    raise
                raise error from e
        if log.error is not None:  # a write at the end, as the log was closed
            raise _write_error(log.error, log_path) from log.error
        manifest = finish(out_dir)
        if not remote:
            shutil.rmtree(os.path.join(out_dir, SUMMARY), ignore_errors=True)
    except BaseException as e:
        say(f"{step}: failed; the full log is {log_path}")
        if not remote:
            if keep_on_failure:
                _keep(out_dir, failed_dir(config, step), keep_on_failure, step)
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            # A worker's error names no file: the folder the job writes is on that disk.
            raise NoSpaceLeft.on(e.filename or final_dir) from e
        raise
    if not remote:
        publish_dir(out_dir, final_dir)
        if keep_on_failure:
            shutil.rmtree(failed_dir(config, step), ignore_errors=True)
    return manifest


def _write_error(e: OSError, path: str) -> RecsysError:
    """The error a step ends with when it cannot write `path`."""
    if e.errno == errno.ENOSPC:
        return NoSpaceLeft.on(path)
    return RecsysError(f"cannot write {path}: {e.strerror or e}")


def _keep(out_dir: str, kept_dir: str, patterns: tuple[str, ...], step: str) -> None:
    """Moves a failed run's non-empty outputs matching `patterns` from its staging folder to
    `kept_dir`, replacing what an earlier failed run kept there (it explains another failure)."""
    kept = []
    try:
        shutil.rmtree(kept_dir, ignore_errors=True)
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(out_dir, pattern))):
                if not os.path.getsize(path):
                    continue  # an empty file explains nothing
                target = os.path.join(kept_dir, os.path.relpath(path, out_dir))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(path, target)
                kept.append(target)
    except OSError as e:  # the step's own error matters more than this one
        say(f"{step}: could not keep the failed run's outputs in {kept_dir}: {e}")
        return
    if kept:
        say(f"{step}: kept for inspection: {', '.join(kept)}")


def _job_error(e: Exception) -> Exception | None:
    """The exception a Beam job failed with, as its worker raised it; None when `e` is that.

    Workers in this process re-raise the worker's exception with `[while running '<step>']`
    appended; worker processes end the job with a RuntimeError whose message is the worker's whole
    traceback, whose first line (all the CLI prints) is `Traceback (most recent call last):`. The
    last line of that traceback names the exception's type and message: the type is rebuilt when
    this process knows it (built-ins, the project's errors), else named in a RuntimeError. Errors
    for the user (`RecsysError`) lose the step note, which would only hide their message's end.

    An exception that Beam cannot rebuild with the note appended, as an OSError (its first
    argument is the errno), comes as a RuntimeError naming it, `OSError: [Errno 28] ...`, in this
    process or a worker's: it is rebuilt too, an OSError with its errno, so that the step can
    tell a full disk (ENOSPC) from other errors.
    """
    text = str(e).strip()
    if isinstance(e, RecsysError):
        name, message = f"{type(e).__module__}.{type(e).__qualname__}", text
    elif isinstance(e, RuntimeError) and text.startswith("Traceback (most recent call last)"):
        found = (_EXCEPTION_LINE.fullmatch(line) for line in reversed(text.splitlines()))
        match = next((m for m in found if m), None)
        if match is None:
            return None
        name, message = match["type"], match["message"]
    elif isinstance(e, RuntimeError) and _named_exception(text):
        name, message = "RuntimeError", text
    else:
        return None
    named = _named_exception(message) if name == "RuntimeError" else None
    if named:
        name, message = named["type"], named["message"]
    cls = _exception_type(name)
    if cls is not None:
        if issubclass(cls, RecsysError):
            message = _STEP_NOTE.sub("", message)
        errno_match = _ERRNO.fullmatch(message) if issubclass(cls, OSError) else None
        try:
            if errno_match:
                return cls(int(errno_match["errno"]), errno_match["strerror"])
            return cls(message)
        except Exception:  # a type whose constructor wants more than a message
            if issubclass(cls, RecsysError):
                return RecsysError(message)
    return RuntimeError(f"{name}: {message}")


def _exception_type(name: str) -> type[Exception] | None:
    """The exception class `module.Type` (a built-in without a module) if this process has it."""
    module, _, class_name = name.rpartition(".")
    cls = getattr(sys.modules.get(module or "builtins"), class_name, None)
    return cls if isinstance(cls, type) and issubclass(cls, Exception) else None


def _named_exception(text: str) -> re.Match | None:
    """`Type: message` where this process knows the type: Beam's RuntimeError for an exception
    it could not rebuild."""
    match = _EXCEPTION_LINE.fullmatch(text)
    return match if match and _exception_type(match["type"]) else None
