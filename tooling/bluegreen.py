"""Blue-green switch: a colour is pinned to a version, checked, and only then gets the traffic and the alias.

The two colours of the prediction service run side by side, each pinned to a registry version
(``MLOPS_SERVICE__MODEL_REF``), so a move of the ``champion`` alias alone changes what neither serves.
``switch`` stages a version on the idle colour and moves traffic only when every check passed:

1. the version exists in the registry (otherwise nothing is touched);
2. the live colour, if it still follows an alias (a fresh deployment), is pinned to the version it serves, so it
   keeps serving it once the alias moves and switching back stays instant;
3. the idle colour is pinned to the candidate (Kubernetes: ``kubectl set env`` and ``rollout status``; locally
   its ``bentoml serve`` is restarted) and must answer ``/readyz`` ready with exactly that version, from every
   worker; a version the service refuses fails at once with the service's reason;
4. smoke requests: every answer valid and from that version, an invalid row refused with a 422, and the 95th
   percentile of the round-trip latency within ``MLOPS_BLUEGREEN__SMOKE_P95_MS``;
5. in one audit-log transaction: the move is recorded (who, why, colours, smoke figures), the ``champion``
   alias moved and the traffic routed. If routing fails, the alias is put back and nothing is recorded.

A failed check raises ``SwitchError`` with the reason, before anything live changed. Rollback is the same
procedure towards the other colour, which still serves the version it was pinned to.

Routing is pluggable: ``KubernetesRouter`` patches the Service's selector through kubectl (the manifests of
``deploy/k8s/``); ``LocalRouter`` runs the colours as ``bentoml serve`` processes on 127.0.0.1 and records the
live one, with its URL, in ``<state>/stack/bluegreen.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from mlops_core import processes, registry
from mlops_core.api_keys import KeyStore
from mlops_core.audit import AliasMove, AuditLog
from mlops_core.promotion import alias_version, current_actor
from mlops_core.settings import PROJECT_ROOT, Settings

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")
FIRST_COLOUR: Colour = "blue"  # goes live on the first switch, when no colour is live yet
REF_VARIABLE = "MLOPS_SERVICE__MODEL_REF"
CONTAINER = "service"  # the container of the colours' Deployments
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
POLL_SECONDS = 0.2
KUBECTL_SECONDS = 60  # one kubectl call other than `rollout status`
INVALID_ROW = {"features": "not a row"}  # a body the service must refuse with a 422


class SwitchError(RuntimeError):
    """A check failed or the request cannot be carried out; traffic and the alias are where they were."""


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def selector_patch(colour: str) -> dict[str, Any]:
    """The JSON merge patch that makes ``colour`` live: the Service's other selector labels stay."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    return {"spec": {"selector": {"colour": colour}}}


@dataclass
class Endpoint:
    """Where a colour answers, and (locally) how to tell that its process died."""

    url: str
    alive: Callable[[], bool] = lambda: True
    log: Path | None = None


class Router(Protocol):
    """Where the colours run and which one the traffic reaches."""

    kind: str
    workers: int  # distinct worker processes behind ``reach`` that must report ready

    def live(self) -> Colour | None: ...

    def pinned(self, colour: Colour) -> str | None: ...

    def pin(self, colour: Colour, ref: str) -> None: ...

    def reach(self, colour: Colour) -> contextlib.AbstractContextManager[Endpoint]: ...

    def route(self, colour: Colour) -> None: ...


# -- checks ----------------------------------------------------------------------------------------------------


def wait_serving(endpoint: Endpoint, colour: Colour, version: int, *, workers: int, timeout: float) -> None:
    """Until ``workers`` distinct workers answer ``/readyz`` ready with exactly ``version``; a refusal fails at once."""
    seen: set[Any] = set()
    last = "no answer yet"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not endpoint.alive():
            tail = f"\n{processes.tail(endpoint.log, 15)}" if endpoint.log else ""
            raise SwitchError(f"{colour} exited before it was ready{tail}")
        try:
            body = httpx.get(f"{endpoint.url}/readyz", timeout=5).json()
        except (httpx.HTTPError, ValueError) as exc:
            last = f"no answer ({type(exc).__name__})"
        else:
            served = (body.get("model") or {}).get("version")
            reasons = [str(r) for r in body.get("reasons") or []]
            refused = [r for r in reasons if r.startswith(f"version {version} refused")]
            if refused:
                raise SwitchError(f"{colour} cannot serve version {version}: {refused[0]}")
            if body.get("status") == "ready" and served == version:
                seen.add(body.get("worker"))
                if len(seen) >= workers:
                    return
            last = f"{body.get('status')}, serving version {served}" + (f" ({'; '.join(reasons)})" if reasons else "")
        time.sleep(POLL_SECONDS)
    raise SwitchError(f"{colour} not ready with version {version} within {timeout:.0f} s: {last}")


