"""The prediction service: ``bentoml serve services.service:PredictionService``.

The data-plane routes are a small Starlette app mounted into the Bento service rather than ``@bentoml.api``
methods with pydantic types: the accepted fields come from the model version being served, which changes at
run time when the champion moves, and every client error must name its field in one JSON shape. BentoML
still runs the workers and provides /livez, /metrics and packaging; /readyz is answered by the guard with
its reasons. Each answered prediction is committed to the prediction log before the answer leaves.

Variants (``services.variants``): in A/B mode a sticky share of callers is answered by the challenger; in shadow
mode the champion answers and the challenger scores the same rows after the response has been sent (a Starlette
background task), logged as ``shadow`` with the champion answer's id in ``paired_id``. Whatever the challenger
does, the champion answers and the fault is counted.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import bentoml
import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import mlops_core  # noqa: F401  (telemetry off before any library loads)
from mlops_core import security_log
from mlops_core.features import FeatureStoreError, UnknownEntity
from mlops_core.prediction_log import input_hash, record_ground_truth, utc_now
from mlops_core.settings import get_settings
from services import access_log
from services.entities import entity_features, model_row
from services.guard import Guard
from services.inputs import NonFinite, Problem, check_row, json_features
from services.models import ServedModel
from services.openapi import document
from services.page import ServicePage
from services.runtime import CHALLENGER_FAULTS, LOG_SECONDS, PREDICTIONS, REFUSED, runtime
from services.variants import CHALLENGER, CHAMPION, SHADOW, ChallengerFault, assign, assignment_unit, challenger_scores

logger = logging.getLogger("mlops.service")
# Batches above this size are scored in a thread so that single-row requests keep flowing.
INLINE_ROWS = 16


class ClientError(Exception):
    def __init__(self, status: int, error: str, problems: list[Problem]) -> None:
        self.status, self.error, self.problems = status, error, problems


class LogUnavailable(Exception):
    """The prediction log could not store the answers (disk full, read-only, database down): nothing is answered."""


def log_unavailable(exc: LogUnavailable) -> Response:
    logger.error("prediction log unavailable, answering 503: %r", exc.__cause__ or exc)
    reason = "the answer could not be recorded, so none was given; retry later"
    body = {"error": "prediction_log_unavailable", "detail": [{"field": "prediction_log", "reason": reason}]}
    return json_response(body, 503, {"Retry-After": "5"})


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, background: BackgroundTask | None = None
) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type="application/json", headers=headers, background=background
    )


def error_response(status: int, error: str, problems: list[Problem]) -> Response:
    return json_response({"error": error, "detail": [p.as_dict() for p in problems]}, status)


async def read_json(request: Request) -> Any:
    """The body as JSON, within the size limit; NaN and Infinity tokens are kept as markers for the checks."""
    limit = get_settings().service.max_body_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        got = content_type or "none"
        raise ClientError(
            415, "unsupported_media_type", [Problem("content-type", f"expected application/json, got {got}")]
        )
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ClientError(413, "body_too_large", [Problem("body", f"at most {limit} bytes")])
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ClientError(413, "body_too_large", [Problem("body", f"at most {limit} bytes")])
    try:
        return json.loads(body.decode("utf-8"), parse_constant=NonFinite)
    except (ValueError, RecursionError) as exc:  # also integers of over 4300 digits and deep nesting
        raise ClientError(400, "malformed_json", [Problem("body", f"not valid UTF-8 JSON: {exc}")]) from exc


def refuse(request: Request, status: int, error: str, problems: list[Problem]) -> Response:
    REFUSED.labels(reason=error).inc()
    detail = [p.as_dict() for p in problems[:20]]
    runtime().security.record(request.scope, security_log.INVALID_INPUT, key_id=key_id_of(request), detail=detail)
    return error_response(status, error, problems)


def key_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("key_id")


RETRY = {"Retry-After": "5"}


def not_ready() -> Response:
    state, reasons = runtime().holder.readiness()
    return json_response({"error": "not_ready", "detail": reasons}, 503, RETRY)


async def scores(score: Callable[..., np.ndarray], model: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    """``score(model, rows)``, in a thread for large batches."""
    if len(rows) > INLINE_ROWS:
        return await asyncio.to_thread(score, model, rows)
    return score(model, rows)


async def champion_scores(champion: ServedModel, rows: list[dict[str, Any]], flags: list[list[Problem]]) -> np.ndarray:
    """The champion's probabilities; values far outside the training range that it cannot score are a 422.

    Under the flag policy such values pass the checks, and an extreme one (1e308) overflows the pipeline's
    arithmetic: scikit-learn refuses the non-finite result, other models return NaN.
    """
    flagged = [p for row_flags in flags for p in row_flags]
    try:
        probabilities = await scores(ServedModel.predict_proba, champion, rows)
    except ValueError:
        if not flagged:
            raise
        probabilities = None
    if probabilities is None or (flagged and not np.isfinite(probabilities).all()):
        problems = [Problem(p.field, f"{p.reason}; the model cannot score it") for p in flagged]
        raise ClientError(422, "invalid_input", problems)
    return probabilities


def log_records(
    model: ServedModel,
    variant: str,
    rows: list[dict[str, Any]],
    probabilities: np.ndarray,
    flags: list[list[Problem]],
    paired_ids: list[str] | None = None,
    **common: Any,
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Prediction-log rows of one variant's answers, and the predicted classes; ``common`` fills shared columns."""
    records, predicted = [], []
    paired = paired_ids or [None] * len(rows)
    for row, row_flags, probs, paired_id in zip(rows, flags, probabilities, paired, strict=True):
        best = int(np.argmax(probs))
        features = json_features(row)
        predicted.append(model.classes[best])
        records.append(
            {
                "prediction_id": str(uuid.uuid4()),
                "model_name": model.name,
                "model_version": model.version,
                "model_semver": model.semver,
                "variant": variant,
                "input_hash": input_hash(features),
                "features": features,
                "prediction": str(model.classes[best]),
                "confidence": float(probs[best]),
                "probabilities": {str(c): float(p) for c, p in zip(model.classes, probs, strict=True)},
                "flags": [p.as_dict() for p in row_flags] or None,
                "paired_id": paired_id,
                **common,
            }
        )
    return records, predicted


