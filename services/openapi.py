"""The OpenAPI document of the data-plane routes, served at ``/openapi.json``.

BentoML publishes ``/docs.json`` for ``@bentoml.api`` methods only; the routes here are a mounted Starlette
app, so their contract is written once, here, next to the checks it describes. The row schema comes from the
model being served (its signature and, under the refuse policy, its training ranges and categories), so the
document changes with the champion, as the accepted fields do.
"""

from __future__ import annotations

from typing import Any

from mlops_core.prediction_log import VARIANTS
from mlops_core.settings import Settings
from services.columnar import ARROW_STREAM, BATCH_MEDIA_TYPES, PARQUET
from services.inputs import FieldRule
from services.models import ServedModel
from services.page import DOCS_PATH

ENTITY_EXAMPLE = 101  # the entity id the /predict_entity example names (an id the generator's data could hold)
_JSON_TYPES = {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(rule: FieldRule, refuse_out_of_range: bool) -> dict[str, Any]:
    kind = _JSON_TYPES[rule.kind]
    schema: dict[str, Any] = {"type": kind if rule.required else [kind, "null"]}
    if refuse_out_of_range and rule.low is not None and rule.high is not None:
        schema.update(minimum=rule.low, maximum=rule.high)
    if refuse_out_of_range and rule.categories is not None:
        schema["enum"] = sorted(rule.categories) + ([] if rule.required else [None])
    return schema


def _row_schemas(model: ServedModel | None, refuse_out_of_range: bool) -> dict[str, Any]:
    """A row as named features, and as a list in signature order; any object while no model is loaded."""
    if model is None:
        return {"Row": {"type": "object"}, "RowValues": {"type": "array"}}
    fields = {rule.name: _field_schema(rule, refuse_out_of_range) for rule in model.rules}
    return {
        "Row": {
            "type": "object",
            "properties": fields,
            "required": [rule.name for rule in model.rules if rule.required],
            "additionalProperties": False,
        },
        "RowValues": {
            "type": "array",
            "description": "The values in signature order: " + ", ".join(fields),
            "prefixItems": list(fields.values()),
            "items": False,
            "minItems": len(fields),
        },
    }


def _responses(ok_status: str, ok_schema: dict[str, Any], *errors: tuple[str, str]) -> dict[str, Any]:
    def json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    responses = {ok_status: json_body("answered", ok_schema)}
    responses.update({status: json_body(description, _ref("Error")) for status, description in errors})
    return responses


_KEY_ERRORS = (
    ("401", "no key, or a key that is unknown or revoked"),
    ("405", "method not allowed on this path"),
    ("429", "the key's rate limit is reached (see Retry-After)"),
    ("503", "the rate-limit store cannot record the request (see Retry-After)"),
)
_BODY_ERRORS = (
    ("400", "the body is not UTF-8 JSON"),
    ("413", "the body is larger than the limit"),
    ("415", "the content type is not application/json"),
    ("422", "the body does not match the model's input; each problem names its field"),
)


_BATCH_ERRORS = (
    ("400", "the body is not UTF-8 JSON, or not a readable Arrow IPC stream or Parquet file"),
    ("413", "the body is larger than the limit"),
    ("415", f"the content type is none of {', '.join(BATCH_MEDIA_TYPES)}"),
    ("422", "the batch does not match the model's input; each problem names its column (or row and field)"),
)


def _batch_request(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    request = _json_request(schema, example)
    for media_type in (ARROW_STREAM, PARQUET):
        request["content"][media_type] = {"schema": {"type": "string", "contentMediaType": media_type}}
    return request


def _batch_responses(ok_schema: dict[str, Any], *errors: tuple[str, str]) -> dict[str, Any]:
    responses = _responses("200", ok_schema, *errors)
    for media_type in (ARROW_STREAM, PARQUET):
        responses["200"]["content"][media_type] = {"schema": {"type": "string", "contentMediaType": media_type}}
    return responses


def _json_request(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": schema}
    if example is not None:
        body["example"] = example
    return {"required": True, "content": {"application/json": body}}


def document(model: ServedModel | None, settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the routes as they accept and answer requests now."""
    service = settings.service
    refuse = service.out_of_range == "refuse"
    row_forms = {"anyOf": [_ref("Row"), _ref("RowValues")]}
    problem = {
        "type": "object",
        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["field", "reason"],
    }
    summary = {
        "type": ["object", "null"],
        "properties": {"name": {"type": "string"}, "version": {"type": "integer"}, "semver": {"type": "string"}},
        "required": ["name", "version", "semver"],
    }
    schemas: dict[str, Any] = {
        **_row_schemas(model, refuse),
        "Problem": problem,
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "detail": {"type": "array", "items": _ref("Problem")}},
            "required": ["error", "detail"],
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "prediction_id": {"type": "string"},
                "prediction": {"type": ["integer", "string", "boolean", "number"]},
                "confidence": {"type": "number"},
                "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
                "model_name": {"type": "string"},
                "model_version": {"type": "integer"},
                "model_semver": {"type": "string"},
                "variant": {"enum": list(VARIANTS)},
                "timestamp": {"type": "string", "format": "date-time"},
                "warnings": {"type": "array", "items": _ref("Problem")},
            },
            "required": [
                "prediction_id",
                "prediction",
                "confidence",
                "probabilities",
                "model_name",
                "model_version",
                "model_semver",
                "variant",
                "timestamp",
                "warnings",
            ],
        },  # fmt: skip
        "Status": {
            "type": "object",
            "properties": {
                "status": {"enum": ["ready", "degraded", "not_ready"]},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "worker": {"type": "integer"},
                "model": summary,
                "challenger": summary,
                "serving": {
                    "type": "object",
                    "properties": {"mode": {"type": "string"}, "challenger_share": {"type": "number"}},
                    "required": ["mode", "challenger_share"],
                },
            },
            "required": ["status", "reasons", "worker", "model", "challenger", "serving"],
        },
    }
    not_ready = (
        "503",
        "no model loaded yet, or the prediction log or rate-limit store cannot record (see Retry-After)",
    )
    predict_body = {
        "anyOf": [
            _ref("Row"),
            {
                "type": "object",
                "properties": {"features": row_forms},
                "required": ["features"],
                "additionalProperties": False,
            },
        ]
    }
    batch_body = {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": row_forms, "minItems": 1, "maxItems": service.max_batch_rows}
        },
        "required": ["rows"],
        "additionalProperties": False,
    }
    feedback_body = {
        "type": "object",
        "properties": {
            "prediction_id": {"type": "string", "minLength": 1, "maxLength": 36},
            "ground_truth": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]},
        },
        "required": ["prediction_id", "ground_truth"],
        "additionalProperties": False,
    }
    feedback_answer = {
        "type": "object",
        "properties": {
            "prediction_id": {"type": "string"},
            "ground_truth": {"type": "string"},
            "recorded": {"const": True},
        },
        "required": ["prediction_id", "ground_truth", "recorded"],
    }
    # Examples are the served model's own input example, so "Try it out" sends a row this model accepts.
    rows = model.example if model else []
    entity_key = settings.data.entity_id or "entity_id"
    open_paths = set(service.open_paths)

    def openness(path: str) -> dict[str, Any]:
        return {"security": []} if path in open_paths else {}

    paths = {
        "/predict": {
            "post": {
                "summary": "Score one row",
                "description": "Send the row's fields by name (as in the example), or as "
                '`{"features": {...}}`, or `{"features": [...]}` in signature order.',
                "requestBody": _json_request(predict_body, rows[0] if rows else None),
                "responses": _responses("200", _ref("Prediction"), *_KEY_ERRORS, *_BODY_ERRORS, not_ready),
            }
        },
        "/predict_batch": {
            "post": {
                "summary": f"Score up to {service.max_batch_rows} rows",
                "description": "Rows as JSON, as an Apache Arrow IPC stream or as a Parquet file: one column per "
                "field of `Row`, named as there (numbers: an integer or floating-point column; text: a string "
                "column; a missing value is null, NaN is refused). The answer is JSON unless `Accept` names "
                "one of the columnar types: then it is a table in that format with the columns of `Prediction` "
                "(`probabilities` a struct with a field per class, `warnings` a list of structs). A batch "
                "refused whole names the column and the reason, and the rows concerned.",
                "requestBody": _batch_request(batch_body, {"rows": rows} if rows else None),
                "responses": _batch_responses(
                    {
                        "type": "object",
                        "properties": {"predictions": {"type": "array", "items": _ref("Prediction")}},
                        "required": ["predictions"],
                    },
                    *_KEY_ERRORS,
                    *_BATCH_ERRORS,
                    not_ready,
                ),
            }
        },
        "/feedback": {
            "post": {
                "summary": "Record the ground truth of an earlier prediction",
                "description": "`prediction_id` is the id of an earlier answer of /predict, /predict_batch or "
                "/predict_entity; `ground_truth` is the class that was observed.",
                "requestBody": _json_request(
                    feedback_body,
                    {"prediction_id": "0b9a1f5e-3c4d-4e8f-9a7b-6c5d4e3f2a1b", "ground_truth": model.classes[0]}
                    if model
                    else None,
                ),
                "responses": _responses(
                    "200",
                    feedback_answer,
                    *_KEY_ERRORS,
                    *_BODY_ERRORS,
                    ("404", "no logged prediction with this id"),
                    ("409", "the prediction log is off"),
                    ("503", "the prediction log or rate-limit store cannot record (see Retry-After)"),
                ),
            }
        },
        "/predict_entity": {
            "post": {
                "summary": "Score a stored entity with its newest features from the online feature store",
                "description": f'The body names only the entity: `{{"{entity_key}": <integer>}}`; the answer is '
                f"the /predict answer with `{entity_key}` and `features_as_of` added.",
                "requestBody": _json_request(
                    {
                        "type": "object",
                        "properties": {entity_key: {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}},
                        "required": [entity_key],
                        "additionalProperties": False,
                    },
                    {entity_key: ENTITY_EXAMPLE},
                ),
                "responses": _responses(
                    "200",
                    {
                        "allOf": [
                            _ref("Prediction"),
                            {
                                "type": "object",
                                "properties": {
                                    entity_key: {"type": "integer"},
                                    "features_as_of": {"type": ["string", "null"], "format": "date-time"},
                                },
                                "required": [entity_key, "features_as_of"],
                            },
                        ]
                    },
                    *_KEY_ERRORS,
                    *_BODY_ERRORS[:3],
                    ("404", "no entity with this id in the feature store"),
                    ("422", "the body is not one integer entity id, or the stored features miss or break a field"),
                    (
                        "503",
                        "no model loaded yet, the online feature store cannot be read, or the prediction log or "
                        "rate-limit store cannot record (see Retry-After)",
                    ),
                ),
            }
        },
        "/admin/reload": {
            "post": {
                "summary": "Check the champion alias now, in every worker",
                "responses": _responses("202", _ref("Status"), *_KEY_ERRORS, ("403", "the key is not an admin key")),
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness of the worker that answers, with reasons",
                "security": [],
                "responses": {
                    "200": {
                        "description": "ready or degraded",
                        "content": {"application/json": {"schema": _ref("Status")}},
                    },
                    "503": {
                        "description": "not ready",
                        "content": {"application/json": {"schema": _ref("Status")}},
                    },
                    "405": {
                        "description": "method not allowed on this path",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
            }
        },
    }
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document, for the model being served now",
            **openness("/openapi.json"),
            "responses": {"200": {"description": "the OpenAPI 3.1 document", "content": {"application/json": {}}}},
        }
    }
    paths[DOCS_PATH] = {
        "get": {
            "summary": "This page: Swagger UI over /openapi.json (GET / redirects here)",
            **openness(DOCS_PATH),
            "responses": {"200": {"description": "the HTML page", "content": {"text/html": {}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlops prediction service",
            "version": f"{model.name} {model.version} ({model.semver})" if model else "no model loaded",
            "description": "Predictions from the registered champion model. Send an API key as "
            "`Authorization: Bearer <key>` or `X-API-Key` (Authorize, above); the examples are the served "
            "model's own input example. Liveness at /livez, readiness with reasons at /readyz, metrics at /metrics.",
        },
        "paths": paths,
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
