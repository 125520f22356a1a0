"""`recsys run`: every step in order, each skipped when nothing it depends on has changed.

Each step keeps a record, `<work_dir>/runs/<step>.json`: its status (`running`, `succeeded`,
`skipped` or `failed`), the fingerprint of what it depends on, the files it left, timings, and
the error when it failed. The fingerprint is

* the content (SHA-256) of its input files: the raw data for preprocess, the manifests of the
  steps before it otherwise, which each step rewrites whenever it runs;
* the config sections it reads (`STEP_SPECS`), so changing `gate` does not retrain;
* the code: a hash of the `pipeline`, `models` and `serving` sources.

A step is skipped when its last record succeeded (or was skipped) with the same fingerprint and
its outputs are still as it left them. Anything else runs it: a new input, config or code, a
step that failed, or one whose process was killed (its record still says `running`). So a run
that failed resumes at the failed step, and training itself resumes from its last epoch backup.

Push is the exception to "outputs still there": `recsys rollback` moves the pushed version
aside on purpose, and the next run must not push the rolled-back model again. It is pushed
again only when a new model is exported (or with `--force`).

The whole run holds the work-directory lock (`pipeline/core/lock.py`): a second run on the same
work_dir is refused with the holder's name, and a crashed holder leaves no lock behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.core import schema
from pipeline.core.config import Config
from pipeline.core.errors import ConfigError, RecsysError
from pipeline.core.lock import work_dir_lock
from pipeline.core.manifest import (
    code_version,
    file_sha256,
    fingerprint_files,
    read_json,
    write_json_atomic,
)
from pipeline.core.progress import say
from pipeline.core.staging import sweep_staging
from pipeline.core.steps import STEPS, steps_for
from pipeline.core.timestamps import format_timestamp
from pipeline.core.version_dirs import latest_version
from pipeline.preprocess.inputs import plan_inputs
from serving.push import blessing_path, candidate_dir, served_dir

__all__ = ["RUNS_DIR", "STEP_SPECS", "StepSpec", "code_fingerprint", "record_path", "run"]

RUNS_DIR = "runs"
_PACKAGES = ("pipeline", "models", "serving")
_SOURCES = (".py", ".json")  # code, and the data it ships (the sample data's words.json)
_NOT_STEPS = {"airflow_dag.py"}  # scheduling code: editing it changes no step's output


def _data_files(config: Config) -> list[str]:
    plan = plan_inputs(config)
    return [*plan.event_files, *plan.item_files, *plan.side_files]


def _manifest(step_dir: str) -> Callable[[Config], list[str]]:
    return lambda config: [schema.output_pattern(config.step_dir(step_dir), "manifest")]


def _trained(config: Config) -> list[str]:
    return [os.path.join(config.step_dir("model"), "trained", "manifest.json")]


def _metrics(config: Config) -> list[str]:
    return [os.path.join(config.step_dir("evaluation"), "metrics.json")]


def _model_inputs(config: Config) -> list[str]:
    embeddings = _manifest("embeddings")(config) if config.model.use_text else []
    return [*_manifest("preprocess")(config), *embeddings]


def _export(config: Config) -> list[str]:
    return [os.path.join(candidate_dir(config), "manifest.json")]


def _blessing(config: Config) -> list[str]:
    return [blessing_path(config)]


def _served(config: Config) -> list[str]:
    current = latest_version(served_dir(config))
    return [os.path.join(current, "manifest.json")] if current else []


def _none(config: Config) -> list[str]:
    return []


@dataclass(frozen=True)
class StepSpec:
    """What a step depends on and what it leaves.

    Attributes:
      name: The CLI step.
      config_keys: Dotted config paths the step reads.
      inputs: The files whose content the step depends on.
      outputs: The files the step leaves; a skip needs them unchanged.
      check_outputs: Whether a skip needs the outputs still there (not for push; see above).
    """

    name: str
    config_keys: tuple[str, ...]
    inputs: Callable[[Config], list[str]]
    outputs: Callable[[Config], list[str]]
    check_outputs: bool = True


STEP_SPECS = {
    spec.name: spec
    for spec in (
        StepSpec("sample-data", ("sample_data", "data.path"), _none, _data_files),
        StepSpec("preprocess", ("data", "preprocess"), _data_files, _manifest("preprocess")),
        StepSpec(
            "embed-items",
            ("text", "model.use_text"),  # off, the step only records that it was skipped
            _manifest("preprocess"),
            _manifest("embeddings"),
        ),
        StepSpec("train", ("model", "train", "text"), _model_inputs, _trained),
        StepSpec(
            "evaluate",
            ("model", "text", "evaluate"),
            lambda c: [*_model_inputs(c), *_trained(c)],
            _metrics,
        ),
        StepSpec(
            "export",
            ("serving", "model", "text"),
            lambda c: [*_model_inputs(c), *_trained(c), *_metrics(c)],
            _export,
        ),
        StepSpec(
            "validate",
            ("gate", "serving.model_name", "serving.model_base", "serving.export_base"),
            _export,
            _blessing,
        ),
        StepSpec("push", ("serving",), _blessing, _served, check_outputs=False),
    )
}
assert tuple(STEP_SPECS) == STEPS, "every step needs a spec, in pipeline order"


def code_fingerprint() -> str:
    """The package version and a hash of every source and data file of the pipeline's packages
    (the scheduler's DAG file aside)."""
    # The folder that holds the packages: pipeline/orchestrate/run.py is three levels below it.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for folder, dirs, files in sorted(os.walk(os.path.join(root, package))):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(_SOURCES) and f not in _NOT_STEPS):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                digest.update(file_sha256(path).encode())
    return f"{code_version()}+{digest.hexdigest()[:16]}"


def _file_ids(paths: Iterable[str]) -> dict[str, Any] | None:
    """Path → content hash (size and time for objects in a remote store); None when a file
    is missing, so the step runs."""
    paths = list(paths)
    if not all("://" in p or os.path.exists(p) for p in paths):
        return None
    return {
        entry["path"]: entry.get("sha256") or [entry["size"], entry["mtime"]]
        for entry in fingerprint_files(paths)
    }


def _config_section(config: Config, key: str) -> Any:
    value: Any = config.to_dict()
    for part in key.split("."):
        value = value[part]
    if key == "data.path":
        value = config.data_path()
    return value


def _fingerprint(spec: StepSpec, config: Config, code: str) -> dict[str, Any]:
    try:
        inputs = _file_ids(spec.inputs(config))
    except (RecsysError, OSError):  # e.g. no export yet: the step runs and says so
        inputs = None
    sections = {key: _config_section(config, key) for key in spec.config_keys}
    blob = json.dumps(sections, sort_keys=True, default=str).encode()
    return {"inputs": inputs, "config": hashlib.sha256(blob).hexdigest(), "code": code}


def _outputs(spec: StepSpec, config: Config) -> dict[str, Any] | None:
    try:
        return _file_ids(spec.outputs(config))
    except (RecsysError, OSError):  # outputs that cannot be listed are not there
        return None


def record_path(config: Config, step: str) -> str:
    return os.path.join(config.work_dir, RUNS_DIR, f"{step}.json")


def _read_record(config: Config, step: str) -> dict[str, Any] | None:
    path = record_path(config, step)
    if not os.path.exists(path):
        return None
    try:
        return read_json(path)
    except ValueError:  # a record from an older layout or a damaged file: run the step
        return None


def _skip_reason(
    spec: StepSpec, config: Config, previous: dict[str, Any] | None, fingerprint: dict[str, Any]
) -> str | None:
    if previous is None or previous.get("status") not in ("succeeded", "skipped"):
        return None
    if fingerprint["inputs"] is None or previous.get("fingerprint") != fingerprint:
        return None
    if spec.check_outputs:
        outputs = _outputs(spec, config)
        if outputs is None or outputs != previous.get("outputs"):
            return None
    return f"inputs, config and code unchanged since {previous['last_success']}"


def _now() -> str:
    return format_timestamp(int(time.time()))


def _parse_steps(steps: Iterable[str] | None, config: Config) -> list[str]:
    if steps is None:
        return list(steps_for(config.run.sample_data))
    wanted = set(steps)
    unknown = sorted(wanted - set(STEPS))
    if unknown:
        raise ConfigError(f"unknown step(s) {', '.join(unknown)}; the steps: {', '.join(STEPS)}")
    return [s for s in STEPS if s in wanted]


def run(
    config: Config,
    execute: Callable[[str], None],
    steps: Iterable[str] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Runs the pipeline's steps, skipping the unchanged ones; returns each step's record.

    Args:
      config: The configuration.
      execute: Runs one step by its CLI name (the CLI passes its step handlers).
      steps: A subset of the steps (run in pipeline order); all of `run.sample_data`'s by
        default.
      force: Run every step, changed or not.

    Raises:
      WorkDirLocked: another run holds the work directory.
      Whatever the failing step raised, after its record says `failed`.
    """
    names = _parse_steps(steps, config)
    code = code_fingerprint()
    records: list[dict[str, Any]] = []
    summary = {"started": _now(), "status": "running", "steps": records}
    with work_dir_lock(config.work_dir):
        sweep_staging(config)
        try:
            for i, name in enumerate(names, 1):
                records.append(_run_step(config, execute, name, code, force, f"[{i}/{len(names)}]"))
            summary["status"] = "succeeded"
        except BaseException as e:
            summary["status"] = "failed"
            summary["error"] = _one_line(e)
            summary["finished"] = _now()
            _record_failure(os.path.join(config.work_dir, RUNS_DIR, "run.json"), summary)
            raise
        summary["finished"] = _now()
        write_json_atomic(os.path.join(config.work_dir, RUNS_DIR, "run.json"), summary)
    return records


def _record_failure(path: str, record: dict[str, Any]) -> None:
    """Writes the record of a failure, unless that fails too (its disk is full): the error the
    run ends with is then the one that made it fail, not the one of its record."""
    try:
        write_json_atomic(path, record)
    except OSError as e:
        say(f"could not record the failure in {path}: {e.strerror or e}")


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _run_step(
    config: Config,
    execute: Callable[[str], None],
    name: str,
    code: str,
    force: bool,
    counter: str,
) -> dict[str, Any]:
    spec = STEP_SPECS[name]
    path = record_path(config, name)
    previous = _read_record(config, name)
    fingerprint = _fingerprint(spec, config, code)
    reason = None if force else _skip_reason(spec, config, previous, fingerprint)
    if reason is not None:
        record = {**previous, "status": "skipped", "reason": reason, "checked_at": _now()}
        write_json_atomic(path, record)
        say(f"{counter} {name}: skipped ({reason})")
        return record
    started = time.time()
    record = {"step": name, "status": "running", "fingerprint": fingerprint, "started": _now()}
    write_json_atomic(path, record)
    say(f"{counter} {name}: running")
    try:
        execute(name)
    except BaseException as e:
        record.update(status="failed", error=_one_line(e), finished=_now())
        record["seconds"] = round(time.time() - started, 2)
        _record_failure(path, record)
        say(f"{counter} {name}: failed after {record['seconds']:.0f} s")
        raise
    seconds = round(time.time() - started, 2)
    finished = _now()
    record.update(
        status="succeeded",
        outputs=_outputs(spec, config),
        finished=finished,
        last_success=finished,
        seconds=seconds,
    )
    write_json_atomic(path, record)
    say(f"{counter} {name}: done in {seconds:.0f} s")
    return record
