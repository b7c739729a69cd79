"""The project CLI: what a user does by hand (``mlops --help``)."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.console import Console

from mlops_core.settings import BlueGreenSettings, ExperimentSettings, PromotionSettings, get_settings
from stages.data.generator import Scenario
from tooling.loop import DRIFT_STRENGTH, LOOP_DAYS, LOOP_ROWS_PER_DAY
from tooling.stack import Stack

USER_ERROR_EXIT = 2  # what click answers a usage error with; user errors found later answer the same
UNEXPECTED_EXIT = 1


class UserError(Exception):
    """A mistake the user can correct: shown as one line naming the problem and the fix, exit code 2."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem.rstrip('.')}; {fix}")


def _choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """An enum of the allowed values, so click refuses anything else while parsing, before a command runs."""
    return enum.Enum(name, [(value, value) for value in values], type=str)  # type: ignore[return-value]


# The choices come from the settings' own Literal types and the generator's, so they are defined once.
ServingModeChoice = _choices("ServingModeChoice", get_args(ExperimentSettings.model_fields["mode"].annotation))
AliasChoice = _choices("AliasChoice", get_args(PromotionSettings.model_fields["mode"].annotation))
RouterChoice = _choices("RouterChoice", get_args(BlueGreenSettings.model_fields["router"].annotation))
ScenarioChoice = _choices("ScenarioChoice", get_args(Scenario))
ServerChoice = _choices("ServerChoice", Stack.ORDER)
NO_DRIFT = ScenarioChoice("none")


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


