"""The training run's summary, left as a Prefect artifact: what a person reads in the UI after a run."""

from __future__ import annotations

from mlops_core import registry
from mlops_core.settings import Settings
from stages.data.loading import LoadedData
from stages.data.validation import ValidationOutcome
from stages.training.candidates import Candidate, Split
from stages.training.metrics import LOWER_IS_BETTER, METRIC_ORDER
from stages.training.tracking import RegisteredVersion


def mlflow_links(settings: Settings, version: RegisteredVersion) -> list[str]:
    """Links into the MLflow UI when a tracking server is configured, else the command that opens one."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        return [
            f"[MLflow run]({base}/#/experiments/{version.experiment_id}/runs/{version.run_id})",
            f"[Model version]({base}/#/models/{version.name}/versions/{version.version})",
        ]
    return [
        f"MLflow store: `{uri}`; browse it with "
        f"`mlflow ui --backend-store-uri {uri} --host 127.0.0.1` (run `{version.run_id}`)"
    ]


def _metrics_table(candidates: list[Candidate], best: str, primary: str) -> list[str]:
    header = "| candidate | " + " | ".join(METRIC_ORDER) + " | fit s |"
    rows = [header, "|" + "---|" * (len(METRIC_ORDER) + 2)]
    for c in sorted(candidates, key=lambda c: c.metrics[primary], reverse=primary not in LOWER_IS_BETTER):
        mark = " **(chosen)**" if c.name == best else ""
        cells = " | ".join(f"{c.metrics[m]:.4f}" for m in METRIC_ORDER)
        rows.append(f"| {c.name}{mark} | {cells} | {c.fit_seconds:.1f} |")
    return rows


def training_summary_markdown(
    version: RegisteredVersion,
    candidates: list[Candidate],
    validation: ValidationOutcome,
    data: LoadedData,
    split: Split,
    settings: Settings,
) -> str:
    best = version.tags.get(registry.TAG_CANDIDATE, "")
    lines = [
        f"# Training: {version.name} v{version.version} (semver {version.semver})",
        "",
        f"- Data: {data.rows:,} rows from {len(data.files)} file(s), digest `{data.digest[:16]}`",
        f"- Split: {split.strategy} ({len(split.x_train):,} train / {len(split.x_holdout):,} holdout)",
        f"- Validation: {validation.summary()}",
        *(f"- Data Docs: {url}" for url in validation.data_docs),
        f"- Primary metric: `{version.primary_metric}`",
        "",
        "## Candidates on the holdout",
        "",
        *_metrics_table(candidates, best, version.primary_metric),
        "",
        "## Links",
        "",
        *(f"- {link}" for link in mlflow_links(settings, version)),
        f"- Model URI: `{version.model_uri}`",
    ]
    return "\n".join(lines)


def run_artifact_link(settings: Settings, version: RegisteredVersion, artifact: str) -> str:
    """A link to a run artifact in the MLflow UI: absolute with a tracking server, else relative to the UI's page
    (the UI routes by URL fragment, so it opens in whichever `mlflow ui` shows the store)."""
    route = f"#/experiments/{version.experiment_id}/runs/{version.run_id}/artifacts/{artifact}"
    uri = settings.tracking_uri
    return f"{uri.rstrip('/')}/{route}" if uri.startswith(("http://", "https://")) else route
