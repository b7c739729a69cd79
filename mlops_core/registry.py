"""Registry conventions shared by the flows and the service: tag names, aliases, semantic versions.

One registered model per use case. Each version carries the tags below; ``champion`` is what the service
serves and ``challenger`` a candidate under A/B or shadow.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlops_core.settings import PROJECT_ROOT, ExperimentSettings, Settings

CHAMPION = "champion"
CHALLENGER = "challenger"

TAG_SEMVER = "semver"
TAG_DATA_DIGEST = "data_digest"
TAG_GX_SUCCESS = "gx_success"
TAG_TRAINING_RUN_ID = "training_run_id"
TAG_CODE_VERSION = "code_version"
TAG_SIGNATURE_DIGEST = "signature_digest"
TAG_PARAMS_DIGEST = "params_digest"
TAG_CANDIDATE = "candidate"  # which candidate pipeline won
# What the promotion gate decided about a version, written on the version by the promotion stage.
TAG_PROMOTION_OUTCOME = "promotion.outcome"
TAG_PROMOTION_ALIAS = "promotion.alias"
TAG_PROMOTION_REASONS = "promotion.reasons"
TAG_PROMOTION_PREVIOUS_VERSION = "promotion.previous_version"
TAG_PROMOTION_ACTOR = "promotion.actor"
TAG_PROMOTION_DECIDED_AT = "promotion.decided_at"
TAG_PROMOTION_DETAILS = "promotion.details"
# The holdout metrics of the registered candidate, one tag each: f"{TAG_METRIC_PREFIX}roc_auc".
TAG_METRIC_PREFIX = "metric."
REQUIRED_VERSION_TAGS = (TAG_SEMVER, TAG_DATA_DIGEST, TAG_GX_SUCCESS, TAG_TRAINING_RUN_ID, TAG_CODE_VERSION)

MODEL_ARTIFACT = "model"
# Files inside the logged model's directory (MLflow ``extra_files``), so they travel with every version.
PROFILE_FILE = "reference_profile.json"
REFERENCE_SAMPLE_ARTIFACT = "reference/sample.parquet"
EVALUATION_ARTIFACT = "evaluation/holdout.parquet"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking server and registry (a local SQLite file by default)."""
    if settings.tracking_uri.startswith("sqlite:///"):
        settings.ensure_dirs()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str) -> str:
    """The experiment's id; created with an explicit artifact location so artifacts never land in ./mlruns."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # created meanwhile by a concurrent run
        if experiment is None:
            raise
        return experiment.experiment_id


def model_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """All versions of a registered model, oldest first; empty when the model is not registered yet."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            return []
        raise
    return sorted(versions, key=lambda v: int(v.version))


@dataclass(frozen=True, order=True)
class SemVer:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> SemVer:
        parts = text.strip().lstrip("v").split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a semantic version: {text!r}")
        return cls(*(int(p) for p in parts))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def next_semver(existing: list[ModelVersion], *, signature_digest: str, data_digest: str, params_digest: str) -> SemVer:
    """MAJOR when the input schema changes, MINOR for new data, PATCH for the same data and parameters.

    The change is judged against the newest version; the number is bumped from the highest semver
    registered, so versions never repeat even after a rollback.
    """
    tagged = [v for v in existing if TAG_SEMVER in v.tags]
    if not tagged:
        return SemVer(1, 0, 0)
    newest = tagged[-1]
    highest = max(SemVer.parse(v.tags[TAG_SEMVER]) for v in tagged)
    if newest.tags.get(TAG_SIGNATURE_DIGEST) != signature_digest:
        return SemVer(highest.major + 1, 0, 0)
    same_data = newest.tags.get(TAG_DATA_DIGEST) == data_digest
    if same_data and newest.tags.get(TAG_PARAMS_DIGEST) == params_digest:
        return SemVer(highest.major, highest.minor, highest.patch + 1)
    return SemVer(highest.major, highest.minor + 1, 0)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the project (with ``-dirty`` for local changes), else the package version."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.CalledProcessError):
        try:
            return package_version("mlops-loop")
        except PackageNotFoundError:
            return "unknown"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def model_profile_path(model_dir: Path) -> Path:
    return model_dir / "extra_files" / PROFILE_FILE


# Serving mode: tags on the registered model, read by every service worker with the aliases in one registry call,
# so a switch reaches all workers on all machines within one poll and needs no restart or extra store.
TAG_SERVING_MODE = "serving.mode"
TAG_CHALLENGER_SHARE = "serving.challenger_share"
TAG_SERVING_SET_BY = "serving.set_by"
TAG_SERVING_SET_AT = "serving.set_at"
TAG_SERVING_REASON = "serving.reason"
SERVING_MODES = ("champion", "ab", "shadow")


@dataclass(frozen=True)
class ServingMode:
    mode: str = "champion"
    challenger_share: float = 0.0

    @classmethod
    def from_tags(cls, tags: dict[str, str], defaults: ExperimentSettings) -> ServingMode:
        """The mode the tags set, else the settings' defaults; a malformed tag falls back rather than break serving."""
        mode = tags.get(TAG_SERVING_MODE, defaults.mode)
        try:
            share = float(tags.get(TAG_CHALLENGER_SHARE, defaults.challenger_share))
        except ValueError:
            share = defaults.challenger_share
        if mode not in SERVING_MODES or not 0.0 <= share <= 1.0:
            return cls(defaults.mode, defaults.challenger_share)
        return cls(mode, share)


def set_serving_mode(client: MlflowClient, model: str, mode: str, challenger_share: float, *, actor: str, reason: str):
    """Switch every worker's serving mode at its next poll; who, when and why are kept beside the mode."""
    if mode not in SERVING_MODES:
        raise ValueError(f"mode must be one of {SERVING_MODES}, got {mode!r}")
    if not 0.0 <= challenger_share <= 1.0:
        raise ValueError(f"the challenger share must be between 0 and 1, got {challenger_share}")
    tags = {
        TAG_SERVING_MODE: mode,
        TAG_CHALLENGER_SHARE: str(challenger_share),
        TAG_SERVING_SET_BY: actor,
        TAG_SERVING_SET_AT: datetime.now(UTC).isoformat(),
        TAG_SERVING_REASON: reason[:4900],
    }
    for key, value in tags.items():
        client.set_registered_model_tag(model, key, value)