class _App(typer.Typer):
    """Runs the commands and turns every error into one line on stderr; ``mlops --debug`` shows tracebacks."""

    debug = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().__call__(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(130)
        except typer.TyperException as exc:  # options and arguments: unknown, missing, not one of the choices
            if type(exc).__name__ == "NoArgsIsHelpError":  # typer has printed the help already (its own test, too)
                sys.exit(USER_ERROR_EXIT)
            if self.debug:
                raise
            command = exc.ctx.command_path if getattr(exc, "ctx", None) else "mlops"
            # typer words a refused choice as pydantic does ("Value error, 'x' is not one of ..."); the prefix says nothing.
            message = _one_line(exc.format_message()).replace("Value error, ", "").rstrip(".")
            typer.echo(f"error: {message}; see '{command} --help'", err=True)
            sys.exit(USER_ERROR_EXIT)
        except UserError as exc:
            if self.debug:
                raise
            typer.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(USER_ERROR_EXIT)
        except Exception as exc:
            if self.debug:
                raise
            first = _one_line(str(exc).split("\n", 1)[0]) or "no message"
            typer.echo(f"error: {type(exc).__name__}: {first} (run 'mlops --debug ...' for the traceback)", err=True)
            sys.exit(UNEXPECTED_EXIT)
        sys.exit(result if isinstance(result, int) else 0)


app = _App(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Generate and inspect training data.")
gx_app = typer.Typer(no_args_is_help=True, help="The Great Expectations gate.")
app.add_typer(data_app, name="data")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the prediction service (stored only as hashes).")
app.add_typer(gx_app, name="gx")
app.add_typer(keys_app, name="keys")
stack_app = typer.Typer(no_args_is_help=True, help="The local stack: Prefect server and worker, MLflow, the service.")
app.add_typer(stack_app, name="stack")
features_app = typer.Typer(no_args_is_help=True, help="The feature store: definitions, online values, updates.")
app.add_typer(features_app, name="features")
db_app = typer.Typer(no_args_is_help=True, help="The project's own stores: logs, keys, audit log, monitoring history.")
app.add_typer(db_app, name="db")


@app.callback()
def _local_state(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Use the local stack when it is up (its Prefect API and MLflow server), else the embedded defaults:
    Prefect's temporary server with its database under the state directory (its start-up timeout is in
    mlops_core/library_defaults.py). What the environment sets already is kept."""
    app.debug = debug
    settings = get_settings()
    stack_environment = Stack(settings).client_environment()
    for name, value in stack_environment.items():
        os.environ.setdefault(name, value)
    if stack_environment:
        get_settings.cache_clear()
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))


def _prefect_home() -> None:
    """Create the state directory's Prefect home before a flow runs: Prefect's temporary server makes only the
    last level of it, and a new MLOPS_STATE_DIR otherwise ends in "unable to open database file"."""
    get_settings().prefect_home.mkdir(parents=True, exist_ok=True)


@contextmanager
def _running(what: str) -> Iterator[None]:
    """A spinner on a terminal while a flow runs, with where to follow it; Prefect's own log line
    "View at <url>" names the run itself when a Prefect server is in use."""
    ui = os.environ.get("PREFECT_API_URL", "").removesuffix("/api")
    where = f" (Prefect UI: {ui}/runs)" if ui else ""
    console = Console(stderr=True)
    if not console.is_terminal:
        typer.echo(f"{what}{where}", err=True)
        yield
        return
    with console.status(f"{what}{where}"):
        yield


def _today() -> date:
    return datetime.now(UTC).date()


@data_app.command("generate")
def generate(
    rows: Annotated[int, typer.Option(min=1, help="Rows in total, spread evenly over the days.")] = 100_000,
    days: Annotated[int, typer.Option(min=1, help="Number of daily batch files.")] = 10,
    start: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day; default: DAYS days before today.")
    ] = None,
    scenario: Annotated[ScenarioChoice, typer.Option(help="How the data drifts.")] = NO_DRIFT,
    strength: Annotated[float, typer.Option(min=0.0, help="Drift strength (1 = the intended scenario).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and dates give the same data.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Directory; default: the configured data source.")] = None,
) -> None:
    """Write dated Parquet batches of synthetic loan applications."""
    from stages.data.generator import write_batches

    first = start.date() if start else _today() - timedelta(days=days)
    directory = out or get_settings().data_source
    paths = write_batches(
        directory, rows=rows, days=days, start=first, seed=seed, scenario=scenario.value, drift_strength=strength
    )
    typer.echo(f"wrote {rows:,} rows in {len(paths)} batches to {directory} ({paths[0].name} .. {paths[-1].name})")


@gx_app.command("init-suite")
def init_suite(
    data: Annotated[Path, typer.Option(help="Trusted reference data: a batch directory or a CSV/Parquet file.")],
    suite: Annotated[str | None, typer.Option(help="Suite name; default: the configured suite.")] = None,
    target: Annotated[
        str | None, typer.Option(help="The label column; default: the configured one (MLOPS_DATA__TARGET).")
    ] = None,
    min_rows: Annotated[int, typer.Option(min=1, help="Fewest rows a training window may have.")] = 100,
) -> None:
    """Create the expectation suite and its checkpoint once, from reference data; commit the result."""
    from stages.data.loading import DataLoadError, load_window
    from stages.data.validation import create_suite

    if not data.exists():
        raise UserError(f"no file or directory at {data}", "pass --data a CSV or Parquet file or a batch directory")
    settings = get_settings()
    target = target or settings.data.target
    try:
        loaded = load_window(data, target=target, entity_id=settings.data.entity_id, timestamp=settings.data.timestamp)
    except DataLoadError as exc:
        raise UserError(str(exc), "name the label column with --target, or point --data at other data") from exc
    path = create_suite(
        settings.validation.context_dir,
        suite or settings.validation.suite,
        loaded.frame,
        target=target,
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

    _prefect_home()
    with _running("training flow running"):
        outcome = training_flow(data_source=data_source, window_days=window_days)
    version = outcome.registered
    typer.echo(
        f"registered {version.name} version {version.version} (semver {version.semver}); "
        f"{version.primary_metric}={version.metrics[version.primary_metric]:.4f}"
    )
    _echo_decision(outcome.promotion)


def _echo_decision(decision) -> None:
    state = f"now {decision.alias}" if decision.moved else f"not moved to {decision.alias}"
    typer.echo(f"{decision.outcome}: version {decision.version} ({decision.semver}) {state}")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")


@app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Registered model version to promote.")],
    force: Annotated[bool, typer.Option(help="Skip the metric gate (recorded as forced, with --reason).")] = False,
    reason: Annotated[str, typer.Option(help="Why; required with --force.")] = "",
    by: Annotated[str | None, typer.Option(help="Who asks; default: the current user.")] = None,
    alias: Annotated[AliasChoice | None, typer.Option(help="Alias to move; default: from settings.")] = None,
) -> None:
    """Run the promotion flow: gate VERSION against the champion and move the alias when it passes."""
    from flows.promotion import promotion_flow
    from stages.promotion.aliases import PromotionError

    _prefect_home()
    try:
        with _running(f"promotion flow running for version {version}"):
            decision = promotion_flow(
                version=version, force=force, reason=reason, requested_by=by, alias=alias.value if alias else None
            )
    except PromotionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _echo_decision(decision)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why the champion is rolled back (recorded).")],
    to: Annotated[int | None, typer.Option(help="Version to roll back to; default: the previous champion.")] = None,
    by: Annotated[str | None, typer.Option(help="Who asks; default: the current user.")] = None,
) -> None:
    """Run the rollback flow: champion goes back to the previous champion from the audit log."""
    from flows.rollback import rollback_flow
    from stages.promotion.aliases import PromotionError

    _prefect_home()
    try:
        with _running("rollback flow running"):
            decision = rollback_flow(reason=reason, to_version=to, requested_by=by)
    except PromotionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _echo_decision(decision)


@app.command()
def history() -> None:
    """Print the alias audit log of the registered model, oldest first."""
    from stages.promotion.audit import AuditLog

    settings = get_settings()
    for move in AuditLog(settings.audit_url).history(settings.mlflow.registered_model):
        forced = " (forced)" if move.forced else ""
        typer.echo(
            f"{move.moved_at:%Y-%m-%d %H:%M:%S} {move.alias:<10} {move.from_version or '-'} -> {move.to_version or '-'} "
            f"{move.action}{forced} by {move.actor}: {move.reason}"
        )


@app.command("serving-mode")
def serving_mode(
    mode: Annotated[
        ServingModeChoice, typer.Argument(help="Who answers: the champion alone, an A/B split, or shadow.")
    ],
    share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Share of A/B callers the challenger answers.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept beside the mode).")] = "",
) -> None:
    """Switch how the service uses the challenger; every worker follows at its next registry poll, no restart."""
    from mlops_core import registry
    from stages.promotion.aliases import current_actor

    settings = get_settings()
    share = settings.experiment.challenger_share if share is None else share
    client = registry.connect(settings)
    try:
        registry.set_serving_mode(
            client, settings.mlflow.registered_model, mode.value, share, actor=current_actor(), reason=reason
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"serving mode {mode.value} (challenger share {share}) for {settings.mlflow.registered_model}")


@app.command()
def monitor(
    window_hours: Annotated[
        float | None, typer.Option(min=0.01, help="Hours of predictions to check; default: since the last check.")
    ] = None,
) -> None:
    """Run the monitoring check now (the flow `monitoring/monitor` runs hourly) and print its verdict."""
    from flows.monitoring import monitoring_flow

    _prefect_home()
    with _running("monitoring flow running"):
        record = monitoring_flow(window_hours=window_hours)
    typer.echo(f"{record.status}: {record.reason}")
    if record.drift_share is not None:
        typer.echo(f"  drift share {record.drift_share:.2f}")
    if record.quality_drop is not None:
        typer.echo(f"  quality drop {record.quality_drop:.4f}")
    if record.triggered:
        typer.echo(
            f"  retraining requested (episode {record.episode}, event {record.retraining_event_id}); "
            "the training/retrain deployment's trigger starts it"
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
        generate(rows=rows, days=days, start=None, scenario=NO_DRIFT, strength=1.0, seed=0, out=source)
    train(data_source=None, window_days=None)
    typer.echo(f"state: {settings.state_dir}  (MLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri})")


@app.command()
def loop(
    rows_per_day: Annotated[int, typer.Option(min=1000, help="Rows of each new daily batch.")] = LOOP_ROWS_PER_DAY,
    days: Annotated[int, typer.Option(min=1, help="New daily batches of normal data to train on.")] = LOOP_DAYS,
    normal_requests: Annotated[int, typer.Option(min=1, help="Requests of normal traffic.")] = 300,
    drift_requests: Annotated[int, typer.Option(min=1, help="Requests of drifted traffic (min_rows applies).")] = 600,
    drift_strength: Annotated[
        float, typer.Option(min=0.1, help="Shift of the drifted data: features and default relation (1 = as intended).")
    ] = DRIFT_STRENGTH,
    stop: Annotated[bool, typer.Option(help="Stop the stack at the end (default: leave it up).")] = False,
) -> None:
    """The whole loop on the local stack: train, serve, drift, monitor, retrain, switch; prints what happened."""
    from tooling.loop import describe, run_loop

    try:
        summary = run_loop(
            rows_per_day=rows_per_day, days=days, normal_requests=normal_requests, drift_requests=drift_requests,
            drift_strength=drift_strength, echo=typer.echo,
        )  # fmt: skip
        for line in describe(summary):
            typer.echo(line)
    finally:
        if stop:
            typer.echo(f"stopped {', '.join(Stack(get_settings()).down()) or 'nothing'}")


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who or what uses the key, for the listing.")],
    admin: Annotated[bool, typer.Option(help="Also allow the admin endpoints (model reload).")] = False,
    rate_limit: Annotated[
        int | None, typer.Option(min=1, help="Requests per rate window for this key; default: the service's.")
    ] = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from mlops_core.api_keys import ADMIN, PREDICT, KeyStore

    scope = ADMIN if admin else PREDICT
    key_id, key = KeyStore(get_settings().keys_url).create(name, scope=scope, rate_limit=rate_limit)
    typer.echo(f"key id: {key_id}", err=True)
    typer.echo(key)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key id shown by create and list.")]) -> None:
    """Revoke a key; running services refuse it within seconds."""
    from mlops_core.api_keys import KeyStore

    if not KeyStore(get_settings().keys_url).revoke(key_id):
        raise UserError(f"no active key with id {key_id!r}", "'mlops keys list' shows the key ids")
    typer.echo(f"revoked {key_id}")


@keys_app.command("list")
def list_keys() -> None:
    """Key ids, names and dates (never the keys)."""
    from mlops_core.api_keys import KeyStore

    for record in KeyStore(get_settings().keys_url).list():
        state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
        limit = f"limit {record.rate_limit}" if record.rate_limit else "default limit"
        typer.echo(f"{record.key_id}  {record.name}  {record.scope}  {limit}  created {record.created_at}  {state}")


def _stack() -> Stack:
    return Stack(get_settings())


@stack_app.command("up")
def stack_up() -> None:
    """Start what is not running yet, wait until each server is healthy and print the URLs."""
    from tooling.stack import StackError

    stack = _stack()
    try:
        stack.up(progress=lambda message: typer.echo(f"  {message}", err=True))
    except StackError as exc:
        typer.echo(f"stack not started: {exc}", err=True)
        raise typer.Exit(1) from None
    stack_status()


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the servers `stack up` started (saved pids, by process group)."""
    stopped = _stack().down()
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("status")
def stack_status() -> None:
    """Which servers of the local stack run, with their URLs, pids and logs."""
    stack = _stack()
    for name, record in stack.status().items():
        if record:
            typer.echo(f"{name:<15} up    {record.url:<45} pid {record.pid:<8} log {record.log}")
        else:
            typer.echo(f"{name:<15} down")


@stack_app.command("logs")
def stack_logs(
    server: Annotated[ServerChoice | None, typer.Argument(help="One server; default: all of them.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines from the end of each log.")] = 40,
) -> None:
    """Print the end of the servers' logs (<state>/stack/logs/), each line prefixed by its server."""
    from tooling.stack import follow_logs, last_lines

    stack = _stack()
    names = [server.value] if server else list(stack.ORDER)
    logs = {name: stack.log_file(name) for name in names if stack.log_file(name).exists()}
    if not logs:
        raise UserError(f"no log of {', '.join(names)} under {stack.dir / 'logs'}", "start the stack: mlops stack up")
    for name, log in logs.items():
        for line in last_lines(log, lines):
            typer.echo(f"{name:<15}| {line}")
    if follow:
        for name, line in follow_logs(logs):
            typer.echo(f"{name:<15}| {line}")


def _repository():
    from mlops_core.features import FeatureRepository

    return FeatureRepository(get_settings())


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@features_app.command("apply")
def features_apply() -> None:
    """Register the definitions of feature_repo/ in the store (idempotent)."""
    from mlops_core.features import FeatureStoreError

    try:
        _repository().apply()
    except FeatureStoreError as exc:
        raise _fail(exc) from exc
    typer.echo(f"applied {get_settings().features.view} to {get_settings().feature_store_dir}")


@features_app.command("materialize")
def features_materialize(
    since: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="Rows stamped from this day on.")],
) -> None:
    """Load the newest offline value per entity, stamped since SINCE, into the online store."""
    from mlops_core.features import FeatureStoreError
    from stages.features.training_sets import materialize

    try:
        materialize(_repository(), since.replace(tzinfo=UTC))
    except FeatureStoreError as exc:
        raise _fail(exc) from exc
    typer.echo("materialised")


