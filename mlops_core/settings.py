"""The project's one settings object.

Every path, URI, threshold and port comes from here and can be overridden from the environment with the
``MLOPS_`` prefix (nested fields use ``__``, e.g. ``MLOPS_TRAINING__HOLDOUT_FRACTION=0.3``). The defaults
keep all state under one local directory so a laptop needs no server.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_repo import definitions

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CandidateName = Literal["logistic_regression", "random_forest", "hist_gradient_boosting"]
MetricName = Literal["roc_auc", "accuracy", "f1", "log_loss", "brier", "ece"]
# The embedded offline store: Feast's DuckDB store with an as-of point-in-time join (mlops_core/offline_store.py),
# named as Feast resolves a custom offline store type; feature_repo/feature_store.yaml names it too.
ASOF_OFFLINE_STORE = "mlops_core.offline_store.AsofDuckDBOfflineStore"
# The embedded online store: Feast's SQLite store written in bulk (mlops_core/online_store.py), named the same way.
BULK_SQLITE_ONLINE_STORE = "mlops_core.online_store.BulkSqliteOnlineStore"


class DataSettings(BaseModel):
    """Where training data comes from and what it looks like."""

    source: Path | None = Field(
        default=None,
        description="A directory of dated batch files (YYYY-MM-DD.parquet|csv) or a single CSV/Parquet file. "
        "Defaults to <state_dir>/data/<dataset>.",
    )
    dataset: str = Field(default="loan_default", description="Name of the generated dataset and its data directory.")
    target: str = Field(default="defaulted", description="The label column (0/1).")
    entity_id: str | None = Field(
        default="applicant_id", description="Entity key column; empty for data without one (no feature store)."
    )
    timestamp: str | None = Field(
        default="application_ts", description="Event time column for point-in-time joins; empty for data without one."
    )
    window_days: int | None = Field(
        default=None, ge=1, description="Train on the newest N daily batches only; all batches when unset."
    )

    @field_validator("entity_id", "timestamp", mode="before")
    @classmethod
    def _empty_means_none(cls, value: str | None) -> str | None:
        # A user file without these columns sets MLOPS_DATA__TIMESTAMP="" in the environment.
        return value or None


class ValidationSettings(BaseModel):
    """The Great Expectations gate."""

    context_dir: Path = Field(
        default=PROJECT_ROOT / "great_expectations", description="Great Expectations project (suites, Data Docs)."
    )
    suite: str = Field(default="loan_default", description="Expectation suite every training window must pass.")


class TrainingSettings(BaseModel):
    """Candidate training and model selection."""

    candidates: list[CandidateName] = Field(
        default=["logistic_regression", "random_forest", "hist_gradient_boosting"],
        description="Model types trained side by side; the best on the holdout is registered.",
    )
    holdout_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.9,
        description="Newest share of the window kept out of fitting, for selection and the gate.",
    )
    primary_metric: MetricName = Field(default="roc_auc", description="Metric that ranks the candidates.")
    random_seed: int = Field(default=42, description="Seed of splits, samples and the candidates' own randomness.")
    reference_sample_rows: int = Field(
        default=20_000, ge=100, description="Training rows kept with the model as the drift reference."
    )
    max_parallel_candidates: int = Field(
        default=2,
        ge=1,
        description="Candidates fitted at the same time, in the order of candidates (the next starts when one "
        "ends); each holds its own copy of the training matrix.",
    )
    fit_sample_rows: int | None = Field(
        default=None,
        ge=1000,
        description="Fit candidates on a random sample of at most this many training rows (recorded in the run's "
        "split); unset: all rows. Loading, the gate, the feature store and the holdout always use every row.",
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads", description="How candidates are fanned out: a thread pool, or Dask (prefect-dask)."
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786; unset: local."
    )
    intended_use: str = Field(
        default="Scores the probability of the positive class of the target for one row shaped like the training "
        "data (for the loan data: that an applicant defaults), to rank and triage cases for a person to review. "
        "Not meant for automated decisions without review, nor for populations unlike the training window.",
        description="The model card's intended-use section, written for each registered version.",
    )


class MlflowSettings(BaseModel):
    """Tracking server and registry. Unset URIs fall back to a SQLite file in the state directory."""

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI, e.g. http://host:5000; default: SQLite in the state dir."
    )
    registry_uri: str | None = Field(default=None, description="MLflow registry URI; default: the tracking URI.")
    artifact_root: str | None = Field(
        default=None, description="Artifact location of new experiments; default: through the server, or the state dir."
    )
    experiment: str = Field(default="training", description="MLflow experiment of the training runs.")
    registered_model: str = Field(default="loan-default", description="Registered model the loop trains and serves.")


class PromotionSettings(BaseModel):
    """The promotion gate: when a new version may replace the champion, and where alias moves are audited."""

    mode: Literal["champion", "challenger"] = Field(
        default="champion", description="Alias a version that passes the gate moves to."
    )
    primary_metric: Literal["roc_auc", "accuracy", "log_loss", "brier"] = Field(
        default="roc_auc", description="Metric a new version must beat the champion on, with confidence."
    )
    min_improvement: float = Field(default=0.0, ge=0.0, description="Margin the primary metric must improve by.")
    guard_tolerances: dict[MetricName, float] = Field(
        default={"log_loss": 0.01, "ece": 0.02, "accuracy": 0.01},
        description="Largest regression allowed per guard metric (absolute, in the metric's own units).",
    )
    floor: dict[MetricName, float] = Field(
        default={"roc_auc": 0.6}, description="Absolute bounds the first model must clear."
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Level of the paired bootstrap interval of the improvement."
    )
    bootstrap_resamples: int = Field(default=1000, ge=100, description="Resamples of that bootstrap.")
    max_eval_rows: int = Field(default=20_000, ge=100, description="Holdout rows kept for the gate, sampled.")
    audit_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in the state dir.")


class ServiceSettings(BaseModel):
    """The prediction service. Unset stores fall back to SQLite files under <state_dir>/service/."""

    host: str = Field(default="127.0.0.1", description="Address the service listens on; 0.0.0.0 only behind a proxy.")
    port: int = Field(default=3000, ge=1, le=65535, description="Port of the service.")
    workers: int = Field(default=2, ge=1, description="Worker processes of one instance.")
    key_store: Path | None = Field(default=None, description="SQLite file of API key hashes.")
    keys_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the API key store shared by every instance, e.g. postgresql+psycopg://...; "
        "default: the SQLite file key_store.",
    )
    rate_limit: int = Field(default=600, ge=1, description="Requests per key per rate window, across workers.")
    rate_window_seconds: float = Field(default=60.0, gt=0, description="Length of the rate window.")
    rate_limit_store: Path | None = Field(default=None, description="SQLite file shared by all workers.")
    rate_limit_url: str | None = Field(
        default=None,
        description="Redis URL, e.g. redis://host:6379/0: limits counted across every instance; default: the "
        "SQLite file rate_limit_store (one machine).",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Larger request bodies are refused (413).")
    max_batch_rows: int = Field(default=1000, ge=1, description="Rows one /predict_batch request may carry.")
    batch_scoring_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads that score one large batch side by side, in chunks; default: the whole cores the "
        "worker may keep busy (its CPU affinity, capped by a container's CPU quota).",
    )
    model_runtime: Literal["onnx", "sklearn"] = Field(
        default="onnx",
        description="Score with a compiled form where one agrees with scikit-learn (a logistic regression as its float64 "
        "sum of per-column terms, any other pipeline with ONNX Runtime), else scikit-learn.",
    )
    out_of_range: Literal["refuse", "flag"] = Field(
        default="flag", description="What to do with a value far outside the training range or an unseen category."
    )
    range_headroom: float = Field(
        default=0.5, ge=0.0, description="Allowed distance beyond the training min/max, as a fraction of the span."
    )
    prediction_log: bool = Field(default=True, description="Write every answered prediction before answering.")
    prediction_log_url: str | None = Field(default=None, description="SQLAlchemy URL, e.g. postgresql+psycopg://...")
    security_log_url: str | None = Field(default=None, description="SQLAlchemy URL of the security event log.")
    poll_seconds: float = Field(default=10.0, gt=0, description="How often each worker asks the registry.")
    open_paths: list[str] = Field(
        default=["/livez", "/readyz", "/healthz", "/metrics", "/", "/docs", "/openapi.json"],
        description="Paths served without an API key; leave out /docs and /openapi.json to close the service "
        "page (Swagger UI at /docs, its assets follow /docs) and the OpenAPI document.",
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0, description="A request running longer answers 503.")
    startup_load_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a starting worker waits for its champion model before it takes connections; after "
        "that it answers 503 not_ready until one loads. Keep it below the liveness probe's budget.",
    )
    rebalance_in_flight: int = Field(
        default=8,
        ge=0,
        description="A worker with more requests than this in progress answers one with Connection: close (at most "
        "one each 50 ms), so its client reconnects to whichever worker is ready: the workers share one listening "
        "socket and a client pool's connections can all land on one; 0: never.",
    )
    access_log: Literal["file", "stderr", "off"] = Field(
        default="file", description="One JSON line per request: to access_log_file, to stderr, or nowhere."
    )
    access_log_file: Path | None = Field(default=None, description="Default: <state_dir>/service/access.log.")
    model_ref: str = Field(
        default="champion",
        pattern=r"^(?:[1-9][0-9]*|[A-Za-z_][A-Za-z0-9_-]*)$",
        description="What this instance serves: an alias, followed at every poll, or a version number, pinned "
        "(a blue-green colour serves exactly its pin).",
    )


class MonitoringSettings(BaseModel):
    """The scheduled drift check over the prediction log, and when it triggers retraining."""

    window_hours: float = Field(default=24.0, gt=0, description="Window of the first check (later: since the last).")
    min_rows: int = Field(default=200, ge=1, description="Fewer logged rows in the window: skip, with the reason.")
    max_rows: int = Field(default=50_000, ge=1000, description="Rows sampled from a larger window.")
    drift_method: str = Field(default="psi", description="Evidently drift method of the report shown to users.")
    column_drift_threshold: float = Field(
        default=0.1,
        gt=0,
        description="PSI a drifted column exceeds (and its null's critical value at the window size).",
    )
    drift_false_alarm_rate: float = Field(
        default=0.01, gt=0, lt=1, description="Chance that a check of undrifted data finds any drifted column."
    )
    drift_share_threshold: float = Field(default=0.3, gt=0, le=1, description="Share of drifted columns that alerts.")
    min_labelled_rows: int = Field(default=200, ge=10, description="Labelled rows needed to judge quality.")
    label_window_hours: float = Field(
        default=24.0 * 30, gt=0, description="Quality is scored on predictions whose labels arrived this recently."
    )
    quality_drop_threshold: float = Field(default=0.05, gt=0, description="Drop of ROC AUC vs the holdout that alerts.")
    cooldown_hours: float = Field(default=12.0, ge=0, description="Least time between two triggered retrainings.")
    # Service health and security: they alert, never retrain (a model does not fix a slow or probed service).
    latency_p99_ms_threshold: float = Field(default=500.0, gt=0, description="p99 latency of answers that alerts.")
    client_error_rate_threshold: float = Field(default=0.05, gt=0, le=1, description="Share of 4xx that alerts.")
    server_error_rate_threshold: float = Field(default=0.01, gt=0, le=1, description="Share of 5xx that alerts.")
    rate_limited_rate_threshold: float = Field(default=0.05, gt=0, le=1, description="Share of 429 that alerts.")
    refused_keys_per_hour_threshold: int = Field(
        default=30, gt=0, description="Missing or invalid keys in one clock hour that alert as probing."
    )
    rate_limited_per_hour_threshold: int = Field(
        default=300, gt=0, description="Rate-limit refusals in one clock hour that alert as abuse."
    )
    experiment: str = Field(default="monitoring", description="MLflow experiment of the checks and their reports.")
    alert_block: str = Field(
        default="mlops-alerts", description="Name of the Prefect notification block every alert is sent through."
    )
    alert_block_type: str = Field(
        default="custom-webhook",
        description="Its block type slug (any notification block: slack-webhook, ms-teams-webhook, email, ...).",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Saved as the URL of the default webhook block; unset: the block as configured in Prefect, "
        "and nothing is sent when there is none.",
    )
    state_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the check history; it also keeps the feature store's record of what was "
        "last written online.",
    )


class StackSettings(BaseModel):
    """The local stack (``mlops stack up``): servers on 127.0.0.1; the service port is ``service.port``."""

    prefect_port: int = Field(default=4200, ge=1, le=65535, description="Prefect server and UI.")
    mlflow_port: int = Field(default=5000, ge=1, le=65535, description="MLflow tracking server and UI.")
    work_pool: str = Field(default="mlops-local", description="The process work pool of prefect.yaml.")
    start_timeout_seconds: float = Field(default=120.0, gt=0, description="Per server, until it is healthy.")
    stop_timeout_seconds: float = Field(default=10.0, gt=0, description="Per signal, before the next one.")
    # Beyond one machine, by settings only: e.g. postgresql+psycopg://... and s3://bucket/path.
    mlflow_backend_uri: str | None = Field(default=None, description="Default: SQLite in the state dir.")
    mlflow_artifacts_destination: str | None = Field(default=None, description="Default: <state>/mlartifacts.")
    prefect_database_url: str | None = Field(
        default=None, description="Prefect server database, e.g. postgresql+asyncpg://...; default: SQLite."
    )


class BlueGreenSettings(BaseModel):
    """The blue-green switch (``mlops bluegreen``): where the two colours run and what a colour must pass to go live."""

    router: Literal["local", "kubernetes"] = Field(
        default="local",
        description="local: two `bentoml serve` instances on 127.0.0.1, the live colour in <state>/stack/; "
        "kubernetes: the Deployments and Service of deploy/k8s/, through kubectl.",
    )
    local_ports: dict[Literal["blue", "green"], int] = Field(
        default={"blue": 3001, "green": 3002}, description="Ports of the local colours on 127.0.0.1."
    )
    ready_timeout_seconds: float = Field(
        default=300.0, gt=0, description="How long a colour may take to roll out and serve the pinned version."
    )
    smoke_requests: int = Field(
        default=20, ge=1, le=1000, description="Predictions sent to a colour before it goes live."
    )
    smoke_p95_ms: float = Field(
        default=1000.0, gt=0, description="Bound on the 95th percentile round-trip latency of the smoke requests."
    )
    smoke_key: SecretStr | None = Field(
        default=None,
        description="API key for the smoke requests; unset: a temporary key in the service's key store, revoked after.",
    )
    kubectl: str = Field(
        default="kubectl", description="kubectl binary (with its current context) of the kubernetes router."
    )
    namespace: str | None = Field(
        default="mlops", description="Namespace of deploy/k8s/ and the flows' work pool; unset: kubectl's current one."
    )
    service_name: str = Field(
        default="mlops-prediction",
        description="The live Service; the colours' Deployments and preview Services are named <name>-blue|green.",
    )


class ExperimentSettings(BaseModel):
    """Serving the challenger beside the champion (A/B or shadow) and deciding between them on logged evidence.

    ``mode`` and ``challenger_share`` are the defaults: ``mlops serving-mode`` writes them as tags on the
    registered model, which every worker reads at each registry poll, so they change without a restart.
    """

    mode: Literal["champion", "ab", "shadow"] = Field(
        default="champion", description="champion only, A/B split, or the challenger scored in the shadow."
    )
    challenger_share: float = Field(default=0.1, ge=0.0, le=1.0, description="Share of A/B traffic to the challenger.")
    sticky_by: list[Literal["session", "key"]] = Field(
        default=["session", "key"],
        description="What keeps a caller on one variant, first present wins; random when none is (or empty).",
    )
    session_header: str = Field(default="x-session-id", description="Header carrying an entity or session id.")
    decision_metric: Literal["log_loss", "brier", "accuracy"] = Field(
        default="log_loss", description="Per-row score the sequential test compares (a mean over rows)."
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="Chance of ever declaring a false winner.")
    mixing_sd: float = Field(
        default=0.02, gt=0.0, description="mSPRT prior scale: the size of difference the test is tuned to find."
    )
    min_samples: int = Field(default=200, ge=10, description="Labelled rows per variant before any decision.")
    max_samples: int = Field(
        default=20_000, ge=10, description="Labelled rows per variant after which no difference keeps the champion."
    )
    auto_decide: bool = Field(default=False, description="Apply decisions; otherwise only recommend them.")
    outcome_values: dict[Literal["approved_good", "approved_bad", "declined_good", "declined_bad"], float] = Field(
        default={"approved_good": 100.0, "approved_bad": -1000.0, "declined_good": 0.0, "declined_bad": 0.0},
        description="Business value of one decision by its outcome (the cost matrix): for the loan model a good "
        "loan approved earns its margin, an approved default costs the loss; approved means predicted negative.",
    )
    evidence_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the A/B evidence kept between evaluations (the rows read so far), so a "
        "flow run on any worker continues where the last one stopped; default: SQLite in the state dir.",
    )
    srm_alpha: float = Field(
        default=0.001,
        gt=0.0,
        lt=0.5,
        description="Sample-ratio-mismatch test level: an observed A/B split this unlikely under the configured "
        "share blocks every decision (the assignment, not the model, is then in question).",
    )


class FeatureStoreSettings(BaseModel):
    """The Feast feature store: offline rows for point-in-time training sets, online rows for serving by entity.

    Embedded by default (SQLite online store, Parquet files offline joined by DuckDB's as-of join, registry file
    in the state dir). Another store is a settings change: ``MLOPS_FEATURES__ONLINE_STORE='{"type": "redis",
    "connection_string": "host:6379"}'``, ``MLOPS_FEATURES__OFFLINE_STORE='{"type": "bigquery", ...}'`` with Feast's own keys.
    """

    enabled: bool = Field(
        default=True,
        description="Build training sets from the store when the data has an entity id and a timestamp.",
    )
    project: str = Field(default=definitions.PROJECT, description="Feast project name.")
    view: str = Field(default=definitions.VIEW, description="The feature view of feature_repo/ to use.")
    registry: str | None = Field(default=None, description="Feast registry path or URL; default in the state dir.")
    online_store: dict[str, Any] = Field(
        default_factory=dict,
        description="Feast online_store, with Feast's own keys; default Feast's SQLite store in the state dir, written "
        "in bulk (mlops_core/online_store.py).",
    )
    offline_store: dict[str, Any] = Field(
        default_factory=lambda: {"type": ASOF_OFFLINE_STORE},
        description="Feast offline_store, with Feast's own keys; default Feast's DuckDB store over the Parquet rows "
        "with an as-of point-in-time join (mlops_core/offline_store.py).",
    )
    ttl_days: int = Field(
        default=0, ge=0, description="How old a feature row may be for a point-in-time join; 0 means no limit."
    )
    cache_ttl_seconds: float = Field(
        default=30.0, ge=0.0, description="How long the service trusts a cached entity without the store."
    )
    cache_max_entities: int = Field(default=100_000, ge=1, description="Entities one worker keeps cached.")
    online_write_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Scheduling niceness of the thread that writes the online store beside the candidates' fits "
        "(Linux, that thread only): the fits keep the cores and the write takes the idle ones; 0: same priority.",
    )
    journal_url: str | None = Field(
        default=None,
        description="Redis URL of the update journal, e.g. redis://host:6379/0, so that an update invalidates the "
        "caches of instances on every machine; default: a file beside the store (one machine).",
    )


class RetrySettings(BaseModel):
    """Retries of the tasks that talk to servers (MLflow, the feature store, the prediction log) and are safe to
    repeat; applied when the flows' code is imported, i.e. once per flow run process."""

    attempts: int = Field(default=3, ge=0, description="Retries after a transient failure (0: none).")
    backoff_seconds: float = Field(
        default=2.0, ge=0.0, description="Delay before the first retry; each further retry waits twice as long."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    state_dir: Path = Field(default=Path(".mlops"), description="Root of all local state.")
    data: DataSettings = DataSettings()
    validation: ValidationSettings = ValidationSettings()
    training: TrainingSettings = TrainingSettings()
    mlflow: MlflowSettings = MlflowSettings()
    promotion: PromotionSettings = PromotionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    service: ServiceSettings = ServiceSettings()
    experiment: ExperimentSettings = ExperimentSettings()
    stack: StackSettings = StackSettings()
    features: FeatureStoreSettings = FeatureStoreSettings()
    bluegreen: BlueGreenSettings = BlueGreenSettings()
    retries: RetrySettings = RetrySettings()

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Flows run in worker processes with their own working directory: pin paths once, here.
        self.state_dir = self.state_dir.expanduser().resolve()
        if self.data.source is not None:
            self.data.source = self.data.source.expanduser().resolve()
        self.validation.context_dir = self.validation.context_dir.expanduser().resolve()
        return self

    @property
    def data_source(self) -> Path:
        return self.data.source or self.state_dir / "data" / self.data.dataset

    @property
    def prefect_home(self) -> Path:
        """Prefect's profile and temporary-server database when no Prefect API is configured."""
        return self.state_dir / "prefect"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        return self.mlflow.registry_uri or self.tracking_uri

    @property
    def artifact_root(self) -> str:
        """With a tracking server, artifacts go through it to its own store (local disk, S3...), not to this disk."""
        if self.mlflow.artifact_root:
            return self.mlflow.artifact_root
        if self.tracking_uri.startswith(("http://", "https://")):
            return "mlflow-artifacts:/"
        return (self.state_dir / "mlartifacts").as_uri()

    @property
    def service_dir(self) -> Path:
        return self.state_dir / "service"

    @property
    def key_store(self) -> Path:
        return self.service.key_store or self.service_dir / "keys.db"

    @property
    def keys_url(self) -> str:
        return self.service.keys_url or f"sqlite:///{self.key_store}"

    @property
    def access_log_file(self) -> Path:
        return self.service.access_log_file or self.service_dir / "access.log"

    @property
    def rate_limit_store(self) -> Path:
        return self.service.rate_limit_store or self.service_dir / "ratelimit.db"

    @property
    def prediction_log_url(self) -> str:
        return self.service.prediction_log_url or f"sqlite:///{self.service_dir / 'predictions.db'}"

    @property
    def security_log_url(self) -> str:
        return self.service.security_log_url or f"sqlite:///{self.service_dir / 'security.db'}"

    @property
    def audit_url(self) -> str:
        return self.promotion.audit_url or f"sqlite:///{self.state_dir / 'registry_audit.db'}"

    @property
    def monitoring_state_url(self) -> str:
        return self.monitoring.state_url or f"sqlite:///{self.state_dir / 'monitoring.db'}"

    @property
    def experiment_evidence_url(self) -> str:
        return self.experiment.evidence_url or f"sqlite:///{self.state_dir / 'experiments.db'}"

    @property
    def stack_dir(self) -> Path:
        """Pids and logs of the local stack."""
        return self.state_dir / "stack"

    @property
    def feature_store_dir(self) -> Path:
        """Registry, SQLite online store, offline Parquet rows and the update journal of the feature store."""
        return self.state_dir / "features"

    def ensure_dirs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests call ``get_settings.cache_clear()`` after changing the env."""
    return Settings()
