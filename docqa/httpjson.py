"""Request and response helpers shared by every HTTP blueprint: JSON bodies, flags, server-sent events."""
from __future__ import annotations

import json
from collections.abc import Iterator

from flask import request

from docqa.errors import DocqaError


def json_body() -> dict:
    """The request's JSON object; a 400 naming the fix when it is missing or not an object."""
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise DocqaError("The request body is not valid JSON. Send a JSON object with "
                         "Content-Type: application/json.", code="invalid_json")
    if not isinstance(body, dict):
        raise DocqaError("The request body must be a JSON object.", code="invalid_json")
    return body


def flag(body: dict, name: str) -> bool:
    """A boolean field of a JSON body, false when absent; 400 when it is not a boolean."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise DocqaError(f"'{name}' must be true or false.", code=f"invalid_{name}")
    return value


def sse(events: Iterator[tuple[str, dict]]) -> Iterator[str]:
    """Server-sent events: `event: <kind>` with a JSON `data` line each; a late error becomes `event: error`."""
    try:
        for kind, data in events:
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    except DocqaError as exc:
        yield f"event: error\ndata: {json.dumps(exc.to_dict(), ensure_ascii=False)}\n\n"
