"""Request and response helpers shared by every HTTP blueprint: JSON bodies, flags, server-sent events."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from docqa.errors import DocqaError

log = logging.getLogger("docqa.server")
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def json_body() -> dict:
    """The request's JSON object; a 400 naming the fix when it is missing or not an object."""
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError as exc:  # not a ValueError, so get_json's silent mode lets it through
        raise DocqaError("The request body nests JSON too deeply; send a flat JSON object.",
                         code="invalid_json") from exc
    if body is None:
        raise DocqaError("The request body is not valid JSON. Send a JSON object with "
                         "Content-Type: application/json.", code="invalid_json")
    if not isinstance(body, dict):
        raise DocqaError("The request body must be a JSON object.", code="invalid_json")
    # JSON may escape half a surrogate pair ("\ud800"), which no tokenizer or store accepts. Only an
    # escaped surrogate can produce one, so the (4x slower than parsing) full check runs only then.
    try:
        if _SURROGATE_ESCAPE.search(request.get_data(cache=True)):
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DocqaError("The request body contains an unpaired UTF-16 surrogate (such as \\ud800); "
                         "send valid Unicode text.", code="invalid_text") from exc
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
    except Exception:  # headers are sent: the client still learns the stream failed, and why to look at the log
        log.exception("unhandled error in an answer stream")
        body = {"error": {"code": "internal_error", "message": "docqa hit an internal error; the server log has the details."}}
        yield f"event: error\ndata: {json.dumps(body)}\n\n"


def error_response(body: dict, status: int, *, retry_after: float | None = None,
                   cause: HTTPException | None = None) -> Response:
    """A JSON error with the headers its status calls for: Retry-After on 503 (and when the error
    gives one), WWW-Authenticate on 401, and those of a werkzeug `cause` (e.g. Allow on a 405)."""
    response = jsonify(body)
    response.status_code = status
    for name, value in cause.get_headers() if cause is not None else ():
        if name.lower() != "content-type":
            response.headers[name] = value
    if retry_after is not None or status == 503:
        response.headers["Retry-After"] = str(max(1, int(round(retry_after or 5))))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="docqa"'
    return response


def http_error_code(exc: HTTPException) -> str:
    """A werkzeug exception's name as an error code: "Method Not Allowed" -> method_not_allowed."""
    return (exc.name or "error").lower().replace(" ", "_")