@features_app.command("get")
def features_get(entity_id: Annotated[int, typer.Argument(help="The entity id, e.g. an applicant_id.")]) -> None:
    """Print an entity's newest online values as JSON."""
    from mlops_core.features import FeatureStoreError, UnknownEntity

    try:
        found = _repository().lookup(entity_id)
    except UnknownEntity as exc:
        raise UserError(str(exc), "check the id, or store its values with 'mlops features update'") from exc
    except FeatureStoreError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps({"entity_id": entity_id, "as_of": str(found.as_of), **found.values}, default=str))


@features_app.command("update")
def features_update(
    entity_id: Annotated[int, typer.Argument(help="The entity id, e.g. an applicant_id.")],
    values: Annotated[list[str], typer.Option("--set", help="NAME=VALUE, repeatable; null for a missing value.")],
) -> None:
    """Record new values for an entity: online at once (every cache drops it), offline for later training."""
    from mlops_core.features import FeatureStoreError, InvalidFeatures

    try:
        updated = _repository().update(entity_id, parse_assignments(values))
    except (InvalidFeatures, ValueError) as exc:
        raise UserError(str(exc), "give --set NAME=VALUE with a feature name and a value of its type") from exc
    except FeatureStoreError as exc:
        raise _fail(exc) from exc
    typer.echo(f"updated {entity_id} as of {updated.as_of.isoformat()}")


