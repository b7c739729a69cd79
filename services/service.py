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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bentoml
import numpy as np
import orjson
import pyarrow as pa
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
from mlops_core.prediction_log import (
    batch_prediction_ids,
    batch_record,
    new_batch_id,
    prediction_rows,
    record_ground_truth,
    utc_now,
)
from mlops_core.settings import ServiceSettings, get_settings
from services import access_log
from services.balance import ConnectionBalance
from services.columnar import (
    BATCH_MEDIA_TYPES,
    JSON,
    BatchError,
    check_json_rows,
    check_row_count,
    check_table,
    read_table,
    write_table,
)
from services.entities import entity_features, model_row
from services.guard import Guard
from services.inputs import (
    Columns,
    FieldRule,
    NonFinite,
    Problem,
    check_row,
    chunks_of,
    columns_of,
    row_count,
)
from services.models import ServedModel
from services.openapi import document
from services.page import ServicePage
from services.runtime import CHALLENGER_FAULTS, LOG_SECONDS, PREDICTIONS, REFUSED, runtime
from services.variants import CHALLENGER, CHAMPION, SHADOW, ChallengerFault, assign, assignment_unit, challenger_scores

logger = logging.getLogger("mlops.service")
# Batches above this size are scored in a thread so that single-row requests keep flowing.
INLINE_ROWS = 16
# The fewest rows worth a thread of their own: below, the hop costs more than the chunk's share of the scoring.
CHUNK_ROWS = 2_000
# Allocations between two young-generation collections (Python's default is 700), see PredictionService.
GC_ALLOCATIONS = 50_000


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


def media_type_of(header: str) -> str:
    return header.split(";")[0].strip().lower()


async def read_body(request: Request, accepted: tuple[str, ...] = (JSON,)) -> tuple[str, bytes]:
    """The body's media type (one of ``accepted``) and its bytes, within the size limit."""
    limit = get_settings().service.max_body_bytes
    content_type = media_type_of(request.headers.get("content-type", ""))
    if content_type not in accepted:
        got = content_type or "none"
        raise ClientError(
            415, "unsupported_media_type", [Problem("content-type", f"expected {' or '.join(accepted)}, got {got}")]
        )
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ClientError(413, "body_too_large", [Problem("body", f"at most {limit} bytes")])
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ClientError(413, "body_too_large", [Problem("body", f"at most {limit} bytes")])
    return content_type, bytes(body)


