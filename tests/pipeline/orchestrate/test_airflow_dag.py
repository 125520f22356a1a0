"""The Airflow 3 DAG (pipeline/orchestrate/airflow_dag.py) under the real Airflow, in a virtualenv
of its own.

Airflow pins its own dependencies, which the pipeline's (TensorFlow, Beam) fight, so it gets a
virtualenv of its own, `airflow-<version>-py<X.Y>/` in the user's cache folder
(`~/.cache/recsys-pipeline/venv-airflow/`, or $RECSYS_AIRFLOW_VENVS): created on a machine's
first run and reused while the version stays the same, by every clone of the repository (CI
tests a fresh clone each time; the virtualenv holds Airflow alone, none of the repository's
code). Each test runs a script with that virtualenv's Python, with the repository on PYTHONPATH
(what `pip install --no-deps -e .` gives an Airflow deployment) and an AIRFLOW_HOME of its own,
and reads back the JSON the script prints last.

* the DAG file parses in the dags folder with its task graph from the config, and fails to
  import with a message naming what is wrong when it is not configured;
* `dag.test()` with a stand-in `recsys` that records its calls: the chain's order, a retried
  failure, and a blocked gate (exit status 3) that fails the run at once;
* `dag.test()` with the real `recsys` on a tiny config: the pipeline runs end to end and pushes
  a version; a second DAG whose gate cannot pass fails at validate and pushes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from pipeline.core.steps import STEPS, steps_for
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out

AIRFLOW_VERSION = "3.3.2"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
VENVS = pathlib.Path(
    os.environ.get("RECSYS_AIRFLOW_VENVS")
    or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    / "recsys-pipeline"
    / "venv-airflow"
)
VENV = VENVS / f"airflow-{AIRFLOW_VERSION}-py{PY}"
STAMP = VENV / ".installed"
TEMPLATE_DB = VENV / "airflow-template.db"  # `airflow db migrate` once, copied per test
DAG_FILE = REPO_ROOT / "pipeline" / "orchestrate" / "airflow_dag.py"
RECSYS = os.path.join(os.path.dirname(sys.executable), "recsys")


def _run(argv, env=None, timeout=600, what="command"):
    started = time.time()
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}) after {time.time() - started:.0f} s:\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def airflow_python():
    """The Python of the Airflow virtualenv, created (with a migrated template database) when
    missing. A lock keeps two test sessions from building it at once; the stamp is written
    last, so an interrupted install is redone."""
    VENVS.mkdir(parents=True, exist_ok=True)
    python = VENV / "bin" / "python"
    with open(VENVS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The stamp is also stale when the Python the virtualenv was made from is gone.
        if not STAMP.exists() or not python.resolve().exists():
            shutil.rmtree(VENV, ignore_errors=True)
            started = time.time()
            _run([sys.executable, "-m", "venv", str(VENV)], what="python -m venv")
            pip = [str(python), "-m", "pip", "install", "--quiet"]
            # A current pip installs Airflow about twice as fast as the one venv bundles. Its
            # modules are compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on this
            # project's machines) no import writes them, and each script would compile Airflow
            # anew, about 2 s of CPU.
            _run([*pip, "--upgrade", "pip"], what="pip install --upgrade pip")
            _run(
                [*pip, f"apache-airflow=={AIRFLOW_VERSION}"],
                what=f"pip install apache-airflow=={AIRFLOW_VERSION}",
            )
            home = VENV / "template-home"
            _run(
                [str(VENV / "bin" / "airflow"), "db", "migrate"],
                env=_airflow_env(home, home / "dags"),
                what="airflow db migrate",
            )
            shutil.move(home / "airflow.db", TEMPLATE_DB)
            shutil.rmtree(home)
            STAMP.write_text(
                f"apache-airflow=={AIRFLOW_VERSION} in {time.time() - started:.0f} s\n"
            )
    return python


def _airflow_env(home, dags, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=str(REPO_ROOT),  # `pipeline` importable, as an install of the repo does
        **extra,
    )
    return env


@pytest.fixture
def airflow_home(airflow_python, tmp_path):
    """An AIRFLOW_HOME with a migrated database and a dags folder holding the DAG file."""
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(TEMPLATE_DB, home / "airflow.db")
    (dags / "recsys_pipeline.py").symlink_to(DAG_FILE)  # the documented drop-in
    return home


def _run_script(python, home, script, *args, timeout=600, **env):
    """Runs `script` with `args` in the Airflow virtualenv; returns its last printed line as
    JSON and the whole output."""
    result = _run(
        [str(python), "-c", textwrap.dedent(script), *map(str, args)],
        env=_airflow_env(home, home / "dags", **env),
        timeout=timeout,
        what="the Airflow script",
    )
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout + result.stderr


def _write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


_PARSE = """
import json, os, sys
from airflow.dag_processing.dagbag import DagBag

