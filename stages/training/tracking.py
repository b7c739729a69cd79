"""Logging a training run to MLflow and registering its model version."""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import mlflow.data
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema
from pydantic import BaseModel

from mlops_core import registry
from mlops_core.profile import DatasetProfile
from stages.data.loading import LoadedData, content_digest
from stages.data.validation import ValidationOutcome
from stages.training.candidates import Candidate, Split
from stages.training.figures import FIGURE_DIR, evaluation_figures
from stages.training.metrics import positive_truth

# Explicit requirements: inferring them costs seconds per model in a subprocess.
_RUNTIME_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "skops")
# Models are stored with skops (safe to load, unlike pickle). These are the types our own candidate
# pipelines contain beyond skops' default allowlist; we write these files ourselves, so we trust them.
TRUSTED_MODEL_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]


# The contexts the run's dataset inputs are logged under (MLflow shows them on the run and the dataset pages).
TRAINING_CONTEXT = "training"
HOLDOUT_CONTEXT = "holdout"
# MLflow stores dataset digests in 36 characters; the full window digest is tagged on each input.
_DATASET_DIGEST_CHARS = 32
# Rows the dataset schema's types are read from (missing values are looked up in every row).
_SCHEMA_PROBE_ROWS = 1_000
DATA_DOCS_ARTIFACT_DIR = "validation/data_docs"


class RegisteredVersion(BaseModel):
    """What the training flow returns: enough to find, compare and serve the new version."""

    name: str
    version: int
    semver: str
    run_id: str
    experiment_id: str
    model_uri: str
    data_digest: str
    primary_metric: str
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass
class LoggedRun:
    run_id: str
    experiment_id: str
    model_uri: str
    signature_digest: str
    params_digest: str


def pip_requirements() -> list[str]:
    return [f"{name}=={package_version(name)}" for name in _RUNTIME_PACKAGES]


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def signature_digest(signature: ModelSignature) -> str:
    """A digest of the model's input schema only: outputs may change without breaking callers."""
    return _digest(signature.inputs.to_dict())