def parse_json(body: bytes) -> Any:
    """NaN and Infinity tokens are kept as markers for the checks."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=NonFinite)
    except (ValueError, RecursionError) as exc:  # also integers of over 4300 digits and deep nesting
        raise ClientError(400, "malformed_json", [Problem("body", f"not valid UTF-8 JSON: {exc}")]) from exc


async def read_json(request: Request) -> Any:
    """The body as JSON, within the size limit."""
    _, body = await read_body(request)
    return parse_json(body)


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


def scoring_chunks(rows: int, threads: int) -> int:
    """How many chunks a batch of ``rows`` is scored in, side by side: one per thread, each of at least
    ``CHUNK_ROWS`` rows."""
    return max(1, min(threads, rows // CHUNK_ROWS))


async def scores(score: Callable[..., np.ndarray], model: Any, columns: Columns) -> np.ndarray:
    """``score(model, columns)``, in threads for large batches.

    A worker's libraries run one thread each (BentoML sets their thread counts to the worker's share of the
    cores, so that single-row calls do not spin a pool per call), which left a large batch on one core while the
    others idled. Its chunks are scored in threads of their own instead: ONNX Runtime, numpy and scikit-learn's
    tree code release the interpreter lock while they compute. Each row's answer depends on that row alone, so
    the chunks' answers, in order, are the batch's."""
    rows = row_count(columns)
    if rows <= INLINE_ROWS:
        return score(model, columns)
    return await scored_in_chunks(score, model, columns, scoring_chunks(rows, runtime().batch_scoring_threads))


async def scored_in_chunks(score: Callable[..., np.ndarray], model: Any, columns: Columns, chunks: int) -> np.ndarray:
    """``score(model, columns)`` as ``chunks`` calls on consecutive rows, each in a thread, their answers in order."""
    if chunks == 1:
        return await asyncio.to_thread(score, model, columns)
    parts = await asyncio.gather(*(asyncio.to_thread(score, model, part) for part in chunks_of(columns, chunks)))
    return np.concatenate(parts)


async def champion_scores(champion: ServedModel, columns: Columns, flags: list[list[Problem]]) -> np.ndarray:
    """The champion's probabilities; values far outside the training range that it cannot score are a 422.

    Under the flag policy such values pass the checks, and an extreme one (1e308) overflows the pipeline's
    arithmetic: scikit-learn refuses the non-finite result, other models return NaN.
    """
    flagged = [p for row_flags in flags for p in row_flags]
    try:
        probabilities = await scores(ServedModel.predict_columns, champion, columns)
    except ValueError:
        if not flagged:
            raise
        probabilities = None
    if probabilities is None or (flagged and not np.isfinite(probabilities).all()):
        problems = [Problem(p.field, f"{p.reason}; the model cannot score it") for p in flagged]
        raise ClientError(422, "invalid_input", problems)
    return probabilities


@dataclass
class Answers:
    """One variant's answers to a request's rows, as columns: what the JSON and the Arrow answers are made of."""

    model: ServedModel
    variant: str
    ids: list[str]
    predicted: list[Any]
    confidence: np.ndarray
    probabilities: np.ndarray
    flags: list[list[Problem]]
    timestamp: str

    @classmethod
    def of(
        cls,
        model: ServedModel,
        variant: str,
        ids: list[str],
        probabilities: np.ndarray,
        flags: list[list[Problem]],
        ts: datetime,
    ) -> Answers:
        """Each row's most probable class and its probability, answered at ``ts``."""
        best = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(best)), best]
        predicted = [model.classes[choice] for choice in best.tolist()]
        timestamp = ts.isoformat().replace("+00:00", "Z")
        return cls(model, variant, ids, predicted, confidence, probabilities, flags, timestamp)

    def as_dicts(self) -> list[dict[str, Any]]:
        """One dict per row; the shared values are looked up once (a third of the time for 10,000 rows)."""
        classes = [str(c) for c in self.model.classes]
        name, version, semver = self.model.name, self.model.version, self.model.semver
        variant, timestamp = self.variant, self.timestamp
        return [
            {
                "prediction_id": prediction_id,
                "confidence": confidence,
                "probabilities": dict(zip(classes, probs, strict=True)),
                "model_name": name,
                "model_version": version,
                "model_semver": semver,
                "variant": variant,
                "prediction": predicted,
                "timestamp": timestamp,
                "warnings": [p.as_dict() for p in row_flags] if row_flags else [],
            }
            for prediction_id, confidence, probs, predicted, row_flags in zip(
                self.ids, self.confidence.tolist(), self.probabilities.tolist(), self.predicted, self.flags, strict=True
            )
        ]

    def as_table(self) -> pa.Table:
        rows = len(self.ids)
        probabilities = pa.StructArray.from_arrays(
            [pa.array(self.probabilities[:, i]) for i in range(len(self.model.classes))],
            names=[str(c) for c in self.model.classes],
        )
        noted = [p.as_dict() for row_flags in self.flags for p in row_flags]
        offsets = np.concatenate([[0], np.cumsum([len(row_flags) for row_flags in self.flags])]).astype(np.int32)
        warning = pa.struct([("field", pa.string()), ("reason", pa.string())])
        warnings = pa.ListArray.from_arrays(pa.array(offsets), pa.array(noted, warning))
        return pa.table(
            {
                "prediction_id": pa.array(self.ids, pa.string()),
                "prediction": pa.array(self.predicted),
                "confidence": pa.array(self.confidence),
                "probabilities": probabilities,
                "model_name": pa.array([self.model.name] * rows, pa.string()),
                "model_version": pa.array([self.model.version] * rows, pa.int64()),
                "model_semver": pa.array([self.model.semver] * rows, pa.string()),
                "variant": pa.array([self.variant] * rows, pa.string()),
                "timestamp": pa.array([self.timestamp] * rows, pa.string()),
                "warnings": warnings,
            }
        )


def flag_notes(flags: list[list[Problem]]) -> list[str | None]:
    """Each row's notes as the log keeps them: JSON text, None for a row without one."""
    return [orjson.dumps([p.as_dict() for p in row_flags]).decode() if row_flags else None for row_flags in flags]


def model_identity(model: ServedModel) -> dict[str, Any]:
    """The log's columns naming the model that answered."""
    return {"model_name": model.name, "model_version": model.version, "model_semver": model.semver}