def describe(dag):
    tasks = [dag.task_dict[t] for t in sorted(dag.task_dict)]
    return {
        "schedule": dag.schedule,
        "start_date": dag.start_date.isoformat(),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "tasks": {
            t.task_id: {
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_delay": t.retry_delay.total_seconds(),
                "command": t.command(),
                "cwd": t.cwd,
            }
            for t in tasks
        },
    }

def parse(**env):
    for key in ("RECSYS_CONFIG", "RECSYS_BIN", "RECSYS_CWD"):
        os.environ.pop(key, None)
    os.environ.update(env)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return {
        "errors": list(bag.import_errors.values()),
        "dags": {dag_id: describe(dag) for dag_id, dag in bag.dags.items()},
    }

cfg_a, cfg_b, cfg_bad, cwd = sys.argv[1:5]
out = {
    "a": parse(RECSYS_CONFIG=cfg_a, RECSYS_BIN="/opt/recsys/bin/recsys", RECSYS_CWD=cwd),
    "b": parse(RECSYS_CONFIG=cfg_b),
    "unset": parse(),
    "relative_without_cwd": parse(RECSYS_CONFIG=cfg_a),
    "invalid": parse(RECSYS_CONFIG=cfg_bad, RECSYS_CWD=cwd),
}

# As a library (a DAG file of your own): no DAG at import, build_dag with overrides.
os.environ["RECSYS_CONFIG"] = cfg_a
import pipeline.orchestrate.airflow_dag as module
out["library_dag"] = module.dag
built = module.build_dag(cfg_b, recsys="recsys", overrides=["run.retries=0"])
out["built"] = describe(built)

from airflow.sdk.exceptions import AirflowFailException
for name, path in (
    ("missing", "/nonexistent/recsys"),
    ("airflow_env", os.path.join(os.path.dirname(sys.executable), "airflow")),
):
    try:
        module._resolve_executable(path)
        out[name] = None
    except AirflowFailException as e:
        out[name] = str(e)
