"""The recommender: its features, towers and TFRS model, training, and evaluation.

* the model: `features` (id vocabularies, the item table), `towers` (item encoder, query tower),
  `sequence` (the self-attention history encoder), `softmax` (retrieval losses), `recommender`
  (one `tfrs.Model` with a retrieval and a ranking task), `query_blend` (free-text queries);
* `train`: `recsys train`, fitting it on the preprocess TFRecords; `distributed`: which worker
  writes what when several train it together;
* evaluation, the only reader of the eval split: `evaluate` (`recsys evaluate`), `eval_data`,
  `ranking` (full-catalog ranking as serving ranks), `baselines`, `metrics`, `compare` (the best
  baseline on a metric) and `diversity` (the diversity sweep of the exported MMR).

It builds on `pipeline.core` (and the outputs of the Beam jobs, read through the schema), and is
imported by `serving` and `pipeline.orchestrate`. TFRS needs Keras 2, so importing the package
selects tf-keras first (`pipeline.core.keras2`); it re-exports nothing, so that importing it
loads no TensorFlow.
"""

import pipeline.core.keras2  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
