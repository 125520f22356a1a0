"""recsys-pipeline: logs and item text to a two-stage TFRS recommender served by TF Serving.

The package is layered, lowest first; an import only ever points down (`tests/test_layers.py`):

* `core`: configuration, schema, errors, manifests, staging, locks, the Beam step plumbing;
* `preprocess`, `embed`, `sample_data`: the Beam preprocessing job, the BERT text-embedding job
  (with the text encoder), the synthetic demo data; peers, none imports another;
* above them the `models` package (towers, training, evaluation), then `serving` (the exported
  SavedModel, the gate, push and clients);
* `orchestrate`: the `recsys` command line, `recsys run`, status and the schedules, the one
  layer that imports `models` and `serving`.

TFRS needs Keras 2: importing this package (as `models` and `serving` do) selects tf-keras
before TensorFlow loads, so `core.keras2` is imported first, and nothing heavier here.
"""

import pipeline.core.keras2  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
