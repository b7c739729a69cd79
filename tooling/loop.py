"""The whole production loop in one command (``mlops loop``), against the real servers of the local stack.

Every step goes through the interfaces a user has: deployments run by the worker, HTTP calls to the service,
the registry and the monitoring history read back. Nothing is called in-process that the stack would do,
so what the summary reports is what the stack did.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlops_core.settings import Settings, get_settings
from tooling import processes
from tooling.stack import Stack

if TYPE_CHECKING:
    from stages.data.generator import Scenario

FLOW_RUN_TIMEOUT = 300
TRIGGER_TIMEOUT = 60  # the Prefect server's trigger service acts on an event within seconds
SWITCH_TIMEOUT = 120
STREAM_LIMIT = 20_000  # requests of the background stream at most, whatever happens
STREAM_PAUSE = 0.05  # about 20 requests a second: steady, and a small share of the prediction log
CONSECUTIVE = 20  # responses in a row from the new version before the switch counts as done


@dataclass
class LoopSummary:
    """What happened, for the printout and for tests (saved as ``<state>/stack/last_loop.json``)."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    champion_before: int | None = None
    champion_after: int | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    alias_moves: list[dict[str, Any]] = field(default_factory=list)
    retraining_run: str | None = None
    retraining_run_name: str | None = None
    retraining_trigger: str | None = None  # the automation (prefect.yaml's trigger) that started it
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    served_versions: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Steps:
    """Prints each step with the time since the start, so a long run shows where it is."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo, self.started = echo, time.monotonic()

    def __call__(self, message: str) -> None:
        self.echo(f"[{time.monotonic() - self.started:6.1f}s] {message}")


# The drifted world: applicant features move and the default relation changes with them, so the version trained
# before the shift is measurably worse on the new days and the retraining has something to win. After a
# covariate shift alone the relation holds and the old version often scores as well: the gate then rightly keeps
# it, which left the loop's switch to the calendar date the data starts on (kept on 3 and 15 of 40 dates with
# 10,000 and 5,000 rows a day; with both shifts at strength 1 promoted on all 40: benchmarks/loop_gate.py).
DRIFT_SCENARIO: Scenario = "covariate_and_concept"
# `mlops loop` defaults: the normal days trained on first, their size, and the strength of the drift.
LOOP_DAYS = 5
LOOP_ROWS_PER_DAY = 10_000
DRIFT_STRENGTH = 1.0


def _scenario(strength: float, scenario: Scenario = DRIFT_SCENARIO) -> dict[str, Any]:
    """The generator's arguments for a world shifted by ``strength`` (0: the original distribution)."""
    return {"scenario": scenario, "drift_strength": strength} if strength else {"scenario": "none"}


def recorded_world(recorded: dict[str, Any]) -> dict[str, Any]:
    """The world the last loop left (``loop_world.json``, empty before the first loop); a file written before it
    named its scenario recorded a covariate shift."""
    return _scenario(recorded.get("drift_strength", 0.0), recorded.get("scenario", "covariate"))


def drifted_world(world: dict[str, Any], drift_strength: float) -> dict[str, Any]:
    """The world after the drift: a shifted world goes back to the original one, the original one shifts."""
    return _scenario(0.0 if world["scenario"] != "none" else drift_strength)


def _describe(world: dict[str, Any]) -> str:
    return f"{world['scenario']} shift {world['drift_strength']}" if world["scenario"] != "none" else "no shift"