async def commit(records: list[dict[str, Any]]) -> None:
    writer = runtime().prediction_writer
    if writer is not None:
        waited = time.perf_counter()
        await asyncio.wrap_future(writer.submit(records))
        LOG_SECONDS.observe(time.perf_counter() - waited)


def fault(mode: str, exc: ChallengerFault) -> None:
    CHALLENGER_FAULTS.labels(mode=mode, reason=exc.reason).inc()
    logger.warning("challenger fault in %s mode, the champion answers: %s", mode, exc)


async def answer(
    request: Request, champion: ServedModel, rows: list[dict[str, Any]], flags: list[list[Problem]], started: float
) -> tuple[list[dict[str, Any]], BackgroundTask | None]:
    """Score the rows with the assigned variant, commit them to the prediction log, then return the answers.

    In shadow mode the second value scores the rows with the challenger once the response has been sent.
    """
    rt = runtime()
    holder, settings = rt.holder, rt.settings.experiment
    mode, challenger = holder.mode, holder.challenger.current
    key_id = key_id_of(request)
    unit = assignment_unit(settings.sticky_by, request.headers.get(settings.session_header), key_id)
    salt = f"{champion.name}:{challenger.version if challenger else 'none'}"
    variant, model, probabilities = assign(mode, unit, salt), champion, None
    if variant == CHALLENGER:
        try:
            probabilities = await scores(challenger_scores, challenger, rows)
            model = challenger
        except ChallengerFault as exc:
            fault(mode.mode, exc)
            variant = CHAMPION
    if probabilities is None:
        probabilities = await champion_scores(champion, rows, flags)
    now = utc_now()
    latency_ms = (time.perf_counter() - started) * 1000
    records, predicted = log_records(
        model, variant, rows, probabilities, flags, ts=now, latency_ms=latency_ms, key_id=key_id
    )
    try:
        await commit(records)
    except Exception as exc:
        raise LogUnavailable() from exc
    timestamp = now.isoformat().replace("+00:00", "Z")
    keep = ("prediction_id", "confidence", "probabilities", "model_name", "model_version", "model_semver", "variant")
    answers = [
        {**{k: r[k] for k in keep}, "prediction": p, "timestamp": timestamp, "warnings": r["flags"] or []}
        for r, p in zip(records, predicted, strict=True)
    ]
    for item in answers:
        PREDICTIONS.labels(variant=variant, model_version=str(model.version), prediction=str(item["prediction"])).inc()
    shadow = None
    if mode.mode == "shadow":
        ids = [r["prediction_id"] for r in records]
        shadow = BackgroundTask(score_shadow, challenger, rows, flags, ids, key_id)
    return answers, shadow