def parse_assignments(assignments: list[str]) -> dict[str, object]:
    """``name=value`` pairs; values are JSON where they parse (numbers, null), text otherwise."""
    parsed: dict[str, object] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            parsed[name] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[name] = raw
    return parsed


@db_app.command("upgrade")
def upgrade_stores() -> None:
    """Upgrade every configured store to its newest schema (processes also do it when they open a store)."""
    from mlops_core import migrations

    for store, url in migrations.configured(get_settings()):
        before = migrations.current(url, store)
        after = migrations.upgrade(url, store)
        change = f"{before or 'new'} -> {after}" if before != after else f"at {after}"
        typer.echo(f"{store.name}: {change}  ({migrations.display(url)})")


bluegreen_app = typer.Typer(
    no_args_is_help=True, help="Blue-green: stage a version on the idle colour, check it, then move traffic and alias."
)
app.add_typer(bluegreen_app, name="bluegreen")
RouterOption = Annotated[
    RouterChoice | None, typer.Option("--router", help="Where the colours run; default: MLOPS_BLUEGREEN__ROUTER.")
]


def _router(choice: RouterChoice | None):
    from tooling.traffic import router_for

    settings = get_settings()
    if choice is not None:
        bluegreen = settings.bluegreen.model_copy(update={"router": choice.value})
        settings = settings.model_copy(update={"bluegreen": bluegreen})
    return settings, router_for(settings)


