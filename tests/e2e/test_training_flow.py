"""The training flow end to end with the real libraries: Prefect's test harness, a SQLite MLflow store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.training import training_flow
from mlops_core import registry
from mlops_core.features import FeatureRepository
from mlops_core.settings import Settings, get_settings
from stages.data.generator import write_batches
from stages.data.loading import DataLoadError
from stages.data.validation import DataValidationError, create_suite

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _client(settings: Settings) -> MlflowClient:
    return registry.connect(settings)


def _registry_state(settings: Settings) -> list[tuple[int, dict]]:
    return [
        (int(v.version), dict(v.tags))
        for v in registry.model_versions(_client(settings), settings.mlflow.registered_model)
    ]


def test_registers_a_version_with_signature_tags_and_reference(settings, loan_batches):
    state = training_flow(return_state=True)
    result = state.result().registered

    client = _client(settings)
    version = client.get_model_version(settings.mlflow.registered_model, str(result.version))
    assert result.version == 1 and result.semver == "1.0.0"
    for tag in (*registry.REQUIRED_VERSION_TAGS, registry.TAG_SIGNATURE_DIGEST, registry.TAG_PARAMS_DIGEST):
        assert version.tags.get(tag), tag
    assert version.tags["gx_success"] == "true"
    assert version.tags["training_run_id"] == version.run_id == result.run_id

    run = client.get_run(result.run_id)
    assert run.data.tags["data_digest"] == result.data_digest
    assert run.data.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert run.data.params["split"].startswith("temporal")
    assert run.data.params["training_set_source"] == "feature_store:loan_default/applicant_features"
    assert run.data.params["rows_without_features"] == "0"
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert {c.data.params["candidate"] for c in children} == {"logistic_regression", "hist_gradient_boosting"}

    info = mlflow.models.get_model_info(result.model_uri)
    assert set(info.signature.inputs.input_names()) == set(_feature_columns(settings))
    model = mlflow.sklearn.load_model(result.model_uri)
    sample = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path=registry.REFERENCE_SAMPLE_ARTIFACT)
    )
    assert model.predict_proba(sample[info.signature.inputs.input_names()]).shape == (len(sample), 2)
    profile_dir = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    profile = json.loads(registry.model_profile_path(profile_dir).read_text())
    assert profile["data_digest"] == result.data_digest
    assert profile["columns"]["credit_score"]["kind"] == "numeric"
    gx_result = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/validation/great_expectations_result.json")
    assert gx_result["success"] is True
    _assert_mlflow_pages(client, settings, result, run, children)
    assert _flow_run_name(state) == f"train {datetime.now(UTC):%Y-%m-%d} window all"

    # The newest values of every applicant in the window are online for serving by entity.
    newest = pd.concat(pd.read_parquet(p) for p in settings.data_source.iterdir()).sort_values("application_ts")
    latest = newest.iloc[-1]
    online = FeatureRepository(settings).lookup(int(latest["applicant_id"]))
    assert online.as_of == latest["application_ts"].to_pydatetime()
    assert online.values["credit_score"] == pytest.approx(latest["credit_score"], nan_ok=True)


def _assert_mlflow_pages(client: MlflowClient, settings: Settings, result, run, children) -> None:
    """What a person finds on the MLflow pages of the run and the version: datasets, figures, docs, the card."""
    contexts = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in run.inputs.dataset_inputs
    }
    assert set(contexts) == {"training", "holdout"}
    training, holdout = contexts["training"], contexts["holdout"]
    assert training.digest != holdout.digest and len(training.digest) == 32
    assert json.loads(training.profile)["num_rows"] == int(run.data.params["train_rows"])
    assert json.loads(holdout.profile)["num_rows"] == int(run.data.params["holdout_rows"])
    assert str(settings.data_source) in training.source
    for dataset_input in run.inputs.dataset_inputs:
        assert {t.key: t.value for t in dataset_input.tags}[registry.TAG_DATA_DIGEST] == result.data_digest

    figures = {"roc_curve.png", "precision_recall_curve.png", "reliability_diagram.png"} | {
        f"confusion_matrix_{c.data.params['candidate']}.png" for c in children
    }
    assert {Path(a.path).name for a in client.list_artifacts(result.run_id, "figures")} == figures
    for name in figures:
        png = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path=f"figures/{name}"))
        assert png.read_bytes().startswith(b"\x89PNG"), name

    docs = client.list_artifacts(result.run_id, "validation/data_docs")
    assert docs and all(d.path.endswith(".html") for d in docs)

    card = mlflow.artifacts.load_text(f"runs:/{result.run_id}/model_card.md")
    for heading in (
        "## Intended use",
        "## Training data",
        "## Metrics on the holdout",
        "## Metrics per segment",
        "## Known limitations",
        "## The promotion gate's decision",
    ):
        assert heading in card, heading
    assert result.data_digest in card
    assert "| roc_auc **(primary)** |" in card and " to " in card.split("| roc_auc **(primary)** |")[1].split("\n")[0]
    for column in ("home_ownership", "loan_purpose", "employment_type", "region", "application_channel"):
        assert f"| {column} | " in card, column
    assert "| loan_purpose | debt_consolidation |" in card
    assert f"{result.name} v{result.version} (1.0.0) promoted to `champion`" in card

    version = client.get_model_version(settings.mlflow.registered_model, str(result.version))
    link = f"#/experiments/{result.experiment_id}/runs/{result.run_id}/artifacts/model_card.md"
    assert f"[Model card]({link})" in version.description
    assert result.data_digest[:12] in version.description and "promoted to `champion`" in version.description


def _flow_run_name(state) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(state.state_details.flow_run_id).name


def offline_files(settings: Settings) -> set[Path]:
    return set(FeatureRepository(settings).offline_dir.iterdir())


def _feature_columns(settings: Settings) -> list[str]:
    frame = pd.read_parquet(next(settings.data_source.iterdir()))
    return [
        c for c in frame.columns if c not in (settings.data.target, settings.data.entity_id, settings.data.timestamp)
    ]


def test_semver_follows_data_and_schema(settings, loan_batches):
    assert training_flow().registered.semver == "1.0.0"
    assert training_flow().registered.semver == "1.0.1"  # same data, same parameters
    write_batches(loan_batches, rows=1_000, days=1, start=date(2026, 11, 5), seed=7)
    assert training_flow().registered.semver == "1.1.0"  # new data
    assert training_flow(window_days=2).registered.semver == "1.2.0"  # another window


def _corrupt(directory: Path, how: str) -> None:
    newest = sorted(directory.iterdir())[-1]
    frame = pd.read_parquet(newest)
    if how == "missing-column":
        frame = frame.drop(columns=["debt_to_income"])
        for path in directory.iterdir():
            pd.read_parquet(path).drop(columns=["debt_to_income"]).to_parquet(path)
        return
    if how == "wrong-type":
        frame["interest_rate"] = (
            frame["interest_rate"].astype(str).replace({frame["interest_rate"].astype(str).iloc[0]: "n/a"})
        )
    elif how == "out-of-range":
        frame.loc[:3, "credit_score"] = 12_000.0
    elif how == "all-null":
        frame["credit_utilization"] = None
        for path in directory.iterdir():
            pd.read_parquet(path).assign(credit_utilization=None).to_parquet(path)
        return
    elif how == "empty-file":
        newest.write_bytes(b"")
        return
    elif how == "unreadable":
        newest.write_bytes(b"PAR1 garbage")
        return
    frame.to_parquet(newest)


@pytest.mark.parametrize(
    ("how", "error", "message"),
    [
        ("missing-column", DataValidationError, "expect_table_columns_to_match_set"),
        ("wrong-type", DataValidationError, "expect_column_values_to_be_in_type_list on .interest_rate."),
        ("out-of-range", DataValidationError, "expect_column_values_to_be_between on 'credit_score'"),
        ("all-null", DataValidationError, "expect_column_values_to_not_be_null on 'credit_utilization'"),
        ("empty-file", DataLoadError, "could not be read|is empty"),
        ("unreadable", DataLoadError, "could not be read"),
    ],
)
def test_bad_data_stops_the_flow_and_leaves_the_registry_as_it_was(settings, loan_batches, how, error, message):
    good = training_flow().registered
    before, offline_before = _registry_state(settings), offline_files(settings)
    _corrupt(loan_batches, how)
    with pytest.raises(error, match=message):
        training_flow()
    assert _registry_state(settings) == before
    assert good.version == 1
    assert offline_files(settings) == offline_before


def test_wrong_target_stops_at_load_with_nothing_registered(settings, loan_batches, monkeypatch):
    monkeypatch.setenv("MLOPS_DATA__TARGET", "default_flag")
    get_settings.cache_clear()
    with pytest.raises(DataLoadError, match="target column 'default_flag' not found"):
        training_flow()
    assert _registry_state(get_settings()) == []


def test_a_user_csv_with_its_own_target_and_suite(tmp_path, settings, monkeypatch):
    """Nothing is tied to the generator: scikit-learn's bundled breast cancer data as a plain CSV."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    csv = tmp_path / "breast_cancer.csv"
    frame.to_csv(csv, index=False)
    create_suite(settings.validation.context_dir, "breast_cancer", frame, target="target")
    monkeypatch.setenv("MLOPS_DATA__SOURCE", str(csv))
    monkeypatch.setenv("MLOPS_DATA__TARGET", "target")
    monkeypatch.setenv("MLOPS_DATA__ENTITY_ID", "")
    monkeypatch.setenv("MLOPS_DATA__TIMESTAMP", "")
    monkeypatch.setenv("MLOPS_VALIDATION__SUITE", "breast_cancer")
    monkeypatch.setenv("MLOPS_MLFLOW__REGISTERED_MODEL", "breast-cancer")
    get_settings.cache_clear()

    result = training_flow().registered

    assert result.name == "breast-cancer" and result.version == 1
    assert result.metrics["roc_auc"] > 0.95
    client = _client(get_settings())
    assert client.get_run(result.run_id).data.params["split"].startswith("stratified")
    model = mlflow.sklearn.load_model(result.model_uri)
    assert model.predict(frame.drop(columns=["target"]).head(10)).shape == (10,)


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_the_run_summary_and_the_gate_failure_are_left_as_artifacts(settings, loan_batches):
    result = training_flow().registered
    summary = max(_artifacts("training-summary"), key=lambda a: a.created)
    assert f"{result.name} v{result.version}" in summary.data
    assert "| hist_gradient_boosting" in summary.data and "| logistic_regression" in summary.data
    assert result.run_id in summary.data

    _corrupt(loan_batches, "out-of-range")
    with pytest.raises(DataValidationError):
        training_flow()
    failure = max(_artifacts("data-validation-failure"), key=lambda a: a.created)
    assert "expect_column_values_to_be_between | credit_score" in failure.data
    assert "Nothing was trained or registered" in failure.data


def test_a_failure_while_logging_marks_the_run_failed_and_registers_nothing(settings, loan_batches, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stages.training.tracking.mlflow.sklearn.log_model", disk_full)
    with pytest.raises(OSError, match="No space left"):
        training_flow()
    client = _client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    parents = client.search_runs([experiment.experiment_id], "attributes.run_name LIKE 'train-%'")
    assert [r.info.status for r in parents] == ["FAILED"]
    assert _registry_state(settings) == []