async def score_shadow(
    challenger: ServedModel | None,
    rows: list[dict[str, Any]],
    flags: list[list[Problem]],
    ids: list[str],
    key_id: str | None,
) -> None:
    """After the response: the challenger's answers to the same rows, logged as shadow and never returned."""
    started = time.perf_counter()
    try:
        probabilities = await scores(challenger_scores, challenger, rows)
    except ChallengerFault as exc:
        fault(SHADOW, exc)
        return
    latency_ms = (time.perf_counter() - started) * 1000
    records, _ = log_records(
        challenger, SHADOW, rows, probabilities, flags, ids, ts=utc_now(), latency_ms=latency_ms, key_id=key_id
    )
    try:
        await commit(records)
    except Exception:
        CHALLENGER_FAULTS.labels(mode=SHADOW, reason="log").inc()
        logger.exception("shadow rows not logged")


async def predict(request: Request) -> Response:
    started = time.perf_counter()
    model = runtime().holder.current
    if model is None:
        return not_ready()
    try:
        body = await read_json(request)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    # The seed's form {"features": [...]} (or a named object under "features"), else the body is the row.
    raw = body["features"] if isinstance(body, dict) and set(body) == {"features"} else body
    row, errors, flags = check_row(
        raw, model.rules, refuse_out_of_range=get_settings().service.out_of_range == "refuse"
    )
    if errors:
        return refuse(request, 422, "invalid_input", errors)
    try:
        answers, shadow = await answer(request, model, [row], [flags], started)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    except LogUnavailable as exc:
        return log_unavailable(exc)
    return json_response(answers[0], background=shadow)


async def predict_batch(request: Request) -> Response:
    started = time.perf_counter()
    model = runtime().holder.current
    if model is None:
        return not_ready()
    settings = get_settings().service
    try:
        body = await read_json(request)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    raw_rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"rows"} or not isinstance(raw_rows, list):
        return refuse(request, 422, "invalid_input", [Problem("rows", 'expected an object {"rows": [...]}')])
    if not raw_rows:
        return refuse(request, 422, "invalid_input", [Problem("rows", "empty batch")])
    if len(raw_rows) > settings.max_batch_rows:
        reason = f"{len(raw_rows)} rows; at most {settings.max_batch_rows} per request"
        return refuse(request, 422, "batch_too_large", [Problem("rows", reason)])
    rows, flags, errors = [], [], []
    for index, raw in enumerate(raw_rows):
        row, row_errors, row_flags = check_row(
            raw, model.rules, prefix=f"rows[{index}].", refuse_out_of_range=settings.out_of_range == "refuse"
        )
        rows.append(row)
        flags.append(row_flags)
        errors.extend(row_errors)
    if errors:
        return refuse(request, 422, "invalid_input", errors)
    try:
        answers, shadow = await answer(request, model, rows, flags, started)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    except LogUnavailable as exc:
        return log_unavailable(exc)
    return json_response({"predictions": answers}, background=shadow)


async def predict_entity(request: Request) -> Response:
    """Predict for a stored entity: its newest features from the feature store, then the /predict path."""
    started = time.perf_counter()
    model = runtime().holder.current
    if model is None:
        return not_ready()
    key = get_settings().data.entity_id or "entity_id"
    try:
        body = await read_json(request)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    entity_id = body.get(key) if isinstance(body, dict) and set(body) == {key} else None
    if isinstance(entity_id, bool) or not isinstance(entity_id, int) or not -(2**63) <= entity_id < 2**63:
        return refuse(request, 422, "invalid_input", [Problem(key, f'expected an object {{"{key}": <integer>}}')])
    try:
        features = await entity_features(entity_id)
    except UnknownEntity as exc:
        return error_response(404, "unknown_entity", [Problem(key, str(exc))])
    except FeatureStoreError as exc:
        logger.error("feature store unavailable: %s", exc)
        problem = Problem("feature_store", "the online feature store cannot be read; retry later")
        return json_response({"error": "feature_store_unavailable", "detail": [problem.as_dict()]}, 503, RETRY)
    raw, missing = model_row(features, [rule.name for rule in model.rules])
    if missing:
        reason = "no stored value; update the entity's features first"
        return refuse(request, 422, "missing_features", [Problem(name, reason) for name in missing])
    row, errors, flags = check_row(
        raw, model.rules, refuse_out_of_range=get_settings().service.out_of_range == "refuse"
    )
    if errors:
        return refuse(request, 422, "invalid_stored_features", errors)
    answers, shadow = await answer(request, model, [row], [flags], started)
    as_of = features.as_of.isoformat().replace("+00:00", "Z") if features.as_of else None
    return json_response({**answers[0], key: entity_id, "features_as_of": as_of}, background=shadow)


