"""The shared core every other layer builds on: what a step needs whichever step it is.

* `keras2` selects Keras 2 before TensorFlow loads (the `pipeline` package imports it first);
* `config/` the YAML configuration as documented dataclasses, one module per section;
* `errors` the error types whose message is the one line a failed step prints;
* `schema` the TFRecord features and output folders, the single source of truth for the writer
  (Beam), the reader (`reader`, with `tf.data`) and the serving signatures;
* `manifest`, `staging`, `lock`, `timestamps`: a step's published folder and its
  `manifest.json`, staging folders, the work directory's lock, time formats; `cluster`: which
  worker of a multi-worker training run is the chief (the one that takes the lock);
* `version_dirs`: a model's integer version folders, as TF Serving lists them;
* `steps` the step names and their order, for the command line and the schedulers;
* `progress`, `step_log`, `abort`: what a long step prints, where its logs go, and how a
  running block is ended from another thread;
* `beam_step`, `beam_worker`: what every Beam job shares (options, runner, staged output,
  workers that die with their run).

It imports nothing from the layers above it (`preprocess`, `embed`, `sample_data`, `models`,
`serving`, `orchestrate`). This `__init__` re-exports nothing: importing the package must stay as
cheap as importing `keras2`, since the Airflow DAG reads `core.config` in an environment that has
neither TensorFlow nor Beam.
"""
