"""The Airflow 3 DAG (pipeline/orchestrate/airflow_dag.py) under the real Airflow, in a virtualenv
of its own (`airflow_venv.py`), with stand-ins for `recsys`:

* the DAG file parses in the dags folder with its task graph from the config, and fails to
  import with a message naming what is wrong when it is not configured;
* `dag.test()` with a stand-in `recsys` that records its calls: the chain's order, a retried
  failure, and a blocked gate (exit status 3) that fails the run at once;
* killing a task interrupts its step and the step's workers.

The whole pipeline under `dag.test()`, with the real `recsys`: test_airflow_dag_pipeline.py.
"""

from __future__ import annotations

import json
import sys

import pytest

from pipeline.core.steps import STEPS, steps_for
from tests.pipeline.orchestrate.airflow_venv import DAG_TEST, run_script, write_yaml

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out


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
    cfg_a = write_yaml(
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
    cfg_b = write_yaml(
        tmp / "b.yaml",
        {**common, "work_dir": str(tmp / "work_b"), "run": {"sample_data": True, "schedule": None}},
    )
    cfg_bad = write_yaml(tmp / "bad.yaml", {"run": {"retries": -1}})
    out, _ = run_script(airflow_python, airflow_home, _PARSE, cfg_a, cfg_b, cfg_bad, tmp)

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
    config = write_yaml(
        tmp / "config.yaml",
        {
            "work_dir": str(tmp / "work"),
            "run": {"retries": 2, "retry_delay_minutes": 0.01, "dag_id": "fake"},
        },
    )
    calls = tmp / "calls.jsonl"
    out, log = run_script(
        airflow_python,
        airflow_home,
        DAG_TEST,
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
    out, _ = run_script(
        airflow_python, airflow_home, _KILL, slow, started, timeout=120, FAKE_STARTED=str(started)
    )
    assert out["finished"]
    # SIGINT first, which `recsys` turns into exit status 130 after recording the failure.
    assert out["error"] == "AirflowException: step train failed with exit status 130: interrupted"
    assert not out["worker_alive"]  # the whole process group was interrupted