print(json.dumps(out))
"""


def test_the_dag_file_parses_with_its_task_graph_from_the_config(airflow_python, airflow_home):
    tmp = airflow_home.parent
    common = {"serving": {"model_name": "shop"}}
    cfg_a = _write_yaml(
        tmp / "a.yaml",
        {
            **common,
            "work_dir": "work/a",  # relative: to RECSYS_CWD
            "run": {
                "sample_data": False,
                "schedule": "0 3 * * *",
                "start_date": "2026-02-03",
                "retries": 4,
                "retry_delay_minutes": 1.5,
                "dag_id": "nightly_{model_name}",
            },
        },
    )
    cfg_b = _write_yaml(
        tmp / "b.yaml",
        {**common, "work_dir": str(tmp / "work_b"), "run": {"sample_data": True, "schedule": None}},
    )
    cfg_bad = _write_yaml(tmp / "bad.yaml", {"run": {"retries": -1}})
    out, _ = _run_script(airflow_python, airflow_home, _PARSE, cfg_a, cfg_b, cfg_bad, tmp)

    a = out["a"]
    assert a["errors"] == []
    assert list(a["dags"]) == ["nightly_shop"]
    dag = a["dags"]["nightly_shop"]
    assert dag["schedule"] == "0 3 * * *"
    assert dag["start_date"].startswith("2026-02-03T00:00:00")
    assert (dag["catchup"], dag["max_active_runs"]) == (False, 1)
    assert dag["tags"] == ["recsys", "shop"]
    steps = steps_for(False)
    assert "sample-data" not in dag["tasks"]
    assert sorted(dag["tasks"]) == sorted(steps)
    for previous, step in zip((None, *steps), steps, strict=False):
        task = dag["tasks"][step]
        assert task["upstream"] == ([previous] if previous else []), step  # one linear chain
        assert (task["retries"], task["retry_delay"]) == (4, 90.0)
        assert task["command"] == [
            "/opt/recsys/bin/recsys", "run", "--config", str(cfg_a), "--steps", step
        ]  # fmt: skip
        assert task["cwd"] == str(tmp)

    b = out["b"]
    assert b["errors"] == []
    dag_b = b["dags"]["recsys_shop"]  # the default dag_id
    assert dag_b["schedule"] is None
    assert sorted(dag_b["tasks"]) == sorted(STEPS)
    assert dag_b["tasks"]["sample-data"]["upstream"] == []
    assert dag_b["tasks"]["preprocess"]["upstream"] == ["sample-data"]
    assert dag_b["tasks"]["push"]["command"][0] == "recsys"  # RECSYS_BIN's default
    assert dag_b["tasks"]["push"]["retries"] == 2

    for case, needle in (
        ("unset", "RECSYS_CONFIG is not set"),
        ("relative_without_cwd", "RECSYS_CWD"),
        ("invalid", "run.retries must be at least 0"),
    ):
        assert out[case]["dags"] == {}, case
        assert len(out[case]["errors"]) == 1 and needle in out[case]["errors"][0], case

    assert out["library_dag"] is None
    built = out["built"]["tasks"]
    assert built["push"]["retries"] == 0
    assert built["push"]["command"][-2:] == ["--set", "run.retries=0"]
    assert "not found" in out["missing"]
    assert "Airflow's own copy" in out["airflow_env"]


# Runs DAGs of the dags folder with dag.test(), in order: argv is the work directory, the served
# model's folder, then the DAG ids. Prints each run's task states, and the step records' statuses
# and the served versions as each run left them.
_DAG_TEST = """
import json, os, sys
from airflow.dag_processing.dagbag import DagBag

def statuses(runs):
    names = os.listdir(runs) if os.path.isdir(runs) else []
    return {
        name[: -len(".json")]: json.load(open(os.path.join(runs, name)))["status"]
        for name in names
        if name.endswith(".json") and name != "run.json"
    }

def versions(folder):
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(int(name) for name in names if name.isdigit())

work, served, *dag_ids = sys.argv[1:]
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
assert not bag.import_errors, bag.import_errors
out = {}
for dag_id in dag_ids:
    run = bag.dags[dag_id].test()
    out[dag_id] = {
        "state": str(run.state),
        "tasks": {
            ti.task_id: {"state": str(ti.state), "try_number": ti.try_number}
            for ti in run.get_task_instances()
        },
        "records": statuses(os.path.join(work, "runs")),
        "served": versions(served),
    }
print(json.dumps(out))
"""

# A stand-in for `recsys`: records its arguments, prints a line on stdout and on stderr, and
# exits with FAKE_EXIT[step], a list of statuses for the step's successive calls.
_FAKE_RECSYS = """#!{python}
import json, os, sys
step = sys.argv[sys.argv.index("--steps") + 1]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
with open(os.environ["FAKE_CALLS"]) as f:
    calls = sum(json.loads(line)[4] == step for line in f)