async def feedback(request: Request) -> Response:
    """Ground truth for an earlier prediction, joined by monitoring to measure live performance."""
    writer = runtime().prediction_writer
    if writer is None:
        return error_response(409, "prediction_log_disabled", [Problem("prediction_id", "the prediction log is off")])
    try:
        body = await read_json(request)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    if not isinstance(body, dict):
        return refuse(request, 422, "invalid_input", [Problem("body", "expected an object")])
    problems = [Problem(name, "unknown field") for name in body if name not in ("prediction_id", "ground_truth")]
    prediction_id = body.get("prediction_id")
    if not isinstance(prediction_id, str) or not prediction_id or len(prediction_id) > 36:
        problems.append(Problem("prediction_id", "expected the prediction_id string of an earlier answer"))
    truth = body.get("ground_truth")
    if isinstance(truth, float) and truth.is_integer():
        truth = int(truth)
    if isinstance(truth, bool) or not isinstance(truth, str | int) or truth == "":
        problems.append(Problem("ground_truth", "expected the observed class as a string or an integer"))
    if problems:
        return refuse(request, 422, "invalid_input", problems)
    try:
        recorded = await asyncio.to_thread(record_ground_truth, writer.engine, prediction_id, str(truth))
    except SQLAlchemyError as exc:
        return log_unavailable(LogUnavailable(exc))
    if not recorded:
        return error_response(404, "not_found", [Problem("prediction_id", "no logged prediction with this id")])
    return json_response({"prediction_id": prediction_id, "ground_truth": str(truth), "recorded": True})


async def reload_model(request: Request) -> Response:
    """For the promotion flow: check the champion alias now (this worker at once, the others within 0.5 s)."""
    holder = runtime().holder
    holder.request_reload()
    state, reasons = holder.readiness()
    return json_response({"reload": "requested", **runtime().describe(state, reasons)}, 202)


async def openapi(request: Request) -> Response:
    return json_response(document(runtime().holder.current, get_settings()))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"error": "http_error", "detail": [{"field": "path", "reason": exc.detail}]}, exc.status_code)


async def server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s", request.url.path)
    runtime().security.record(request.scope, security_log.SERVER_ERROR, key_id=key_id_of(request))
    return json_response({"error": "internal_error", "detail": [{"field": "", "reason": "see the service log"}]}, 500)


api = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/predict_entity", predict_entity, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/admin/reload", reload_model, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ],
    exception_handlers={HTTPException: http_error, Exception: server_error},
)

_settings = get_settings().service


@bentoml.service(
    name="mlops_prediction",
    workers=_settings.workers,
    http={"host": _settings.host, "port": _settings.port},
    traffic={"timeout": _settings.request_timeout_seconds},
    # OpenTelemetry spans cost about 0.4 ms a request; the hot routes skip them.
    tracing={"excluded_urls": "predict,predict_batch,predict_entity,feedback"},
    # services.access_log writes the access log from a thread; BentoML's would write on the event loop.
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(api, path="/")
class PredictionService:
    def __init__(self) -> None:
        """Returns once the champion is loaded: the worker takes connections only then.

        BentoML creates the service in the worker's ASGI lifespan start-up, and uvicorn starts accepting on the
        socket the workers share only after that. A worker restarted beside others therefore leaves its share of
        new connections to them while it loads, instead of answering them 503 not_ready.
        """
        self.runtime = runtime()
        wait = self.runtime.settings.service.startup_load_seconds
        if not self.runtime.holder.wait_until_settled(wait):
            state, reasons = self.runtime.holder.readiness()
            logger.warning("no champion after %s s, taking connections as %s: %s", wait, state, "; ".join(reasons))
        # Everything imported and loaded so far lives as long as the worker: move it out of the collector's reach, so a
        # full collection scans only what requests allocate (tens of ms less in the latency tail).
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.runtime.holder.current is not None

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()
        access_log.stop()


# The first added is the outer one: the access log also sees what the guard refuses.
PredictionService.add_asgi_middleware(access_log.AccessLog)
PredictionService.add_asgi_middleware(Guard, runtime=runtime)
# Inside the guard: the page is open or closed by the same open_paths setting as every other route.
PredictionService.add_asgi_middleware(ServicePage)