def _run_switch(router_name: RouterChoice | None, version: int | None, reason: str, by: str | None) -> None:
    from tooling.bluegreen import switch
    from tooling.traffic import SwitchError

    settings, router = _router(router_name)
    try:
        report = switch(
            settings, router, version=version, reason=reason, actor=by,
            progress=lambda message: typer.echo(f"  {message}", err=True),
        )  # fmt: skip
    except SwitchError as exc:
        first_line = str(exc).splitlines()[0]
        typer.echo(f"switch refused, traffic and alias unchanged: {first_line}", err=True)
        raise typer.Exit(2) from None
    for note in report.notes:
        typer.echo(f"  {note}", err=True)
    champion = (
        f"champion {report.previous_champion or '-'} -> {report.version} (audit row {report.audit_id})"
        if report.audit_id
        else f"champion already {report.version}"
    )
    smoke = report.smoke
    typer.echo(
        f"{report.action}: {report.colour} live with version {report.version} (was {report.previous_colour or '-'}); "
        f"{champion}; smoke {smoke.requests} requests p50 {smoke.p50_ms} ms p95 {smoke.p95_ms} ms"
    )


@bluegreen_app.command("switch")
def bluegreen_switch(
    version: Annotated[int, typer.Argument(min=1, help="Registered model version to stage on the idle colour.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the alias audit log).")],
    by: Annotated[str | None, typer.Option(help="Who asks; default: the current user.")] = None,
    router: RouterOption = None,
) -> None:
    """Pin the idle colour to VERSION, wait until it serves it, smoke it, then move traffic and champion to it.

    A failed check exits with code 2 and the reason; traffic and the champion alias stay where they were.
    """
    _run_switch(router, version, reason, by)


