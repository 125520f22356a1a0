"""Running scripts under the real Airflow 3, in a virtualenv of its own, for the tests of the
Airflow DAG (pipeline/orchestrate/airflow_dag.py).

Airflow pins its own dependencies, which the pipeline's (TensorFlow, Beam) fight, so it gets a
virtualenv of its own, `airflow-<version>-py<X.Y>/` in the user's cache folder
(`~/.cache/recsys-pipeline/venv-airflow/`, or $RECSYS_AIRFLOW_VENVS): created on a machine's
first run and reused while the version stays the same, by every clone of the repository (CI
tests a fresh clone each time; the virtualenv holds Airflow alone, none of the repository's
code). Each test runs a script with that virtualenv's Python, with the repository on PYTHONPATH
(what `pip install --no-deps -e .` gives an Airflow deployment) and an AIRFLOW_HOME of its own,
and reads back the JSON the script prints last. The fixtures `airflow_python` (the virtualenv,
built when missing) and `airflow_home` are in conftest.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from tests.conftest import REPO_ROOT

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


def run_command(argv, env=None, timeout=600, what="command"):
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


def airflow_env(home, dags, **extra):
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


def run_script(python, home, script, *args, timeout=600, **env):
    """Runs `script` with `args` in the Airflow virtualenv; returns its last printed line as
    JSON and the whole output."""
    result = run_command(
        [str(python), "-c", textwrap.dedent(script), *map(str, args)],
        env=airflow_env(home, home / "dags", **env),
        timeout=timeout,
        what="the Airflow script",
    )
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout + result.stderr


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


# Runs DAGs of the dags folder with dag.test(), in order: argv is the work directory, the served
# model's folder, then the DAG ids. Prints each run's task states, and the step records' statuses
# and the served versions as each run left them.
DAG_TEST = """
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
