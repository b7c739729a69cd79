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

Routing is pluggable (``tooling/traffic.py``): on Kubernetes the Service's selector, patched through kubectl;
locally the live colour recorded in ``<state>/stack/bluegreen.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from mlops_core import registry
from mlops_core.api_keys import KeyStore
from mlops_core.settings import Settings
from stages.promotion.aliases import alias_transaction, alias_version, clear_challenger_if, current_actor
from stages.promotion.audit import AliasMove, AuditLog
from tooling import processes
from tooling.traffic import FIRST_COLOUR, POLL_SECONDS, Colour, Endpoint, Router, SwitchError, other

INVALID_ROW = {"features": "not a row"}  # a body the service must refuse with a 422


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
    store = KeyStore(settings.keys_url)
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
    """Pin the live colour to what it serves when it still follows an alias; refuse a version already live.

    A live colour that does not run (a local process that died) is left alone: switching away is the remedy.
    """
    ref = router.pinned(live)
    if ref is None:
        return [f"{live}, the live colour, does not run: nothing to hold"]
    if ref.isdigit():
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
    routed = False
    try:
        # The promotion stage's alias transaction: each move recorded before the alias is set, all undone on failure.
        with alias_transaction(client, AuditLog(settings.audit_url), model) as moves:
            holder = alias_version(client, model, registry.CHAMPION)
            report.previous_champion = int(holder.version) if holder is not None else None
            if report.previous_champion != report.version:
                details = {
                    "via": f"blue-green ({router.kind})",
                    "colour": report.colour,
                    "previous_colour": report.previous_colour,
                    "smoke": asdict(report.smoke),
                }
                report.audit_id = moves.move(
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
                    )
                )
                clear_challenger_if(
                    moves, model, report.version, actor, None, f"version {report.version} went live on {report.colour}"
                )
            router.route(report.colour)
            routed = True
    except BaseException as exc:  # an interrupt too: the alias must not stay moved without its record
        if routed and report.previous_colour is not None:
            router.route(report.previous_colour)
        if isinstance(exc, SwitchError) or not isinstance(exc, Exception):
            raise
        raise SwitchError(f"traffic and alias not moved: {type(exc).__name__}: {exc}") from exc