def _feature_rows(day: date, rows: int, world: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Generated applications as a client sends them: features only, JSON types, missing values as null."""
    from stages.data.generator import generate_day

    settings = get_settings()
    frame = generate_day(day, rows, seed=seed, **world)
    frame = frame.drop(
        columns=[c for c in (settings.data.target, settings.data.entity_id, settings.data.timestamp) if c]
    )
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


class Traffic:
    """Requests to /predict with one key, counting answers per phase and the model versions that answered."""

    def __init__(self, url: str, key: str, summary: LoopSummary) -> None:
        self.client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30)
        self.summary = summary
        self.lock = threading.Lock()
        self.recent: list[int] = []

    def send(self, phase: str, row: dict[str, Any]) -> int | None:
        try:
            response = self.client.post("/predict", json=row)
            version = int(response.json()["model_version"]) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            version = None
        with self.lock:
            self.summary.requests[phase] = self.summary.requests.get(phase, 0) + 1
            if version is None:
                self.summary.failures[phase] = self.summary.failures.get(phase, 0) + 1
            else:
                self.summary.served_versions[str(version)] = self.summary.served_versions.get(str(version), 0) + 1
                self.recent = [*self.recent[-(CONSECUTIVE - 1) :], version]
        return version

    def burst(self, phase: str, rows: list[dict[str, Any]], concurrency: int = 4) -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda row: self.send(phase, row), rows))

    def stream(self, rows: list[dict[str, Any]], stop: threading.Event) -> threading.Thread:
        """A steady background stream (bounded by STREAM_LIMIT) until ``stop`` is set."""

        def run() -> None:
            for row in itertools.islice(itertools.cycle(rows), STREAM_LIMIT):
                if stop.is_set():
                    return
                self.send("during switch", row)
                time.sleep(STREAM_PAUSE)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def serves_only(self, version: int) -> bool:
        with self.lock:
            return len(self.recent) == CONSECUTIVE and set(self.recent) == {version}


def _every_worker_serves(url: str, version: int, workers: int) -> Callable[[], bool]:
    """A check for ``processes.poll``: true once ``workers`` distinct worker processes answered /readyz with
    ``version``. A worker still loading a model accepts few connections, so answers in a row from the others
    do not show that it is done."""
    served: dict[int, int | None] = {}

    def check() -> bool:
        body = httpx.get(f"{url}/readyz", timeout=5).json()
        served[body["worker"]] = int(body["model"]["version"]) if body.get("model") else None
        return len(served) >= workers and all(v == version for v in served.values())

    return check


def _run_deployment(name: str, parameters: dict[str, Any] | None = None) -> str:
    from prefect.deployments import run_deployment

    return str(run_deployment(name, parameters=parameters or {}, timeout=0, as_subflow=False).id)


def _wait_flow_run(run_id: str, what: str, timeout: float = FLOW_RUN_TIMEOUT):
    """The flow run once final; a run that did not complete stops the loop with its state."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = processes.poll(
            lambda: (r := client.read_flow_run(run_id)).state is not None and r.state.is_final() and r,
            timeout=timeout,
            what=f"{what} flow run {run_id} finished",
            interval=1,
        )
    if not run.state.is_completed():
        raise RuntimeError(f"{what} flow run {run.name} ended {run.state.type.value}: {run.state.message}")
    return run


