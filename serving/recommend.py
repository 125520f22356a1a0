"""`recsys recommend`: recommendations with explanations, from an export or a running server.

The same request goes either to the newest export loaded in this process, or to TF Serving over
REST (`--server http://host:8501`) or gRPC (`--server host:8500`). Item titles come from the
preprocess outputs when they are there.

What the model cannot use is said, not dropped: a query to an export without a text encoder is
refused (from the export's manifest in-process; a server's model refuses it itself, with
INVALID_ARGUMENT), and history ids outside the catalog are listed (`outside_catalog`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.core import schema
from pipeline.core.config import Config
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.manifest import read_json
from pipeline.core.reader import read_all
from serving.client import GrpcClient, RestClient, ServingError, decode_strings
from serving.requests import prepare_inputs, recommend_request
from serving.versions import latest_version

__all__ = [
    "InProcessModel",
    "assertion_message",
    "connect",
    "format_recommendations",
    "item_titles",
    "outside_catalog",
    "recommend",
]

# The export's manifest in a version folder (`serving.export.MANIFEST`, named here so that a
# client need not import the exporter and the model code behind it).
_MANIFEST = "manifest.json"


class InProcessModel:
    """An export loaded in this process, with the clients' `predict` interface.

    Attributes:
      path: The version folder.
      text_queries: Whether the export has a text encoder, from its manifest (None: the
        manifest does not say).
    """

    def __init__(self, path: str):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the TF Text ops, as TF Serving links them)

        self.path = path
        self._loaded = tf.saved_model.load(path)
        manifest = os.path.join(path, _MANIFEST)
        self.text_queries = (
            read_json(manifest).get("text_queries") if os.path.exists(manifest) else None
        )

    def catalog_ids(self) -> set[str]:
        """Every item id of the export's catalog."""
        return {i.decode() for i in self._loaded.ids.numpy()[1:]}  # row 0: "", no item

    def predict(
        self, signature: str, inputs: Any, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf

        tensors = prepare_inputs(signature, inputs, defaults)
        fn = self._loaded.signatures[signature]
        try:
            outputs = fn(**{name: tf.constant(value) for name, value in tensors.items()})
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(
                assertion_message(e.message),
                call=f"{signature} on {self.path}",
                status="INVALID_ARGUMENT",
            ) from None
        arrays = {name: value.numpy() for name, value in outputs.items()}
        return {n: decode_strings(a) if a.dtype == object else a for n, a in arrays.items()}


def assertion_message(message: str) -> str:
    """The readable part of a failed in-graph check: `k must be in [1, 20]; got 500` out of
    TensorFlow's `assertion failed: [k must be in [] [1] [, ] [20] []; got ] [500]`."""
    match = re.search(r"assertion failed: \[(.*)\]", message)
    if not match:
        return message.strip().splitlines()[-1] if message.strip() else message
    return re.sub(r"\] \[", "", match.group(1))


def connect(config: Config, server: str | None = None, timeout: float = 10.0):
    """The newest served version in-process (`server` None; the newest export when nothing is
    pushed yet), or a REST (`http(s)://…`) or gRPC (`host:port`) client of a running TF
    Serving."""
    name = config.serving.model_name
    if server is None:
        s = config.serving
        path = latest_version(os.path.join(s.base_path(config.work_dir), name)) or latest_version(
            os.path.join(s.export_path(config.work_dir), name)
        )
        if path is None:
            raise DataError(
                f"no version of {name!r} under {s.model_base!r} or {s.export_base!r}; run "
                "`recsys export` (and `recsys push`), or pass --server"
            )
        return InProcessModel(path)
    if server.startswith(("http://", "https://")):
        return RestClient(server, name, timeout=timeout)
    return GrpcClient(server, name, timeout=timeout)


def item_titles(config: Config) -> dict[str, str]:
    """Item id → title from the preprocess outputs (empty when they are absent)."""
    pattern = schema.output_pattern(config.step_dir("preprocess"), "items")
    if not glob.glob(pattern):
        return {}
    return {r["item_id"]: r["title"] for r in read_all(pattern, schema.ITEMS)}


def outside_catalog(backend, history: list[str], titles: Mapping[str, str]) -> list[str]:
    """The ids of `history` that the model's catalog lacks, each once, in order: the export's
    own catalog in-process; for a server, the local preprocess catalog (the ids of `titles`,
    from `item_titles`), and none when that is absent."""
    catalog = backend.catalog_ids() if hasattr(backend, "catalog_ids") else set(titles)
    if not catalog:
        return []
    return [i for i in dict.fromkeys(history) if i and i not in catalog]


def recommend(
    backend,
    config: Config,
    user_id: str,
    history: list[str] = (),
    query: str = "",
    k: int | None = None,
    mmr_lambda: float | None = None,
    exclude_seen: bool = True,
) -> list[dict[str, Any]]:
    """One request's recommendations: id, score, relevance, and the explaining history item
    (never an id outside the catalog).

    Raises:
      ConfigError: a query to an in-process export whose manifest says it has no text encoder.
    """
    if query.strip() and getattr(backend, "text_queries", None) is False:
        raise ConfigError(
            "this model has no text encoder (model.use_text was off): --query cannot be used"
        )
    s = config.serving
    defaults = {"k": s.default_k, "mmr_lambda": s.default_lambda}
    row = recommend_request(user_id, history, query, k, mmr_lambda, exclude_seen)
    out = backend.predict("serving_default", [row], defaults=defaults)
    results = []
    for i, item in enumerate(out["item_ids"][0]):
        if not item:
            continue
        results.append(
            {
                "item_id": str(item),
                "score": float(out["scores"][0][i]),
                "relevance": float(out["relevance"][0][i]),
                "because": str(out["explanation_item_ids"][0][i]) or None,
                "because_similarity": float(out["explanation_scores"][0][i]),
            }
        )
    return results


def format_recommendations(results: list[dict[str, Any]], titles: Mapping[str, str]) -> str:
    """A numbered list of titles with their explanations."""

    def name(item: str) -> str:
        title = titles.get(item)
        return f"{title} [{item}]" if title else item

    lines = []
    for n, r in enumerate(results, start=1):
        line = f"{n:>3}. {name(r['item_id'])}  (relevance {r['relevance']:.3f})"
        if r["because"]:
            line += f"\n       because you viewed {name(r['because'])}"
        lines.append(line)
    return "\n".join(lines) if lines else "(no recommendations)"