def model_signature(candidate: Candidate, split: Split) -> ModelSignature:
    """Input schema from the training data, not from a small example, so it is stable across runs.

    Integer features are declared as doubles (a missing value arrives as a float), and a column is optional
    exactly when the training data had missing values in it (the pipeline imputes them).
    """
    example = split.x_holdout.head(200)
    integers = {c: "float64" for c in example.columns if pd.api.types.is_integer_dtype(example[c])}
    inferred = infer_signature(example.astype(integers), candidate.pipeline.predict(example))
    nullable = split.x_train.isna().any()
    inputs = Schema([ColSpec(col.type, col.name, required=not nullable[col.name]) for col in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def log_training_run(
    client: MlflowClient,
    *,
    experiment_id: str,
    data: LoadedData,
    validation: ValidationOutcome,
    split: Split,
    candidates: list[Candidate],
    best: Candidate,
    primary_metric: str,
    profile: DatasetProfile,
    reference_sample: pd.DataFrame,
    evaluation_rows: int,
    seed: int,
) -> LoggedRun:
    """One parent run with the chosen model, one child run per candidate for side-by-side comparison.

    An exception anywhere marks the run FAILED and registers nothing.
    """
    signature = model_signature(best, split)
    params_digest = _digest({"candidate": best.name, "params": best.params, "split": split.strategy})
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{data.digest[:8]}") as run:
        mlflow.set_tags(
            {
                registry.TAG_DATA_DIGEST: data.digest,
                registry.TAG_GX_SUCCESS: str(validation.success).lower(),
                registry.TAG_CODE_VERSION: registry.code_version(),
                "best_candidate": best.name,
            }
        )
        mlflow.log_params(
            {
                "rows": data.rows,
                "train_rows": len(split.x_train),
                "holdout_rows": len(split.x_holdout),
                "split": split.strategy,
                "files": len(data.files),
                "training_set_source": data.training_set_source,
                "rows_without_features": data.rows_without_features,
                "first_file": Path(data.files[0]).name,
                "last_file": Path(data.files[-1]).name,
                "features": len(data.feature_columns),
                "primary_metric": primary_metric,
                "target": data.target,
                "best_candidate": best.name,
                **{f"model.{k}": v for k, v in best.params.items()},
            }
        )
        mlflow.log_metrics({**best.metrics, "fit_seconds": best.fit_seconds})
        log_datasets(data, split)
        for candidate in candidates:
            with mlflow.start_run(experiment_id=experiment_id, run_name=candidate.name, nested=True):
                mlflow.log_params({"candidate": candidate.name, **candidate.params})
                mlflow.log_metrics({**candidate.metrics, "fit_seconds": candidate.fit_seconds})
        # On the parent run, the page the version links to: every candidate's curves, the chosen one first.
        truth = positive_truth(best.pipeline, split.y_holdout)
        ranked = [best, *(c for c in candidates if c.name != best.name)]
        for name, figure in evaluation_figures({c.name: (truth, c.holdout_probability) for c in ranked}).items():
            mlflow.log_figure(figure, f"{FIGURE_DIR}/{name}")
        mlflow.log_dict(validation.result, "validation/great_expectations_result.json")
        for page in data_docs_pages(validation):
            mlflow.log_artifact(str(page), DATA_DOCS_ARTIFACT_DIR)
        mlflow.log_dict(
            {"files": data.files, "digest": data.digest, "rows": data.rows, "columns": list(data.frame.columns)},
            "data/manifest.json",
        )
        with tempfile.TemporaryDirectory() as tmp:
            profile_path = Path(tmp) / registry.PROFILE_FILE
            profile_path.write_text(profile.model_dump_json(indent=1))
            sample_path = Path(tmp) / Path(registry.REFERENCE_SAMPLE_ARTIFACT).name
            reference_sample.to_parquet(sample_path, index=False)
            mlflow.log_artifact(str(sample_path), Path(registry.REFERENCE_SAMPLE_ARTIFACT).parent.as_posix())
            # The rows the promotion gate scores this version and the champion on, now or on a later request.
            holdout = split.x_holdout.assign(**{data.target: split.y_holdout})
            holdout_path = Path(tmp) / Path(registry.EVALUATION_ARTIFACT).name
            holdout.sample(n=min(evaluation_rows, len(holdout)), random_state=seed).to_parquet(
                holdout_path, index=False
            )
            mlflow.log_artifact(str(holdout_path), Path(registry.EVALUATION_ARTIFACT).parent.as_posix())
            mlflow.log_artifact(str(profile_path), "reference")
            info = mlflow.sklearn.log_model(
                sk_model=best.pipeline,
                name=registry.MODEL_ARTIFACT,
                signature=signature,
                input_example=split.x_holdout.head(3),
                pip_requirements=pip_requirements(),
                extra_files=[str(profile_path)],
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=TRUSTED_MODEL_TYPES,
            )
    return LoggedRun(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=info.model_uri,
        signature_digest=signature_digest(signature),
        params_digest=params_digest,
    )


def log_datasets(data: LoadedData, split: Split) -> None:
    """The training and holdout rows as MLflow dataset inputs of the active run, each with its own digest.

    The dataset's source is where the window was read from; each input is tagged with the whole window's
    digest, the one the registry's versions carry, so a version leads to the exact rows it learnt from.
    """
    files = [Path(f) for f in data.files]
    source = str(files[0] if len(files) == 1 else files[0].parent)
    window = f"{files[0].stem}..{files[-1].stem}" if len(files) > 1 else files[0].stem
    for context, x, y in (
        (TRAINING_CONTEXT, split.x_train, split.y_train),
        (HOLDOUT_CONTEXT, split.x_holdout, split.y_holdout),
    ):
        rows = x.assign(**{data.target: y})
        with warnings.catch_warnings():
            # MLflow registers two equal sources for local paths and hints at integer columns in the schema it
            # records; neither concerns a dataset that is only described, never loaded back through MLflow.
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted", UserWarning)
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
            dataset = mlflow.data.from_pandas(
                rows,
                source=source,
                targets=data.target,
                name=f"{window} {context}",
                digest=content_digest(rows)[:_DATASET_DIGEST_CHARS],
            )
            schema = dataset_schema(rows)
        if schema is not None:
            dataset.schema = schema  # what MLflow would infer itself, in a fraction of the time
        mlflow.log_input(dataset, context=context, tags={registry.TAG_DATA_DIGEST: data.digest})


def dataset_schema(rows: pd.DataFrame) -> Schema | None:
    """The schema MLflow infers for a dataset of ``rows``, from their first rows' types and each whole column's
    missing values; None (let MLflow look at every value) when a column has no value in those first rows.

    MLflow's own inference visits every value of text columns in Python: at a million rows, most of the time
    the run's logging took.
    """
    head = rows.head(_SCHEMA_PROBE_ROWS)
    if head.isna().all().any():
        return None
    nullable = rows.isna().any()
    inferred = infer_signature(head).inputs
    return Schema([ColSpec(col.type, col.name, required=not nullable[col.name]) for col in inferred.inputs])


def data_docs_pages(validation: ValidationOutcome) -> list[Path]:
    """The local HTML pages of this validation's Great Expectations Data Docs (sites on disk only)."""
    pages = [Path(unquote(urlparse(url).path)) for url in validation.data_docs if url.startswith("file://")]
    return [page for page in pages if page.is_file()]


def register_version(
    client: MlflowClient,
    *,
    model_name: str,
    run: LoggedRun,
    data: LoadedData,
    validation: ValidationOutcome,
    best: Candidate,
    primary_metric: str,
) -> RegisteredVersion:
    """Create the version with all its tags in one call, so no version ever exists untagged.

    The semantic version is read from the versions registered so far: callers that may race (two trainings at
    once) hold the audit log's lock of the model around this call, as ``stages.promotion.registrations`` does.
    """
    semver = registry.next_semver(
        registry.model_versions(client, model_name),
        signature_digest=run.signature_digest,
        data_digest=data.digest,
        params_digest=run.params_digest,
    )
    tags = _version_tags(semver, run, data, validation, best)
    version = mlflow.register_model(run.model_uri, model_name, tags=tags)
    client.set_tag(run.run_id, registry.TAG_SEMVER, str(semver))
    return RegisteredVersion(
        name=model_name,
        version=int(version.version),
        semver=str(semver),
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        model_uri=f"models:/{model_name}/{version.version}",
        data_digest=data.digest,
        primary_metric=primary_metric,
        metrics=best.metrics,
        tags=tags,
    )


def _version_tags(
    semver: registry.SemVer, run: LoggedRun, data: LoadedData, validation: ValidationOutcome, best: Candidate
) -> dict[str, str]:
    return {
        registry.TAG_SEMVER: str(semver),
        registry.TAG_DATA_DIGEST: data.digest,
        registry.TAG_GX_SUCCESS: str(validation.success).lower(),
        registry.TAG_TRAINING_RUN_ID: run.run_id,
        registry.TAG_CODE_VERSION: registry.code_version(),
        registry.TAG_SIGNATURE_DIGEST: run.signature_digest,
        registry.TAG_PARAMS_DIGEST: run.params_digest,
        registry.TAG_CANDIDATE: best.name,
        **{f"{registry.TAG_METRIC_PREFIX}{k}": f"{v:.6g}" for k, v in best.metrics.items()},
    }
