"""The pipeline as an Apache Airflow 3 DAG: one task per step, each a `recsys run` subprocess.

Why a subprocess per step: the Airflow worker never imports TensorFlow, Beam or the model code
(they live in the pipeline's own virtualenv, whose pins Airflow's would fight), and each task does
exactly what `recsys run --steps <step>` does by hand: it takes the work-directory lock, skips a
step whose inputs, config and code are unchanged since its last success, and writes the step's
record under `<work_dir>/runs/`. So a retried or cleared task resumes where the pipeline left off.

Why not a BashOperator: a failed validation gate (exit status 3) must fail the run at once, while
any other failure (a missing input file, a busy work directory, a crash) is worth the configured
retries. BashOperator retries every non-zero status alike; `RecsysStepOperator` raises
`AirflowFailException` for the gate and a plain `AirflowException` otherwise.

Everything scheduling-related comes from the config's `run` section (`pipeline/core/config/run.py`):
schedule, start date, retries, retry delay, DAG id and whether the demo's sample-data step runs.
Only `pipeline.core.config` and `pipeline.core.steps` are imported here; both are light enough for
the scheduler, which parses this file every few seconds.

Use it in one of two ways:

* drop this file (a symlink or copy) into the dags folder and set `RECSYS_CONFIG` (the YAML
  config), `RECSYS_BIN` (the `recsys` executable of the pipeline's virtualenv) and, when the
  config holds relative paths, `RECSYS_CWD` (the directory they are relative to), for the dag
  processor and the workers. Loaded from there, the file builds its DAG from them at import;
  imported as `pipeline.orchestrate.airflow_dag` it builds none;
* or, for several pipelines, a small DAG file of your own per config:
  `dag = build_dag("/srv/recsys/configs/shop.yaml", recsys="/srv/recsys/.venv/bin/recsys")`.

Either way the `pipeline` package must be importable by Airflow (`pip install --no-deps -e
<repo>` into Airflow's environment, or the repository on PYTHONPATH): the DAG needs only PyYAML,
which Airflow has.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from airflow.sdk import DAG, BaseOperator, chain

try:  # where newer Airflow 3 releases keep them (airflow.exceptions has deprecated aliases)
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # early Airflow 3 releases
    from airflow.exceptions import AirflowException, AirflowFailException

from pipeline.core.config import load_config
from pipeline.core.errors import ConfigError
from pipeline.core.steps import steps_for

__all__ = ["EXIT_GATE_BLOCKED", "RecsysStepOperator", "build_dag", "dag"]

# `recsys run` exit statuses: 0 success, 1 unexpected error, 2 pipeline error (bad config or
# data, busy work directory), 3 the validation gate blocked the model, 130 interrupted.
EXIT_GATE_BLOCKED = 3
_KILL_GRACE_SECONDS = 30

_DOC_MD = """\
### recsys pipeline `{dag_id}`

Runs `{recsys} run --config {config}` one step per task ({steps}).
A step whose inputs, config and code are unchanged since its last success is skipped by
`recsys run` itself, so clearing a failed task resumes the pipeline there.

* A failed **validate** task means the validation gate blocked the model: nothing was pushed and
  the task is not retried. Its log holds the gate report (each metric, its value and the limit).
