"""The Airflow 3 DAG (pipeline/orchestrate/airflow_dag.py) under the real Airflow, with the real
`recsys` on a tiny config (`airflow_venv.py` runs the scripts): `dag.test()` runs the pipeline end
to end and pushes a version; a second DAG whose gate cannot pass fails at validate and pushes
nothing.
"""

from __future__ import annotations

import shutil

import pytest

from pipeline.core.steps import STEPS
from tests.pipeline.orchestrate.airflow_venv import (
    DAG_FILE,
    DAG_TEST,
    RECSYS,
    TEMPLATE_DB,
    run_script,
    write_yaml,
)

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out


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
    config = write_yaml(
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
    out, log = run_script(
        airflow_python,
        home,
        DAG_TEST,
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
