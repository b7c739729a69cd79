"""The project CLI: what a user does by hand (``mlops --help``)."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlops_core.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Generate and inspect training data.")
gx_app = typer.Typer(no_args_is_help=True, help="The Great Expectations gate.")
app.add_typer(data_app, name="data")
app.add_typer(gx_app, name="gx")


@app.callback()
def _local_state() -> None:
    """Keep Prefect's local database under the project's state directory unless configured otherwise."""
    os.environ.setdefault("PREFECT_HOME", str(get_settings().prefect_home))


def _today() -> date:
    return datetime.now(UTC).date()


@data_app.command("generate")
def generate(
    rows: Annotated[int, typer.Option(min=1, help="Rows in total, spread evenly over the days.")] = 100_000,
    days: Annotated[int, typer.Option(min=1, help="Number of daily batch files.")] = 10,
    start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day; default: DAYS days before today.")
    ] = None,
    scenario: Annotated[str, typer.Option(help="none | covariate | concept")] = "none",
    strength: Annotated[float, typer.Option(min=0.0, help="Drift strength (1 = the intended scenario).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and dates give the same data.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Directory; default: the configured data source.")] = None,
) -> None:
    """Write dated Parquet batches of synthetic loan applications."""
    from mlops_core.generator import write_batches

    if scenario not in ("none", "covariate", "concept"):
        raise typer.BadParameter(f"unknown scenario {scenario!r}", param_hint="--scenario")
    first = start.date() if start else _today() - timedelta(days=days)
    directory = out or get_settings().data_source
    paths = write_batches(
        directory, rows=rows, days=days, start=first, seed=seed, scenario=scenario, drift_strength=strength
    )
    typer.echo(f"wrote {rows:,} rows in {len(paths)} batches to {directory} ({paths[0].name} .. {paths[-1].name})")


@gx_app.command("init-suite")
def init_suite(
    data: Annotated[Path, typer.Option(help="Trusted reference data: a batch directory or a CSV/Parquet file.")],
    suite: Annotated[str | None, typer.Option(help="Suite name; default: the configured suite.")] = None,
    min_rows: Annotated[int, typer.Option(min=1, help="Fewest rows a training window may have.")] = 100,
) -> None:
    """Create the expectation suite and its checkpoint once, from reference data; commit the result."""
    from mlops_core.data import load_window
    from mlops_core.validation import create_suite

    settings = get_settings()
    loaded = load_window(
        data, target=settings.data.target, entity_id=settings.data.entity_id, timestamp=settings.data.timestamp
    )
    path = create_suite(
        settings.validation.context_dir,
        suite or settings.validation.suite,
        loaded.frame,
        target=settings.data.target,
        min_rows=min_rows,
    )
    typer.echo(f"created {path} from {loaded.rows:,} rows")


@app.command()
def train(
    data_source: Annotated[str | None, typer.Option(help="Override the configured data source.")] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Train on the newest N daily batches.")] = None,
) -> None:
    """Run the training flow in this process (against the configured Prefect API, or an ephemeral one)."""
    from flows.training import training_flow

    version = training_flow(data_source=data_source, window_days=window_days)
    typer.echo(
        f"registered {version.name} version {version.version} (semver {version.semver}); "
        f"{version.primary_metric}={version.metrics[version.primary_metric]:.4f}"
    )


@app.command()
def demo(
    rows: Annotated[int, typer.Option(min=1000, help="Rows to generate when the data directory is empty.")] = 100_000,
    days: Annotated[int, typer.Option(min=1)] = 10,
) -> None:
    """The main job on embedded defaults: generate data if there is none, then train and register."""
    settings = get_settings()
    source = settings.data_source
    if not source.exists() or not any(source.iterdir()):
        generate(rows=rows, days=days, start=None, scenario="none", strength=1.0, seed=0, out=source)
    train(data_source=None, window_days=None)
    typer.echo(f"state: {settings.state_dir}  (MLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri})")


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (defaults overridden by MLOPS_* environment variables)."""
    typer.echo(json.dumps(get_settings().model_dump(mode="json"), indent=2))


if __name__ == "__main__":
    app()
