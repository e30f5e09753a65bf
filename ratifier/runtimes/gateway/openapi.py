"""The gateway's OpenAPI 3.1 document, served at ``/openapi.json``.

Its schemas are plain JSON Schema (2020-12) without references between them, so the tests
validate the gateway's real answers against them (``jsonschema``): the document cannot drift
from what the API does.
"""

from __future__ import annotations

from typing import Any

from ratifier.runtimes.gateway.index import Status

_TEXT = {"type": "string"}

CASE_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["content"],
    "additionalProperties": False,
    "properties": {
        "content": {"type": "string", "minLength": 1, "description": "the AI output to judge"},
        "query": {**_TEXT, "description": "what the content answers"},
        "policy": {**_TEXT, "description": "policy name (default: default)"},
        "category": {**_TEXT, "description": "category for per-category weights"},
        "case_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "your id for the case (default: a new UUID); submitting it again "
            "does not open a second case",
        },
        "metadata": {"type": "object", "additionalProperties": _TEXT},
    },
}

CASE_VIEW: dict[str, Any] = {
    "type": "object",
    "required": ["case_id", "status", "final", "attempt", "decision", "outcome"],
    "properties": {
        "case_id": _TEXT,
        "status": {"enum": [s.value for s in Status]},
        "final": {"type": "boolean", "description": "a pass or an escalation was decided"},
        "attempt": {"type": ["integer", "null"]},
        "decision": {
            "type": ["object", "null"],
            "description": "the latest decision (PassDecision, RetryRequest or EscalationPacket, "
            "named by its type member), as `ratifier watch` prints it",
        },
        "outcome": {
            "type": ["object", "null"],
            "description": "the case's one outcome from <prefix>.outcomes, once written",
        },
    },
}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": _TEXT},
}

_WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "schema": {"type": "number", "minimum": 0},
    "description": "long-poll: wait up to this many seconds (capped) for a final decision",
}


def _json(schema: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "the request is not valid (the error says why)",
        401: "no or an unknown bearer token",
        404: "the gateway knows nothing of this case",
        413: "the body is larger than the gateway's limit",
        503: "not ready, or too many streams",
    }
    return {str(code): _json("Error", texts[code]) for code in codes}


def document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ratifier gateway",
            "version": version,
            "description": "Submit AI outputs for M-of-N validation and read the decisions.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/cases": {
                "post": {
                    "summary": "Submit a candidate for a case",
                    "parameters": [_WAIT],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CaseRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("CaseView", "decided within ?wait"),
                        "202": _json("CaseView", "accepted: sent to the candidates topic"),
                        **_errors(400, 401, 413, 503),
                    },
                }
            },
            "/v1/cases/{case_id}": {
                "get": {
                    "summary": "A case's status, latest decision and outcome",
                    "parameters": [
                        {"name": "case_id", "in": "path", "required": True, "schema": _TEXT},
                        _WAIT,
                    ],
                    "responses": {
                        "200": _json("CaseView", "the case"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/decisions": {
                "get": {
                    "summary": "Every decision as Server-Sent Events (read_committed)",
                    "description": "One event a decision: `event:` pass, retry or escalate, "
                    "`id:` the decision id, `data:` the decision as JSON. A comment line every "
                    "15 s keeps idle connections open.",
                    "parameters": [
                        {
                            "name": "from_beginning",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the event stream",
                            "content": {"text/event-stream": {"schema": _TEXT}},
                        },
                        **_errors(401, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"CaseRequest": CASE_REQUEST, "CaseView": CASE_VIEW, "Error": ERROR},
        },
    }