@bluegreen_app.command("rollback")
def bluegreen_rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in the alias audit log).")],
    by: Annotated[str | None, typer.Option(help="Who asks; default: the current user.")] = None,
    router: RouterOption = None,
) -> None:
    """Switch back: the idle colour, still pinned to the previous version, is checked and gets traffic and champion."""
    _run_switch(router, None, reason, by)


@bluegreen_app.command("status")
def bluegreen_status(router: RouterOption = None) -> None:
    """The live colour (and locally its URL) and each colour's pin."""
    from tooling.traffic import COLOURS, SwitchError

    _, chosen = _router(router)
    try:
        live = chosen.live()
        pins = {colour: chosen.pinned(colour) for colour in COLOURS}
    except SwitchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    url = f" {chosen.url(live)}" if live and chosen.kind == "local" else ""
    typer.echo(f"live: {live or '-'}{url}")
    for colour, pin in pins.items():
        typer.echo(f"{colour:<6} {'pinned to ' + pin if pin else 'not running'}")


@bluegreen_app.command("down")
def bluegreen_down() -> None:
    """Stop the local colours started by `mlops bluegreen switch` (the live record goes with them)."""
    from tooling.traffic import LocalRouter

    stopped = LocalRouter(get_settings()).down()
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "no colour was running")


@app.command("settings")
def show_settings(
    as_json: Annotated[bool, typer.Option("--json", help="The effective settings as one JSON document.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="The table of defaults of docs/settings.md.")] = False,
) -> None:
    """Print each effective setting with its environment variable and description (MLOPS_* override the defaults)."""
    from tooling import settings_doc

    if as_json:
        typer.echo(json.dumps(get_settings().model_dump(mode="json"), indent=2))
    elif markdown:
        typer.echo(settings_doc.as_markdown(), nl=False)
    else:
        typer.echo(settings_doc.as_text(get_settings()))


if __name__ == "__main__":
    app()