* Other failures are retried {retries} time(s), {delay:g} min apart.
* Step records: `{work_dir}/runs/<step>.json`; served versions: `{model_base}`.
"""


class RecsysStepOperator(BaseOperator):
    """Runs one pipeline step as `<recsys> run --config FILE --steps STEP [--set K=V ...]`.

    The step's stdout and stderr go to the task log line by line as they are written. Exit
    status 3 (the validation gate blocked the model) fails the task without retries; any other
    non-zero status fails this try, so Airflow retries it.
    """

    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        step: str,
        recsys: str,
        config_path: str,
        overrides: Sequence[str] = (),
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(**kwargs)
        self.step = step
        self.recsys = recsys
        self.config_path = config_path
        self.overrides = list(overrides)
        self.cwd = cwd
        self._process: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        """The command line the task runs."""
        argv = [self.recsys, "run", "--config", self.config_path, "--steps", self.step]
        for override in self.overrides:
            argv += ["--set", override]
        return argv

    def execute(self, context: Any) -> None:
        argv = [_resolve_executable(self.recsys), *self.command()[1:]]
        self.log.info("Running: %s", " ".join(argv))
        # Unbuffered, so the step's progress reaches the log as it happens, not at exit.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = process = subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: on_kill stops Beam workers too
        )
        last = ""
        try:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                if line.strip():
                    last = line
                self.log.info("%s", line)
            status = process.wait()
        finally:
            if process.poll() is None:  # this task is being torn down: leave no orphan
                self._stop(process)
            self._process = None
        if status == 0:
            return
        if status == EXIT_GATE_BLOCKED:
            raise AirflowFailException(
                f"step {self.step}: the validation gate blocked the model; nothing was pushed "
                f"(not retried). {last}"
            )
        raise AirflowException(f"step {self.step} failed with exit status {status}: {last}")

    def on_kill(self) -> None:
        """Stops the step when Airflow stops the task (timeout, mark failed, shutdown)."""
        if self._process is not None and self._process.poll() is None:
            self._stop(self._process)

    def _stop(self, process: subprocess.Popen[str]) -> None:
        # SIGINT first: `recsys` records the step as failed and releases the lock (exit 130).
        for sig, wait in ((signal.SIGINT, _KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                self.log.warning("step %s ignored %s; killing it", self.step, sig.name)


def _resolve_executable(recsys: str) -> str:
    """The `recsys` path the task runs; fails the task (no retry helps) when it is missing or is
    the copy that `pip install --no-deps` put into Airflow's own environment, which has no
    TensorFlow."""
    path = shutil.which(recsys)
    if path is None:
        raise AirflowFailException(
            f"recsys executable {recsys!r} not found: set RECSYS_BIN (or build_dag's recsys=) "
            "to the `recsys` of the pipeline's virtualenv"
        )
    same_env = os.path.dirname(os.path.abspath(path)) == os.path.dirname(sys.executable)
    if same_env and importlib.util.find_spec("tensorflow") is None:
        raise AirflowFailException(
            f"{path} is Airflow's own copy of recsys (installed without TensorFlow): set "
            "RECSYS_BIN to the `recsys` of the pipeline's virtualenv"
        )
    return path


def build_dag(
    config_path: str,
    recsys: str = "recsys",
    overrides: Sequence[str] = (),
    cwd: str | None = None,
) -> DAG:
    """The pipeline's DAG for one config: one `RecsysStepOperator` per step, in a chain.

    Args:
      config_path: The YAML config; read now for the schedule and the steps, and by every task.
      recsys: The `recsys` executable of the pipeline's virtualenv (a path, or a name on PATH).
      overrides: `key.path=value` config overrides, applied here and passed to every task.
      cwd: The directory the tasks run in, which relative paths in the config (`work_dir`,
        `data.path`, ...) are relative to. Required when `work_dir` is relative: an Airflow
        worker's own working directory is nowhere in particular.

    Raises:
      ConfigError: the config is invalid, or relative without `cwd`; Airflow shows the message
        as the DAG's import error.
    """
    if cwd is not None:
        cwd = os.path.abspath(cwd)
    config_path = os.path.abspath(os.path.join(cwd or os.getcwd(), config_path))
    config = load_config(config_path, list(overrides))
    if cwd is None and not os.path.isabs(config.work_dir):
        raise ConfigError(
            f"work_dir {config.work_dir!r} in {config_path} is relative: give the directory it "
            "is relative to as RECSYS_CWD (build_dag's cwd=), or make it absolute"
        )
    run = config.run
    steps = steps_for(run.sample_data)
    dag_id = run.dag_id.replace("{model_name}", config.serving.model_name)
    work_dir = os.path.join(cwd or "", config.work_dir)
    doc = _DOC_MD.format(
        dag_id=dag_id,
        recsys=recsys,
        config=config_path,
        steps=" → ".join(steps),
        retries=run.retries,
        delay=run.retry_delay_minutes,
        work_dir=work_dir,
        model_base=os.path.join(
            cwd or "", config.serving.base_path(config.work_dir), config.serving.model_name
        ),
    )
    with DAG(
        dag_id=dag_id,
        description=f"recsys pipeline: {config_path}",
        schedule=run.schedule,
        start_date=dt.datetime.combine(
            dt.date.fromisoformat(run.start_date), dt.time(), tzinfo=dt.UTC
        ),
        catchup=False,  # a run trains on all data so far: missed intervals need no replay
        max_active_runs=1,  # runs share the work directory (its lock would refuse a second)
        default_args={
            "retries": run.retries,
            "retry_delay": dt.timedelta(minutes=run.retry_delay_minutes),
        },
        tags=["recsys", config.serving.model_name],
        doc_md=doc,
    ) as built:
        chain(
            *(
                RecsysStepOperator(
                    task_id=step,
                    step=step,
                    recsys=recsys,
                    config_path=config_path,
                    overrides=overrides,
                    cwd=cwd,
                )
                for step in steps
            )
        )
    return built


def _dag_from_environment() -> DAG:
    """The DAG of this file when Airflow loads it from the dags folder, configured by the
    environment of Airflow's dag processor and workers.

    Without RECSYS_CONFIG that is an import error naming the variables, which Airflow shows as a
    broken DAG: a file that silently defines nothing leaves users wondering why the DAG never
    appears.
    """
    config_path = os.environ.get("RECSYS_CONFIG")
    if not config_path:
        raise ImportError(
            "RECSYS_CONFIG is not set: point it at the pipeline's YAML config, RECSYS_BIN at "
            "the recsys executable of its virtualenv (and RECSYS_CWD at the directory relative "
            "paths in the config start from), in the environment of Airflow's dag processor "
            "and workers"
        )
    return build_dag(
        config_path,
        recsys=os.environ.get("RECSYS_BIN") or "recsys",
        cwd=os.environ.get("RECSYS_CWD") or None,
    )


# Imported as `pipeline.orchestrate.airflow_dag` (by a DAG file of your own that calls `build_dag`),
# the module defines no DAG: Airflow would otherwise collect this one too, from that file.
dag = None if __name__ == "pipeline.orchestrate.airflow_dag" else _dag_from_environment()
