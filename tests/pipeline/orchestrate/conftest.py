"""Fixtures of the Airflow DAG tests: the Airflow virtualenv and an AIRFLOW_HOME
(`airflow_venv.py`)."""

import fcntl
import shutil
import sys
import time

import pytest

from tests.pipeline.orchestrate.airflow_venv import (
    AIRFLOW_VERSION,
    DAG_FILE,
    STAMP,
    TEMPLATE_DB,
    VENV,
    VENVS,
    airflow_env,
    run_command,
)


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
            run_command([sys.executable, "-m", "venv", str(VENV)], what="python -m venv")
            pip = [str(python), "-m", "pip", "install", "--quiet"]
            # A current pip installs Airflow about twice as fast as the one venv bundles. Its
            # modules are compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on this
            # project's machines) no import writes them, and each script would compile Airflow
            # anew, about 2 s of CPU.
            run_command([*pip, "--upgrade", "pip"], what="pip install --upgrade pip")
            run_command(
                [*pip, f"apache-airflow=={AIRFLOW_VERSION}"],
                what=f"pip install apache-airflow=={AIRFLOW_VERSION}",
            )
            home = VENV / "template-home"
            run_command(
                [str(VENV / "bin" / "airflow"), "db", "migrate"],
                env=airflow_env(home, home / "dags"),
                what="airflow db migrate",
            )
            shutil.move(home / "airflow.db", TEMPLATE_DB)
            shutil.rmtree(home)
            STAMP.write_text(
                f"apache-airflow=={AIRFLOW_VERSION} in {time.time() - started:.0f} s\n"
            )
    return python


@pytest.fixture
def airflow_home(airflow_python, tmp_path):
    """An AIRFLOW_HOME with a migrated database and a dags folder holding the DAG file."""
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(TEMPLATE_DB, home / "airflow.db")
    (dags / "recsys_pipeline.py").symlink_to(DAG_FILE)  # the documented drop-in
    return home