def log_records(
    model: ServedModel,
    variant: str,
    columns: Columns,
    probabilities: np.ndarray,
    flags: list[list[Problem]],
    paired_ids: list[str] | None = None,
    **common: Any,
) -> tuple[list[dict[str, Any]], Answers]:
    """Prediction-log rows of one variant's answers, and the answers; ``common`` fills shared columns."""
    names = list(columns)
    ids = [str(uuid.uuid4()) for _ in range(len(probabilities))]
    rows = prediction_rows(
        ids,
        names,
        zip(*(columns[name].tolist() for name in names), strict=True),
        probabilities,
        [str(c) for c in model.classes],
        flag_notes(flags),
        paired_ids or [None] * len(ids),
    )
    shared = model_identity(model)
    records = [{**row, **shared, "variant": variant, **common} for row in rows]
    return records, Answers.of(model, variant, ids, probabilities, flags, common.get("ts", utc_now()))


def batch_log(
    model: ServedModel,
    variant: str,
    columns: Columns,
    probabilities: np.ndarray,
    flags: list[list[Problem]],
    paired_ids: list[str] | None = None,
    **common: Any,
) -> tuple[list[dict[str, Any]], Answers]:
    """A batch's one journal record (``prediction_log.batch_record``) and its answers: the rows' JSON, hashes and
    inserts are left to the journal's expansion, after the answer."""
    batch_id = new_batch_id()
    ids = batch_prediction_ids(batch_id, len(probabilities))
    record = batch_record(
        batch_id,
        columns,
        probabilities,
        model.classes,
        flag_notes(flags),
        paired_ids,
        variant=variant,
        **model_identity(model),
        **common,
    )
    return [record], Answers.of(model, variant, ids, probabilities, flags, common["ts"])


async def commit(records: list[dict[str, Any]], batched: bool = False) -> None:
    """Rows into the prediction log, or a batch's record into its journal; returns once committed (raises if not).

    Rows of a SQLite log commit on the event loop unless another writer holds the file (``EventLoopWriter``)."""
    rt = runtime()
    writer = rt.batch_journal if batched else rt.prediction_writer
    if writer is not None:
        waited = time.perf_counter()
        await asyncio.wrap_future(writer.submit(records))  # an asyncio future passes through as it is
        LOG_SECONDS.observe(time.perf_counter() - waited)


def fault(mode: str, exc: ChallengerFault) -> None:
    CHALLENGER_FAULTS.labels(mode=mode, reason=exc.reason).inc()
    logger.warning("challenger fault in %s mode, the champion answers: %s", mode, exc)


async def answer(
    request: Request,
    champion: ServedModel,
    columns: Columns,
    flags: list[list[Problem]],
    started: float,
    batched: bool = False,
) -> tuple[Answers, BackgroundTask | None]:
    """Score the rows with the assigned variant, commit them to the prediction log, then return the answers.

    In shadow mode the second value scores the rows with the challenger once the response has been sent.
    ``batched`` commits the rows as one record of the batch journal.
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
            probabilities = await scores(challenger_scores, challenger, columns)
            model = challenger
        except ChallengerFault as exc:
            fault(mode.mode, exc)
            variant = CHAMPION
    if probabilities is None:
        probabilities = await champion_scores(champion, columns, flags)
    latency_ms = (time.perf_counter() - started) * 1000
    log = batch_log if batched else log_records
    records, answers = log(
        model, variant, columns, probabilities, flags, ts=utc_now(), latency_ms=latency_ms, key_id=key_id
    )
    try:
        await commit(records, batched)
    except Exception as exc:
        raise LogUnavailable() from exc
    for prediction, count in Counter(str(p) for p in answers.predicted).items():
        PREDICTIONS.labels(variant=variant, model_version=str(model.version), prediction=prediction).inc(count)
    shadow = None
    if mode.mode == "shadow":
        shadow = BackgroundTask(score_shadow, challenger, columns, flags, answers.ids, key_id, batched)
    return answers, shadow


async def score_shadow(
    challenger: ServedModel | None,
    columns: Columns,
    flags: list[list[Problem]],
    ids: list[str],
    key_id: str | None,
    batched: bool = False,
) -> None:
    """After the response: the challenger's answers to the same rows, logged as shadow and never returned."""
    started = time.perf_counter()
    try:
        probabilities = await scores(challenger_scores, challenger, columns)
    except ChallengerFault as exc:
        fault(SHADOW, exc)
        return
    latency_ms = (time.perf_counter() - started) * 1000
    log = batch_log if batched else log_records
    records, _ = log(
        challenger, SHADOW, columns, probabilities, flags, ids, ts=utc_now(), latency_ms=latency_ms, key_id=key_id
    )
    try:
        await commit(records, batched)
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
        answers, shadow = await answer(request, model, columns_of([row], model.rules), [flags], started)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    except LogUnavailable as exc:
        return log_unavailable(exc)
    return json_response(answers.as_dicts()[0], background=shadow)


