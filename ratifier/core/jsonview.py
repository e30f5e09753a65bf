"""Records as JSON for people and log pipelines (the wire format stays Avro)."""

from __future__ import annotations

import base64
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "items"):
        return dict(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(record: Any) -> str:
    """A record (any model dataclass) as one line of JSON, with its type named."""
    body = orjson.loads(orjson.dumps(record, default=_default))
    return orjson.dumps({"type": type(record).__name__, **body}, default=_default).decode()
