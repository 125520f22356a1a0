"""The trained model as a TF Serving SavedModel, the gate in front of it, and its clients.

* the contract: `signatures` (every signature's inputs and outputs), `requests` (request rows to
  tensors), `checks` (the graph's argument checks);
* the graph: `module` (the `tf.Module` of signatures), `core` (retrieval, ranking, MMR,
  explanations), `index` (the catalog arrays), `partitions` and `probe` (the partitioned index:
  its k-means at export, its search in the graph), `mmr`, `mmr_compiled`, `mmr_reference` (its
  NumPy oracle), `top_k`, `ids`, `buckets`;
* exporting: `export` (`recsys export`), `warmup`, `deploy` (TF Serving's files);
* shipping: `gate` (the validation gate), `drift` (data drift against the served run), `push`
  (`recsys validate`, `push`, `rollback`), `versions` (the model base's version folders);
* calling it: `client` (the clients' public face: `rest_client`, `grpc_client` and what they
  share, `replies`), `http_deadline`, `recommend` (`recsys recommend`).

It builds on `pipeline.core`, `pipeline.embed` (the text encoder of free-text queries) and
`models`, and is imported by `pipeline.orchestrate` only. Importing the package selects tf-keras
first (`pipeline.core.keras2`) and re-exports nothing, so that it loads no TensorFlow.
"""

import pipeline.core.keras2  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