print(f"fake-recsys {{step}} stdout", flush=True)
print(f"fake-recsys {{step}} stderr", file=sys.stderr, flush=True)
statuses = json.loads(os.environ["FAKE_EXIT"]).get(step, [0])
sys.exit(statuses[min(calls, len(statuses)) - 1])
"""


def test_a_failed_step_is_retried_and_a_blocked_gate_fails_the_run_at_once(
    airflow_python, airflow_home
):
    tmp = airflow_home.parent
    fake = tmp / "recsys"
    fake.write_text(_FAKE_RECSYS.format(python=sys.executable))
    fake.chmod(0o755)
    config = _write_yaml(
        tmp / "config.yaml",
        {
            "work_dir": str(tmp / "work"),
            "run": {"retries": 2, "retry_delay_minutes": 0.01, "dag_id": "fake"},
        },
    )
    calls = tmp / "calls.jsonl"
    out, log = _run_script(
        airflow_python,
        airflow_home,
        _DAG_TEST,
        tmp / "work",
        tmp / "served",
        "fake",
        RECSYS_CONFIG=str(config),
        RECSYS_BIN=str(fake),
        FAKE_CALLS=str(calls),
        FAKE_EXIT=json.dumps({"train": [2, 0], "validate": [3]}),
    )
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert {tuple(a[:4]) for a in argv} == {("run", "--config", str(config), "--steps")}
    # In chain order; train failed once and was retried; validate ran once; push never ran.
    assert [a[4] for a in argv] == [
        "preprocess", "embed-items", "train", "train", "evaluate", "export", "validate"
    ]  # fmt: skip
    run = out["fake"]
    assert run["state"] == "failed"
    assert run["tasks"]["train"] == {"state": "success", "try_number": 2}
    assert run["tasks"]["validate"] == {"state": "failed", "try_number": 1}
    assert run["tasks"]["push"]["state"] == "upstream_failed"
    assert "validation gate blocked the model" in log
    for stream in ("stdout", "stderr"):  # the step's output reached the task log
        assert f"fake-recsys evaluate {stream}" in log


# A step that starts a worker of its own, then waits to be interrupted.
_SLOW_RECSYS = """#!{python}
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as recsys's main does
worker = subprocess.Popen(["sleep", "120"])
with open(os.environ["FAKE_STARTED"], "w") as f:
    f.write(str(worker.pid))
try:
    time.sleep(120)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""

_KILL = """
import json, os, sys, threading, time
from pipeline.orchestrate.airflow_dag import RecsysStepOperator

recsys, started = sys.argv[1:]
operator = RecsysStepOperator(task_id="train", step="train", recsys=recsys, config_path="c.yaml")
out = {}

def execute():
    try:
        operator.execute({})
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"

thread = threading.Thread(target=execute)
thread.start()
while not os.path.exists(started) or not open(started).read():
    time.sleep(0.05)
operator.on_kill()  # what Airflow calls on a timeout, "mark failed" or shutdown
thread.join(60)
out["finished"] = not thread.is_alive()
worker = int(open(started).read())
try:
    os.kill(worker, 0)
    out["worker_alive"] = open(f"/proc/{worker}/stat").read().split()[2] != "Z"
except ProcessLookupError:
    out["worker_alive"] = False
print(json.dumps(out))
"""


def test_killing_the_task_interrupts_the_step_and_its_workers(airflow_python, airflow_home):
    tmp = airflow_home.parent
    slow = tmp / "recsys"
    slow.write_text(_SLOW_RECSYS.format(python=sys.executable))
    slow.chmod(0o755)
    started = tmp / "started"
    out, _ = _run_script(
        airflow_python, airflow_home, _KILL, slow, started, timeout=120, FAKE_STARTED=str(started)
    )
    assert out["finished"]
    # SIGINT first, which `recsys` turns into exit status 130 after recording the failure.
    assert out["error"] == "AirflowException: step train failed with exit status 130: interrupted"
    assert not out["worker_alive"]  # the whole process group was interrupted