def served_version(endpoint: Endpoint, colour: Colour) -> int:
    """The version a colour serves now (ready or degraded), from one /readyz answer."""
    try:
        body = httpx.get(f"{endpoint.url}/readyz", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SwitchError(f"{colour} does not answer /readyz: {type(exc).__name__}: {exc}") from exc
    version = (body.get("model") or {}).get("version")
    if version is None:
        raise SwitchError(f"{colour} serves no model: {'; '.join(body.get('reasons') or [])}")
    return int(version)


def smoke_rows(model: str, version: int) -> list[dict[str, Any]]:
    """The version's own input example as JSON rows: inputs it was checked on when it was registered."""
    with tempfile.TemporaryDirectory(prefix=f"smoke-{version}-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model}/{version}", dst_path=tmp)
        example = Model.load(local).load_input_example(local)
    if example is None or len(example) == 0:
        raise SwitchError(f"version {version} of {model!r} has no input example to send as smoke requests")
    return json.loads(example.to_json(orient="records"))


def answer_problem(response: httpx.Response, version: int) -> str | None:
    """Why a /predict answer is not a valid answer of ``version``; None when it is."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    body = response.json()
    if body.get("variant") == registry.CHAMPION and body.get("model_version") != version:
        return f"answered by version {body.get('model_version')}, not {version}"
    probabilities = body.get("probabilities") or {}
    values = list(probabilities.values())
    if not values or not all(isinstance(p, int | float) and math.isfinite(p) and 0 <= p <= 1 for p in values):
        return f"probabilities {probabilities} are not probabilities"
    if abs(sum(values) - 1) > 1e-6:
        return f"probabilities {probabilities} do not sum to 1"
    if str(body.get("prediction")) not in probabilities:
        return f"prediction {body.get('prediction')!r} is none of the classes {list(probabilities)}"
    return None


@dataclass
class SmokeResult:
    requests: int
    p50_ms: float
    p95_ms: float
    bound_ms: float


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: a value that was measured, not an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def smoke(endpoint: Endpoint, version: int, rows: list[dict[str, Any]], key: str, *, requests: int, bound_ms: float):
    """Send ``requests`` predictions and one invalid row; every answer must be right, p95 within the bound."""
    latencies = []
    with httpx.Client(base_url=endpoint.url, headers={"X-API-Key": key}, timeout=30) as http:
        for number in range(1, requests + 1):
            started = time.perf_counter()
            try:
                response = http.post("/predict", json=rows[number % len(rows)])
            except httpx.HTTPError as exc:
                raise SwitchError(f"smoke request {number} got no answer: {type(exc).__name__}: {exc}") from exc
            latencies.append((time.perf_counter() - started) * 1000)
            if problem := answer_problem(response, version):
                raise SwitchError(f"smoke request {number}: {problem}")
        try:
            refused = http.post("/predict", json=INVALID_ROW)
        except httpx.HTTPError as exc:
            raise SwitchError(f"the invalid smoke row got no answer: {type(exc).__name__}: {exc}") from exc
        if refused.status_code != 422:
            raise SwitchError(f"an invalid row was answered with HTTP {refused.status_code}, not 422")
    result = SmokeResult(
        requests, round(percentile(latencies, 0.5), 1), round(percentile(latencies, 0.95), 1), bound_ms
    )
    if result.p95_ms > bound_ms:
        raise SwitchError(
            f"smoke latency p95 {result.p95_ms} ms over {requests} requests exceeds the bound of {bound_ms:g} ms "
            "(MLOPS_BLUEGREEN__SMOKE_P95_MS)"
        )
    return result


@contextlib.contextmanager
def smoke_key(settings: Settings) -> Iterator[str]:
    """The configured smoke key, else a temporary key in the service's key store, revoked afterwards."""
    if settings.bluegreen.smoke_key is not None:
        yield settings.bluegreen.smoke_key.get_secret_value()
        return
    store = KeyStore(settings.key_store)
    key_id, key = store.create("blue-green smoke requests")
    try:
        yield key
    finally:
        store.revoke(key_id)


# -- the procedure ---------------------------------------------------------------------------------------------


@dataclass
class SwitchReport:
    colour: Colour
    previous_colour: Colour | None
    version: int
    previous_champion: int | None
    action: str
    smoke: SmokeResult
    audit_id: int | None = None
    notes: list[str] = field(default_factory=list)


def switch(
    settings: Settings,
    router: Router,
    *,
    version: int | None,
    reason: str,
    actor: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> SwitchReport:
    """Stage ``version`` on the idle colour, check it, then move traffic and ``champion`` to it together.

    ``version=None`` is the rollback: the idle colour keeps the version it is pinned to (the previous one).
    """
    if not reason.strip():
        raise SwitchError("a switch needs a reason (--reason), recorded in the audit log")
    actor = actor or current_actor()
    rolling_back = version is None
    model = settings.mlflow.registered_model
    client = registry.connect(settings)
    live = router.live()
    target = other(live) if live else FIRST_COLOUR
    notes: list[str] = []
    if rolling_back:
        if live is None:
            raise SwitchError("no colour is live yet: nothing to roll back")
        ref = router.pinned(target)
        if ref is None or not ref.isdigit():
            raise SwitchError(
                f"{target} is not pinned to a version ({ref or 'not running'}): switch to a version instead"
            )
        version = int(ref)
    try:
        client.get_model_version(model, str(version))
    except MlflowException as exc:
        raise SwitchError(f"version {version} of {model!r} does not exist in the registry") from exc
    timeout = settings.bluegreen.ready_timeout_seconds
    if live is not None:
        notes.extend(_hold(router, live, version, timeout, progress))
    if not rolling_back:
        progress(f"pinning {target} to version {version}")
        router.pin(target, str(version))
    with router.reach(target) as endpoint:
        progress(f"waiting for {target} ready with version {version} ({endpoint.url})")
        wait_serving(endpoint, target, version, workers=router.workers, timeout=timeout)
        progress(f"smoke requests to {target}")
        with smoke_key(settings) as key:
            result = smoke(
                endpoint, version, smoke_rows(model, version), key,
                requests=settings.bluegreen.smoke_requests, bound_ms=settings.bluegreen.smoke_p95_ms,
            )  # fmt: skip
    report = SwitchReport(
        colour=target,
        previous_colour=live,
        version=version,
        previous_champion=None,
        action="rollback" if rolling_back else "promote",
        smoke=result,
        notes=notes,
    )
    _move_together(settings, client, router, report, actor=actor, reason=reason)
    return report


def _hold(router: Router, live: Colour, version: int, timeout: float, progress: Callable[[str], None]) -> list[str]:
    """Pin the live colour to what it serves when it still follows an alias; refuse a version already live."""
    ref = router.pinned(live)
    if ref is not None and ref.isdigit():
        if int(ref) == version:
            raise SwitchError(f"version {version} is already live on {live}; nothing to do")
        return []
    with router.reach(live) as endpoint:
        serving = served_version(endpoint, live)
    if serving == version:
        raise SwitchError(f"version {version} is already live on {live}; nothing to do")
    progress(f"pinning live {live} to version {serving}, the version it serves (it followed {ref!r})")
    router.pin(live, str(serving))
    with router.reach(live) as endpoint:
        wait_serving(endpoint, live, serving, workers=router.workers, timeout=timeout)
    return [f"{live} followed {ref!r}: pinned to version {serving}, which it served"]


def _move_together(
    settings: Settings, client: mlflow.MlflowClient, router: Router, report: SwitchReport, *, actor: str, reason: str
) -> None:
    """Record the move, set ``champion`` and route the traffic in one audit transaction; undo the alias on failure."""
    model = settings.mlflow.registered_model
    audit = AuditLog(settings.audit_url)
    restore: list[tuple[str, int | None]] = []  # aliases to put back, newest last
    routed = False
    try:
        with audit.exclusive(model) as connection:
            holder = alias_version(client, model, registry.CHAMPION)
            report.previous_champion = int(holder.version) if holder is not None else None
            if report.previous_champion != report.version:
                details = {
                    "via": f"blue-green ({router.kind})",
                    "colour": report.colour,
                    "previous_colour": report.previous_colour,
                    "smoke": asdict(report.smoke),
                }
                report.audit_id = AuditLog.record(
                    connection,
                    AliasMove(
                        model=model,
                        alias=registry.CHAMPION,
                        from_version=report.previous_champion,
                        to_version=report.version,
                        action=report.action,
                        forced=report.action == "promote",  # the switch checks serving, not the metric gate
                        actor=actor,
                        reason=f"blue-green {report.action} to {report.colour}: {reason}",
                        details=details,
                    ),
                )
                client.set_registered_model_alias(model, registry.CHAMPION, str(report.version))
                restore.append((registry.CHAMPION, report.previous_champion))
                challenger = alias_version(client, model, registry.CHALLENGER)
                if challenger is not None and int(challenger.version) == report.version:
                    AuditLog.record(
                        connection,
                        AliasMove(
                            model=model, alias=registry.CHALLENGER, from_version=report.version, to_version=None,
                            action="clear", actor=actor, reason=f"version {report.version} went live on {report.colour}",
                        ),
                    )  # fmt: skip
                    client.delete_registered_model_alias(model, registry.CHALLENGER)
                    restore.append((registry.CHALLENGER, report.version))
            router.route(report.colour)
            routed = True
    except Exception as exc:
        if routed and report.previous_colour is not None:
            router.route(report.previous_colour)
        for alias, version in reversed(restore):
            if version is None:
                client.delete_registered_model_alias(model, alias)
            else:
                client.set_registered_model_alias(model, alias, str(version))
        if isinstance(exc, SwitchError):
            raise
        raise SwitchError(f"traffic and alias not moved: {type(exc).__name__}: {exc}") from exc


# -- routers ---------------------------------------------------------------------------------------------------


class LocalRouter:
    """The colours as ``bentoml serve`` processes on 127.0.0.1 beside the local stack, sharing its stores.

    Each colour has its own port (``MLOPS_BLUEGREEN__LOCAL_PORTS``), BentoML home and log under
    ``<state>/bluegreen/<colour>/``; the registry, keys, rate limits, logs and feature store are the state
    directory's, as for every instance of one service. The live colour and its URL are in
    ``<state>/stack/bluegreen.json`` (``mlops bluegreen status`` prints them).
    """

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.file = settings.stack_dir / "bluegreen.json"
        self.workers = settings.service.workers

    def _read(self) -> dict[str, Any]:
        if not self.file.exists():
            return {"live": None, "live_url": None, "colours": {}}
        return json.loads(self.file.read_text())

    def _write(self, state: dict[str, Any]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(state, indent=2))

    def url(self, colour: Colour) -> str:
        return f"http://{HOST}:{self.settings.bluegreen.local_ports[colour]}"

    def colour_dir(self, colour: Colour) -> Path:
        return self.settings.state_dir / "bluegreen" / colour

    def _running(self, colour: Colour) -> dict[str, Any] | None:
        record = self._read()["colours"].get(colour)
        return record if record and processes.is_alive(record["pid"], record["create_time"]) else None

    def live(self) -> Colour | None:
        return self._read()["live"]

    def pinned(self, colour: Colour) -> str | None:
        record = self._running(colour)
        return record["ref"] if record else None

    def environment(self, colour: Colour, ref: str) -> dict[str, str]:
        settings, home = self.settings, self.colour_dir(colour)
        return {
            **os.environ,
            "MLOPS_STATE_DIR": str(settings.state_dir),
            "MLOPS_MLFLOW__TRACKING_URI": settings.tracking_uri,
            "MLOPS_MLFLOW__REGISTRY_URI": settings.registry_uri,
            "MLOPS_SERVICE__HOST": HOST,
            "MLOPS_SERVICE__PORT": str(settings.bluegreen.local_ports[colour]),
            REF_VARIABLE: ref,
            "BENTOML_HOME": str(home / "bentoml"),  # its metrics directory is per server
        }

    def pin(self, colour: Colour, ref: str) -> None:
        """(Re)start the colour serving ``ref``; returns once started (``wait_serving`` checks it)."""
        state = self._read()
        if record := self._running(colour):
            processes.stop_group(record["pid"], self.settings.stack.stop_timeout_seconds)
        port = self.settings.bluegreen.local_ports[colour]
        if processes.port_in_use(port, HOST):
            raise SwitchError(f"port {port} for {colour} on {HOST} is used by another program")
        log = self.colour_dir(colour) / "service.log"
        proc = processes.start(
            [str(BIN / "bentoml"), "serve", "services.service:PredictionService"],
            env=self.environment(colour, ref), cwd=PROJECT_ROOT, log=log,
        )  # fmt: skip
        record = {"pid": proc.pid, "create_time": processes.create_time(proc.pid), "ref": ref, "log": str(log)}
        state["colours"][colour] = record
        self._write(state)

    @contextlib.contextmanager
    def reach(self, colour: Colour) -> Iterator[Endpoint]:
        record = self._read()["colours"].get(colour)
        if record is None:
            raise SwitchError(f"{colour} has never been started here")
        yield Endpoint(
            self.url(colour), alive=lambda: processes.is_alive(record["pid"], record["create_time"]),
            log=Path(record["log"]),
        )  # fmt: skip

    def route(self, colour: Colour) -> None:
        state = self._read()
        state["live"], state["live_url"] = colour, self.url(colour)
        self._write(state)

    def status(self) -> dict[str, Any]:
        state = self._read()
        return {
            "live": state["live"],
            "live_url": state["live_url"],
            "colours": {c: {"url": self.url(c), "pinned": self.pinned(c)} for c in COLOURS},
        }

    def down(self) -> list[Colour]:
        """Stop both colours; the record of the live colour goes with them."""
        stopped: list[Colour] = []
        for colour in COLOURS:
            if record := self._running(colour):
                processes.stop_group(record["pid"], self.settings.stack.stop_timeout_seconds)
                stopped.append(colour)
        self.file.unlink(missing_ok=True)
        return stopped


class KubernetesRouter:
    """The Deployments ``<service>-blue|green`` and the Service ``<service>`` of ``deploy/k8s/``, through kubectl.

    Checks reach a colour through its preview Service (``<service>-<colour>``) with ``kubectl port-forward``,
    which lands on one pod: ``rollout status`` has already waited for every pod's readiness probe, and a pinned
    pod is ready only once it serves its pin.
    """

    kind = "kubernetes"
    workers = 1

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.bluegreen
        self.service = settings.bluegreen.service_name

    def command(self, *args: str) -> list[str]:
        namespace = ["--namespace", self.settings.namespace] if self.settings.namespace else []
        return [self.settings.kubectl, *namespace, *args]

    def _run(self, command: list[str], timeout: float = KUBECTL_SECONDS) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise SwitchError(f"{self.settings.kubectl} not found (MLOPS_BLUEGREEN__KUBECTL)") from exc
        except subprocess.TimeoutExpired as exc:
            raise SwitchError(f"{shlex.join(command)} did not finish within {timeout:.0f} s") from exc
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise SwitchError(f"{shlex.join(command)} failed: {lines[-1]}")
        return result.stdout.strip()

    def deployment(self, colour: Colour) -> str:
        return f"{self.service}-{colour}"

    def live(self) -> Colour | None:
        colour = self._run(self.command("get", "service", self.service, "-o", "jsonpath={.spec.selector.colour}"))
        return colour if colour in COLOURS else None

    def pinned(self, colour: Colour) -> str | None:
        path = f'{{.spec.template.spec.containers[?(@.name=="{CONTAINER}")].env[?(@.name=="{REF_VARIABLE}")].value}}'
        return self._run(self.command("get", "deployment", self.deployment(colour), "-o", f"jsonpath={path}")) or None

    def pin_commands(self, colour: Colour, ref: str) -> list[list[str]]:
        deployment = f"deployment/{self.deployment(colour)}"
        timeout = f"--timeout={self.settings.ready_timeout_seconds:.0f}s"
        return [
            self.command("set", "env", deployment, "-c", CONTAINER, f"{REF_VARIABLE}={ref}"),
            self.command("rollout", "status", deployment, timeout),
        ]

    def pin(self, colour: Colour, ref: str) -> None:
        set_env, rollout = self.pin_commands(colour, ref)
        self._run(set_env)
        self._run(rollout, timeout=self.settings.ready_timeout_seconds + KUBECTL_SECONDS)

    def route_command(self, colour: Colour) -> list[str]:
        patch = json.dumps(selector_patch(colour), separators=(",", ":"))
        return self.command("patch", "service", self.service, "--type", "merge", "-p", patch)

    def route(self, colour: Colour) -> None:
        self._run(self.route_command(colour))

    @contextlib.contextmanager
    def reach(self, colour: Colour) -> Iterator[Endpoint]:
        port = processes.free_port()
        forward = subprocess.Popen(
            self.command("port-forward", f"service/{self.deployment(colour)}", f"{port}:http", "--address", HOST),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + KUBECTL_SECONDS
            while not processes.port_in_use(port, HOST):
                if forward.poll() is not None or time.monotonic() > deadline:
                    raise SwitchError(f"kubectl port-forward to {colour} failed: {_stderr(forward)}")
                time.sleep(POLL_SECONDS)
            yield Endpoint(f"http://{HOST}:{port}", alive=lambda: forward.poll() is None)
        finally:
            forward.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                forward.wait(5)


def _stderr(process: subprocess.Popen) -> str:
    if process.poll() is None:
        return "not listening yet"
    lines = (process.stderr.read() if process.stderr else "").strip().splitlines()
    return lines[-1] if lines else f"exited with code {process.returncode}"


def router_for(settings: Settings) -> LocalRouter | KubernetesRouter:
    return KubernetesRouter(settings) if settings.bluegreen.router == "kubernetes" else LocalRouter(settings)