def _deployment_parameters(name: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return dict(client.read_deployment_by_name(name).parameters or {})


def _version_facts(settings: Settings) -> list[dict[str, Any]]:
    from mlops_core import registry

    client = registry.connect(settings)
    return [
        {
            "version": int(v.version),
            "semver": v.tags.get(registry.TAG_SEMVER),
            "decision": v.tags.get(registry.TAG_PROMOTION_OUTCOME),
            "reasons": v.tags.get(registry.TAG_PROMOTION_REASONS),
            "roc_auc": v.tags.get(f"{registry.TAG_METRIC_PREFIX}roc_auc"),
        }
        for v in sorted(registry.model_versions(client, settings.mlflow.registered_model), key=lambda v: int(v.version))
    ]


def _alias_moves(settings: Settings) -> list[dict[str, Any]]:
    """The audit log of the alias moves, oldest first (MLflow keeps no alias history)."""
    from stages.promotion.audit import AuditLog

    return [
        {"alias": m.alias, "from": m.from_version, "to": m.to_version, "action": m.action, "actor": m.actor}
        for m in AuditLog(settings.audit_url).history(settings.mlflow.registered_model)
    ]


def _champion(settings: Settings) -> int | None:
    from mlops_core import registry
    from stages.promotion.aliases import alias_version

    version = alias_version(registry.connect(settings), settings.mlflow.registered_model, "champion")
    return int(version.version) if version else None


def _last_check(settings: Settings, since: datetime) -> dict[str, Any]:
    from stages.monitoring.history import CheckHistory

    record = CheckHistory(settings.monitoring_state_url).last(settings.mlflow.registered_model)
    if record is None or record.checked_at.replace(tzinfo=record.checked_at.tzinfo or UTC) < since:
        return {"status": "skipped", "reason": "no completed check (see the monitoring flow run's log)"}
    return record.model_dump(mode="json")


def _retraining_requested_since(settings: Settings, since: datetime) -> bool:
    """Whether a check since ``since`` asked for retraining: the deployment's hourly schedule may have checked the
    drifted traffic first, and then the loop's own check only reports that its episode already triggered."""
    from stages.monitoring.history import CheckHistory

    record = CheckHistory(settings.monitoring_state_url).last_trigger(settings.mlflow.registered_model)
    return record is not None and record.checked_at.replace(tzinfo=record.checked_at.tzinfo or UTC) >= since


def _triggered_retraining(settings: Settings, since: datetime):
    """The training/retrain run the deployment trigger started for this model since ``since`` (it acts on the
    check's event within seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )

    def started():
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"])),
                flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=since)),
            )
        return next((r for r in runs if r.parameters.get("registered_model") == settings.mlflow.registered_model), None)

    return processes.poll(started, timeout=TRIGGER_TIMEOUT, what="the retraining trigger's flow run", interval=1)


def _evidently_report(settings: Settings, mlflow_url: str) -> str:
    """Where the newest monitoring run's Evidently HTML report can be browsed in the MLflow UI."""
    from mlops_core import registry

    client = registry.connect(settings)
    experiment = client.get_experiment_by_name(settings.monitoring.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.model = '{settings.mlflow.registered_model}'",  # the checks, not the trend run
        order_by=["start_time DESC"],
        max_results=1,
    )
    if not runs:
        return "(no monitoring run)"
    run = runs[0].info
    return f"{mlflow_url}/#/experiments/{run.experiment_id}/runs/{run.run_id}/artifacts (evidently/drift_report.html)"


def _next_day(source: Path) -> date | None:
    """The day after the newest batch, so a second run appends new days instead of rewriting old ones."""
    existing = sorted(source.glob("????-??-??.*")) if source.exists() else []
    return date.fromisoformat(existing[-1].name[:10]) + timedelta(days=1) if existing else None


def run_loop(
    *,
    rows_per_day: int,
    days: int,
    normal_requests: int,
    drift_requests: int,
    drift_strength: float,
    echo: Callable[[str], None],
) -> LoopSummary:
    """Stack up, train, serve, drift, monitor, retrain, switch; returns what happened (see LoopSummary)."""
    from mlops_core.api_keys import PREDICT, KeyStore
    from stages.data.generator import write_batches

    step, started = Steps(echo), time.monotonic()
    stack = Stack(get_settings())
    step("starting the local stack (servers already running are reused)")
    stack.up(progress=lambda message: step(f"  {message}"))
    # This process is a client of the stack from here on: same state, same registry, same Prefect API.
    os.environ.update(stack.environment())
    get_settings.cache_clear()
    settings = get_settings()
    summary = LoopSummary(champion_before=_champion(settings))
    summary.urls = {
        "prefect_ui": f"{stack.prefect_url}/runs",
        "mlflow_ui": f"{stack.mlflow_url}/#/models/{settings.mlflow.registered_model}",
        "service": stack.service_url,
    }

    source = settings.data_source
    first = _next_day(source) or datetime.now(UTC).date() - timedelta(days=days)
    # The world alternates between the original data and the shifted one, so that every run drifts away from
    # what the last one retrained on, and the shift never grows beyond what the GX suite's ranges admit.
    world_file = settings.stack_dir / "loop_world.json"
    world = recorded_world(json.loads(world_file.read_text()) if world_file.exists() else {})
    write_batches(source, rows=rows_per_day * days, days=days, start=first, seed=0, **world)
    step(f"generated {days} daily batches of {rows_per_day:,} rows from {first} ({_describe(world)}) in {source}")

    step(f"training/train on the newest {days} days, through the worker")
    _wait_flow_run(_run_deployment("training/train", {"window_days": days}), "training")
    champion = _champion(settings)
    step(f"champion is version {champion}")

    _, key = KeyStore(settings.keys_url).create("mlops-loop", scope=PREDICT, rate_limit=1_000_000)
    traffic = Traffic(stack.service_url, key, summary)
    normal = _feature_rows(first + timedelta(days=days), normal_requests, world, seed=1)
    step(f"waiting for the service to serve version {champion}")
    processes.poll(
        _every_worker_serves(stack.service_url, champion, settings.service.workers),
        timeout=SWITCH_TIMEOUT,
        what=f"every service worker serving version {champion}",
        interval=0.1,
    )
    step(f"sending {normal_requests} requests of normal traffic")
    traffic.burst("normal", normal)
    checked = datetime.now(UTC)
    step("monitoring/monitor on the normal traffic")
    _wait_flow_run(_run_deployment("monitoring/monitor"), "monitoring")
    summary.checks.append(_last_check(settings, checked))
    step(f"  check: {summary.checks[-1]['status']}: {summary.checks[-1]['reason']}")

    drift_days = _deployment_parameters("training/retrain").get("window_days") or days
    drift_start = first + timedelta(days=days)
    world = drifted_world(world, drift_strength)
    write_batches(source, rows=rows_per_day * drift_days, days=drift_days, start=drift_start, seed=0, **world)
    world_file.write_text(json.dumps(world))
    step(f"new data arrived: {drift_days} daily batches from {drift_start} ({_describe(world)})")
    step(f"sending {drift_requests} requests of drifted traffic")
    drift_arrived = datetime.now(UTC)
    drifted = _feature_rows(drift_start, drift_requests, world, seed=2)
    traffic.burst("drifted", drifted)

    checked = datetime.now(UTC)
    step("monitoring/monitor on the drifted traffic")
    _wait_flow_run(_run_deployment("monitoring/monitor"), "monitoring")
    check = _last_check(settings, checked)
    summary.checks.append(check)
    step(f"  check: {check['status']}: {check['reason']}")
    # The stream starts after the check so that its rows do not dilute the drifted window.
    stop = threading.Event()
    stream = traffic.stream(drifted, stop)
    try:
        if check.get("triggered") or _retraining_requested_since(settings, drift_arrived):
            triggered = _triggered_retraining(settings, drift_arrived)
            summary.retraining_run = str(triggered.id)
            summary.retraining_trigger = triggered.created_by.display_value if triggered.created_by else None
            step(
                f"training/retrain started by the trigger {summary.retraining_trigger!r} on the drift event; "
                f"waiting for flow run {summary.retraining_run}"
            )
            run = _wait_flow_run(summary.retraining_run, "retraining")
            summary.retraining_run_name = run.name
            new_champion = _champion(settings)
            if new_champion != champion:
                step(f"champion moved to version {new_champion}; waiting until every answer comes from it")
                processes.poll(
                    lambda: traffic.serves_only(new_champion),
                    timeout=SWITCH_TIMEOUT,
                    what=f"service serving version {new_champion}",
                )
            else:
                step(f"the gate kept version {champion} as champion")
    finally:
        stop.set()
        stream.join(timeout=40)
        traffic.client.close()

    summary.champion_after = _champion(settings)
    summary.versions = _version_facts(settings)
    summary.alias_moves = _alias_moves(settings)
    summary.urls["evidently_report"] = _evidently_report(settings, stack.mlflow_url)
    summary.seconds = round(time.monotonic() - started, 1)
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    (settings.stack_dir / "last_loop.json").write_text(json.dumps(asdict(summary), indent=2, default=str))
    return summary


def describe(summary: LoopSummary) -> list[str]:
    """The summary as lines for the terminal."""
    lines = [f"loop finished in {summary.seconds:.0f} s", "versions:"]
    for v in summary.versions:
        lines.append(f"  v{v['version']} {v['semver']}: {v['decision']} ({v['reasons']})")
    lines.append(f"champion: {summary.champion_before or 'none'} before the loop, {summary.champion_after} after")
    moves = [f"{m['alias']} {m['from'] or '-'} -> {m['to']} ({m['action']})" for m in summary.alias_moves]
    lines.append(f"alias moves in the audit log: {'; '.join(moves) or 'none'}")
    for number, check in enumerate(summary.checks, 1):
        share = check.get("drift_share")
        shown = f"drift share {share:.2f}" if share is not None else "no drift share"
        lines.append(f"monitoring check {number}: {check['status']}, {shown}: {check['reason']}")
    if summary.retraining_run_name:
        lines.append(
            f"retraining: flow run {summary.retraining_run_name!r} ({summary.retraining_run}), "
            f"started by the trigger {summary.retraining_trigger!r}"
        )
    for phase, count in summary.requests.items():
        lines.append(f"requests {phase}: {count}, failed {summary.failures.get(phase, 0)}")
    lines.append(f"answers per model version: {summary.served_versions}")
    lines.extend(f"{name}: {url}" for name, url in summary.urls.items())
    return lines