_GATE_BLOCKED_DAG = """
import os
from pipeline.orchestrate.airflow_dag import build_dag

dag = build_dag(
    os.environ["RECSYS_CONFIG"],
    recsys=os.environ["RECSYS_BIN"],
    overrides=["run.dag_id=recsys_gate_blocked", "gate.min_metrics={recall@50: 1.01}"],
)
"""


@pytest.fixture(scope="module")
def pipeline_runs(airflow_python, tmp_path_factory):
    """Two dag.test() runs on one tiny work directory, through the real `recsys`: the drop-in
    DAG (the whole pipeline), then a DAG file of its own whose gate cannot pass (recall@50 of
    at least 1.01) on the same work directory, where `recsys run` skips every step before
    validate as unchanged."""
    from tests.pipeline.embed.tiny_bert import write_checkpoint

    tmp = tmp_path_factory.mktemp("airflow_e2e")
    home = tmp / "airflow"
    (home / "dags").mkdir(parents=True)
    shutil.copy(TEMPLATE_DB, home / "airflow.db")
    (home / "dags" / "recsys_pipeline.py").symlink_to(DAG_FILE)
    (home / "dags" / "recsys_gate_blocked.py").write_text(_GATE_BLOCKED_DAG)
    work = tmp / "work"
    config = _write_yaml(
        tmp / "tiny.yaml",
        {  # tests/models/conftest.py's small_config, with a tiny BERT
            "work_dir": str(work),
            "sample_data": {"n_users": 40, "n_items": 60},
            "data": {"items": {"extra_text_fields": ["brand"]}},
            "beam": {"direct_num_workers": 1, "direct_running_mode": "in_memory"},
            "text": {"checkpoint": str(write_checkpoint(tmp / "tiny_bert")), "max_length": 16},
            # Without text in the model: the export (no query encoder to save and replay) takes
            # a fifth of the time; embed-items still runs, and the DAG is no different.
            "model": {"embedding_dim": 8, "deep_layers": [8], "use_text": False},
            "train": {"epochs": 1, "batch_size": 64, "shuffle_buffer": 1000},
            "run": {"sample_data": True, "retries": 2, "retry_delay_minutes": 0.01},
            "serving": {"xla": False},  # the warmup compiles nothing; tests/serving covers XLA
            # A tiny model trained for one epoch is not meant to beat the baselines; the
            # blocked-gate DAG below blocks with an absolute minimum instead.
            "gate": {"min_ratio_to_baseline": {}},
        },
    )
    served = work / "serving" / "models" / "recommender"
    out, log = _run_script(
        airflow_python,
        home,
        _DAG_TEST,
        work,
        served,
        "recsys_recommender",
        "recsys_gate_blocked",
        timeout=900,
        RECSYS_CONFIG=str(config),
        RECSYS_BIN=RECSYS,
    )
    return out["recsys_recommender"], out["recsys_gate_blocked"], log, served


def test_dag_test_runs_the_whole_pipeline_and_pushes_a_version(pipeline_runs):
    first, _, _, served = pipeline_runs
    assert first["state"] == "success", first
    assert first["tasks"] == {step: {"state": "success", "try_number": 1} for step in STEPS}
    assert first["records"] == {step: "succeeded" for step in STEPS}
    assert first["served"] == [1]
    assert (served / "1" / "saved_model.pb").exists()


def test_a_gate_that_cannot_pass_fails_the_run_without_retry_or_push(pipeline_runs):
    _, blocked, log, _ = pipeline_runs
    assert blocked["state"] == "failed"
    tasks = blocked["tasks"]
    before = STEPS[: STEPS.index("validate")]
    assert all(tasks[s] == {"state": "success", "try_number": 1} for s in before), tasks
    assert tasks["validate"] == {"state": "failed", "try_number": 1}  # run.retries is 2
    assert tasks["push"]["state"] == "upstream_failed"
    assert blocked["records"]["validate"] == "failed"
    assert blocked["served"] == [1]  # nothing pushed
    assert "validation gate blocked the model" in log
    assert "1.01" in log  # the gate report, with the minimum it missed, is in the task log