def answer_media_type(request: Request) -> str:
    """The first batch format the Accept header names (JSON when it names none)."""
    for item in request.headers.get("accept", "").split(","):
        if media_type_of(item) in BATCH_MEDIA_TYPES:
            return media_type_of(item)
    return JSON


def parse_batch_json(body: bytes) -> Any:
    """orjson, a fifth of the standard parser's time for a large batch; what orjson refuses (NaN tokens, integers
    beyond 64 bits, invalid text) is read by ``parse_json``, so it is refused or checked as /predict would."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return parse_json(body)


def json_batch(body: bytes, rules: list[FieldRule], settings: ServiceSettings) -> tuple[Columns, list, list[Problem]]:
    """A JSON batch ``{"rows": [...]}`` checked: (columns, flags, errors); a batch refused whole raises."""
    document = parse_batch_json(body)
    raw_rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(document, dict) or set(document) != {"rows"} or not isinstance(raw_rows, list):
        raise ClientError(422, "invalid_input", [Problem("rows", 'expected an object {"rows": [...]}')])
    check_row_count(len(raw_rows), settings.max_batch_rows)
    return check_json_rows(raw_rows, rules, refuse_out_of_range=settings.out_of_range == "refuse")


def columnar_batch(
    body: bytes, media_type: str, rules: list[FieldRule], settings: ServiceSettings
) -> tuple[Columns, list, list[Problem]]:
    """An Arrow IPC stream or Parquet batch checked: (columns, flags, errors); a batch refused whole raises."""
    table = read_table(body, media_type)
    return check_table(
        table, rules, max_rows=settings.max_batch_rows, refuse_out_of_range=settings.out_of_range == "refuse"
    )


async def predict_batch(request: Request) -> Response:
    """Rows as JSON, an Arrow IPC stream or a Parquet file; answered as JSON, or as the Accept header asks."""
    started = time.perf_counter()
    model = runtime().holder.current
    if model is None:
        return not_ready()
    settings = get_settings().service
    try:
        media_type, body = await read_body(request, BATCH_MEDIA_TYPES)
        if media_type == JSON:
            columns, flags, errors = await asyncio.to_thread(json_batch, body, model.rules, settings)
        else:
            columns, flags, errors = await asyncio.to_thread(columnar_batch, body, media_type, model.rules, settings)
    except (ClientError, BatchError) as exc:  # both carry the status, the error name and the problems
        return refuse(request, exc.status, exc.error, exc.problems)
    if errors:
        return refuse(request, 422, "invalid_input", errors)
    try:
        answers, shadow = await answer(request, model, columns, flags, started, batched=True)
    except ClientError as exc:
        return refuse(request, exc.status, exc.error, exc.problems)
    except LogUnavailable as exc:
        return log_unavailable(exc)
    reply = answer_media_type(request)
    if reply == JSON:
        content = await asyncio.to_thread(lambda: orjson.dumps({"predictions": answers.as_dicts()}))
    else:
        content = await asyncio.to_thread(lambda: write_table(answers.as_table(), reply))
    return Response(content, media_type=reply, background=shadow)


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
    answers, shadow = await answer(request, model, columns_of([row], model.rules), [flags], started)
    as_of = features.as_of.isoformat().replace("+00:00", "Z") if features.as_of else None
    return json_response({**answers.as_dicts()[0], key: entity_id, "features_as_of": as_of}, background=shadow)


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
        # A batch of 10,000 rows allocates hundreds of thousands of objects, nearly none in reference cycles; at the
        # default threshold (700) the collector ran hundreds of times per batch over every row still alive and cost
        # more than the batch's own work (measured: 0.5 s of 0.6 s building its log rows).
        gc.set_threshold(GC_ALLOCATIONS, *gc.get_threshold()[1:])

    def __is_ready__(self) -> bool:
        return self.runtime.holder.current is not None

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()
        access_log.stop()


# The first added is the outer one: the access log also sees what the guard refuses.
PredictionService.add_asgi_middleware(access_log.AccessLog)
PredictionService.add_asgi_middleware(ConnectionBalance)
PredictionService.add_asgi_middleware(Guard, runtime=runtime)
# Inside the guard: the page is open or closed by the same open_paths setting as every other route.
PredictionService.add_asgi_middleware(ServicePage)
