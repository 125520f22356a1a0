"""The orchestration on top of every other layer: the `recsys` command line and its schedules.

* `cli`: `recsys <step>`, one subcommand per step (the console script's entry point), with
  its grammar (each step's help and flags) in `parser`;
* `run`: `recsys run`, every step in order, each skipped when nothing it depends on changed;
* `status`: `recsys status`, the last run, the newest export and the served versions;
* `airflow_dag`: the pipeline as an Airflow 3 DAG, one `recsys run --steps STEP` task per step;
* `crontab.example`: the same on cron.

This is the one layer that imports `models` and `serving`. This `__init__` re-exports nothing:
Airflow imports `airflow_dag` in an environment without TensorFlow or Beam, and `cli` loads them
only in the step that needs them.
"""
