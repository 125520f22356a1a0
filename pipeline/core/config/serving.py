"""The `serving` section: the exported SavedModel's limits and its TF Serving deployment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = [
    "INDEXES",
    "MMR_EMBEDDINGS",
    "MODEL_NAME",
    "PARTITIONED_FROM",
    "RELEVANCES",
    "ServingBatching",
    "ServingConfig",
    "validate_index",
    "validate_paths",
    "validate_requests_and_server",
]

MMR_EMBEDDINGS = ("candidate", "text")
RELEVANCES = ("blend", "retrieval", "ranking")
INDEXES = ("auto", "exact", "partitioned")
# `serving.index: auto` partitions a catalog of at least this many items and searches a smaller
# one exactly. A first guess, to be replaced by the crossover that the index benchmark measures
# (the catalog size where the partitioned search starts to cost less than brute force).
PARTITIONED_FROM = 300_000
# A model name is a folder name under the model base and a path segment of TF Serving's REST
# URLs (`/v1/models/<name>`, which the server matches with `[^/:]+`): a letter or digit first,
# so never "." or ".." or a hidden folder, then letters, digits, "_", "." and "-".
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class ServingBatching:
    """TF Serving's server-side batching (`batching.config`): concurrent requests are merged
    into one graph run.

    Attributes:
      max_batch_size: Most requests merged into one batch.
      batch_timeout_micros: Longest wait for a batch to fill.
      num_batch_threads: Batches processed at once.
      max_enqueued_batches: Queue length before requests are refused (back-pressure).
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100


@dataclass
class ServingConfig:
    """The exported SavedModel and its TF Serving deployment.

    Attributes:
      model_name: The model's name on the server (`/v1/models/<name>`) and its folder under
        `model_base` and `export_base`: a letter or digit, then letters, digits, `_`, `.`
        and `-`.
      model_base: TF Serving's model base path, where `recsys push` puts blessed versions:
        `<model_base>/<model_name>/N/`. `{work_dir}` is substituted.
      export_base: Where `recsys export` writes candidate versions (itself a model base a
        server could watch): `<export_base>/<model_name>/N/`.
      num_candidates: Items retrieved from the catalog and ranked before MMR picks `k`.
      relevance: What the ranking stage hands to MMR: `blend` (retrieval logit + log of the
        ranking head's prediction: both models must agree), `retrieval` or `ranking` alone.
      query_weight: Share of a free-text query's cosine to each item's text in the retrieval
        score of a request that carries a query (the model's cosine has the rest): 1 ranks
        such a request by the text alone, as plain semantic search does; 0 by the model.
        Chosen on 300 tuning queries of ML-1M (`benchmarks/query_search.py --split tune`,
        a model trained on train alone): a new user's plot sentence found its movie in the
        top 10 for 0.82 / 0.90 / 0.92 / 0.94 of the queries at 0.5 / 0.7 / 0.8 / 1.0 (plain
        BERT cosine: 0.94); 0.8 is the lowest weight within 2% of the best, which leaves a
        known user's history a fifth of the score.
      max_k: Largest `k` a request may ask for.
      max_history: Most history ids a request may send.
      max_candidates: Most item ids one `mmr` or `rank` request row may send.
      max_query_bytes: Longest free-text query, in UTF-8 bytes.
      default_k: `k` that clients send when the caller gives none.
      default_lambda: MMR λ that clients send when the caller gives none (1 = relevance order).
      mmr_embedding: Item similarity used by MMR and explanations: `text` (the BERT text
        embeddings: what a person sees as "alike"; an item without text is similar to nothing)
        or `candidate` (the model's item vectors, which every item has). A model trained
        without text uses `candidate`.
      similarity_dim: Width of that similarity in the export: wider embeddings are projected
        at export onto the directions that keep most of their cosines (MMR's cost per
        request grows with it).
      xla: Compile the numeric core of `serving_default` and `mmr` with XLA (one program per
        batch-size bucket instead of hundreds of executor ops: about a third off recommend's
        latency). The server must then run with `--xla_cpu_compilation_enabled=true`, which
        the written `docker-compose.yml` passes; a server without it fails the model's warmup
        at load. False exports the same signatures for the executor alone.
      index: How retrieval, recommend and `similar_items` search the catalog: `exact` (brute
        force over every item: the true top, at a cost that grows with the catalog),
        `partitioned` (k-means partitions at export; a request scores the partitions'
        centroids and then the members of its `index_probes` closest ones: most of the true
        top at a fraction of the cost) or `auto` (partitioned from `PARTITIONED_FROM` items).
      index_probes: Partitions a request searches, at least; raised at export to as many as
        always hold the most items a request takes plus its history (so that every request
        gets as many items as exact search gives it), and at most all of them (which is exact).
      index_partitions: Partitions of a partitioned index; null: about √(catalog items).
      keep_versions: Versions TF Serving keeps serving (`models.config` version policy).
      keep_exports: Versions kept under `export_base` (each export removes the older ones, so
        a scheduled retrain does not fill the disk); 0 keeps every export.
      image: The TF Serving container image in `docker-compose.yml`.
      grpc_port: gRPC port of the server.
      rest_port: REST port of the server.
      batching: See `ServingBatching`.
    """

    model_name: str = "recommender"
    model_base: str = "{work_dir}/serving/models"
    export_base: str = "{work_dir}/export"
    num_candidates: int = 200
    relevance: str = "blend"
    query_weight: float = 0.8
    max_k: int = 100
    max_history: int = 200
    max_candidates: int = 1000
    max_query_bytes: int = 2000
    default_k: int = 10
    default_lambda: float = 0.9
    mmr_embedding: str = "text"
    similarity_dim: int = 64
    xla: bool = True
    index: str = "auto"
    index_probes: int = 16
    index_partitions: int | None = None
    keep_versions: int = 3
    keep_exports: int = 3
    image: str = "tensorflow/serving:2.20.0"
    grpc_port: int = 8500
    rest_port: int = 8501
    batching: ServingBatching = field(default_factory=ServingBatching)

    def base_path(self, work_dir: str) -> str:
        """`model_base` with `{work_dir}` substituted."""
        return self.model_base.replace("{work_dir}", work_dir)

    def export_path(self, work_dir: str) -> str:
        """`export_base` with `{work_dir}` substituted."""
        return self.export_base.replace("{work_dir}", work_dir)

    def index_kind(self, catalog_items: int) -> str:
        """`exact` or `partitioned`: `index`, with `auto` decided by the catalog's size."""
        if self.index != "auto":
            return self.index
        return "partitioned" if catalog_items >= PARTITIONED_FROM else "exact"


def validate_index(serving: ServingConfig, problems: Problems) -> None:
    """Records each semantic error of the catalog index's settings."""
    problems.choice("serving.index", serving.index, INDEXES)
    problems.check(
        serving.index_probes >= 1,
        "serving.index_probes",
        serving.index_probes,
        "must be at least 1",
    )
    problems.check(
        serving.index_partitions is None or serving.index_partitions >= 1,
        "serving.index_partitions",
        serving.index_partitions,
        "must be null (about √ of the catalog's items) or at least 1",
    )


def validate_paths(serving: ServingConfig, problems: Problems) -> None:
    """Records each semantic error of the model's name and its two bases (where versions go)."""
    problems.check(
        MODEL_NAME.fullmatch(serving.model_name) is not None,
        "serving.model_name",
        serving.model_name,
        "must be a letter or digit followed by letters, digits, '_', '.' or '-' (a folder "
        "name and a TF Serving model name)",
    )
    problems.check(
        bool(serving.model_base.strip()),
        "serving.model_base",
        serving.model_base,
        "must not be empty",
    )
    problems.check(
        bool(serving.export_base.strip()),
        "serving.export_base",
        serving.export_base,
        "must not be empty",
    )
    problems.check(
        serving.export_base != serving.model_base,
        "serving.export_base",
        serving.export_base,
        "must differ from serving.model_base (push copies from one to the other)",
    )


def validate_requests_and_server(serving: ServingConfig, problems: Problems) -> None:
    """Records each semantic error of the request limits and defaults, MMR, the kept versions
    and the server (image, ports, batching)."""
    limits = ("num_candidates", "max_k", "max_history", "max_candidates", "max_query_bytes")
    for name in (*limits, "similarity_dim"):
        value = getattr(serving, name)
        problems.check(value >= 1, f"serving.{name}", value, "must be at least 1")
    problems.check(
        serving.max_k <= serving.num_candidates,
        "serving.max_k",
        serving.max_k,
        f"must not exceed serving.num_candidates ({serving.num_candidates})",
    )
    problems.check(
        1 <= serving.default_k <= serving.max_k,
        "serving.default_k",
        serving.default_k,
        f"must be in [1, serving.max_k = {serving.max_k}]",
    )
    problems.check(
        0.0 <= serving.default_lambda <= 1.0,
        "serving.default_lambda",
        serving.default_lambda,
        "must be in [0, 1]",
    )
    problems.choice("serving.mmr_embedding", serving.mmr_embedding, MMR_EMBEDDINGS)
    problems.choice("serving.relevance", serving.relevance, RELEVANCES)
    problems.check(
        0.0 <= serving.query_weight <= 1.0,
        "serving.query_weight",
        serving.query_weight,
        "must be in [0, 1]",
    )
    problems.check(
        serving.keep_versions >= 1,
        "serving.keep_versions",
        serving.keep_versions,
        "must be at least 1",
    )
    problems.check(
        serving.keep_exports >= 0,
        "serving.keep_exports",
        serving.keep_exports,
        "must be 0 (keep all) or more",
    )
    problems.check(bool(serving.image.strip()), "serving.image", serving.image, "must not be empty")
    for name in ("grpc_port", "rest_port"):
        value = getattr(serving, name)
        problems.check(
            1 <= value <= 65535, f"serving.{name}", value, "must be a port in [1, 65535]"
        )
    problems.check(
        serving.grpc_port != serving.rest_port,
        "serving.rest_port",
        serving.rest_port,
        "must differ from grpc_port",
    )
    batching = serving.batching
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        value = getattr(batching, name)
        problems.check(value >= 1, f"serving.batching.{name}", value, "must be at least 1")
    problems.check(
        batching.batch_timeout_micros >= 0,
        "serving.batching.batch_timeout_micros",
        batching.batch_timeout_micros,
        "must be at least 0",
    )
