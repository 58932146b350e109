"""OpenAI-compatible endpoints: models (one per collection), chat completions, embeddings, moderations.

A tool that speaks the OpenAI API works against docqa by changing only its base URL to
`http://HOST:PORT/v1`: the `model` of a chat completion names the collection that answers it. Errors
on these routes are OpenAI-shaped, `{"error": {"message", "type", "param", "code"}}`, a superset of
docqa's own `{"error": {"code", "message"}}`, so SDK clients raise their usual exceptions.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from itertools import chain

import numpy as np
from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import HTTPException

from docqa.answer import Question, answer_dict, validate_question
from docqa.config import Settings
from docqa.errors import DocqaError, EmbedderMismatch, ModelNotFound, NotFound
from docqa.httpjson import error_response, flag, http_error_code, json_body
from docqa.services import services
from docqa.store import NAME_RULE, validate_collection_name

log = logging.getLogger("docqa.openai_api")

blueprint = Blueprint("openai_api", __name__)

MAX_EMBEDDING_INPUTS = 2048          # OpenAI's own limit per request
MAX_MODERATION_INPUTS = 256
MAX_INPUT_CHARS = 100_000            # one input; refused before it is tokenized
MAX_EMBEDDING_CHARS = 2_000_000      # all inputs of one embeddings request
MAX_MODERATION_CHARS = 200_000       # all inputs of one moderations request
# Request fields that would change what an OpenAI client gets back and that docqa cannot honour:
# refused with a 400 rather than silently ignored. Every other field (temperature, max_tokens,
# top_p, stop, seed, user, ...) is accepted and ignored: answers are grounded extracts or a
# grounded model reply whose length DOCQA_MAX_ANSWER_TOKENS bounds.
_REFUSED = ("n", "tools", "functions", "tool_choice", "function_call", "response_format", "logprobs",
            "top_logprobs", "audio", "modalities")
# Content parts that carry text; any other part (image_url, input_audio, file) is refused.
_TEXT_PARTS = ("text", "input_text")



# ---- errors ----------------------------------------------------------------------------------------


def _error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def _error_body(status: int, code: str, message: str, details: dict | None = None) -> dict:
    details = dict(details or {})
    param = details.pop("param", None)
    return {"error": {"message": message, "type": _error_type(status), "param": param, "code": code, **details}}


def _error_response(status: int, body: dict, retry_after: float | None = None,
                    cause: HTTPException | None = None) -> Response:
    response = error_response(body, status, retry_after=retry_after, cause=cause)
    # OpenAI SDKs retry 409s and every 5xx by default; a request that was refused for what it
    # says fails the same way again, so they are told not to (they obey x-should-retry).
    response.headers["x-should-retry"] = "true" if status in (408, 429) or status >= 500 else "false"
    return response


@blueprint.errorhandler(DocqaError)
def _docqa_error(exc: DocqaError) -> Response:
    return _error_response(exc.status, _error_body(exc.status, exc.code, exc.message, exc.details),
                           exc.retry_after)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _error_response(status, _error_body(status, http_error_code(exc), exc.description or exc.name),
                           cause=exc)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in the OpenAI-compatible API")
    return _error_response(500, _error_body(500, "internal_error",
                                            "docqa hit an internal error; the server log has the details."))


# ---- models ------------------------------------------------------------------------------------------


@blueprint.get("/v1/models")
def list_models():
    """Every collection this server can answer from, as an OpenAI model list."""
    models = []
    for name in services().collections.names():
        try:
            models.append(_model(name))
        except (NotFound, EmbedderMismatch):
            continue  # deleted since it was listed, or built by another embedder: it cannot answer
        except DocqaError as exc:
            # One damaged collection must not hide the others; /readyz reports it too.
            log.warning("collection %s left out of /v1/models: %s", name, exc.message)
    return jsonify({"object": "list", "data": models})


@blueprint.get("/v1/models/<path:model>")
def get_model(model: str):
    """One collection as an OpenAI model object; 404 model_not_found naming how to create it."""
    return jsonify(_model(_existing_collection(model)))


def _model(name: str) -> dict:
    info = services().collections.retriever(name).store.info()
    created = datetime.fromisoformat(info["created_at"]).replace(tzinfo=UTC)
    return {"id": name, "object": "model", "created": int(created.timestamp()), "owned_by": "docqa"}


def _existing_collection(model: object) -> str:
    """`model` when it names a collection on disk; ModelNotFound (404) with the fix otherwise."""
    svc = services()
    names = svc.collections.names()
    if isinstance(model, str) and model in names:
        return model
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
    try:
        validate_collection_name(model)
    except DocqaError:
        raise ModelNotFound(f"The model {model!r} does not exist: on docqa a model is a collection of "
                            f"documents, and collection names use {NAME_RULE}. Available: {shown} "
                            "(GET /v1/models lists them).", details={"param": "model"}) from None
    raise ModelNotFound(f"The model '{model}' does not exist: on docqa a model is a collection of documents "
                        f"(available: {shown}). Create it by uploading files (POST /v1/collections/{model}/"
                        f"documents) or with `docqa ingest PATH --collection {model}`.",
                        details={"param": "model"})


# ---- chat completions -------------------------------------------------------------------------------


@blueprint.post("/v1/chat/completions")
def chat_completions():
    """The last user message answered from the collection named by `model`, as an OpenAI chat completion."""
    body = json_body()
    _refuse_unsupported(body)
    svc = services()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DocqaError("'model' is required: set it to the collection to answer from (GET /v1/models "
                         "lists them).", code="invalid_model", details={"param": "model"})
    collection = _existing_collection(model)
    stream = _flag(body, "stream")
    include_usage = _include_usage(body.get("stream_options"), stream)
    q = _question(body, collection, svc.settings)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not stream:
        result = answer_dict(_not_found_as_model(lambda: svc.pipeline.ask(q), collection), collection)
        return jsonify({
            "id": completion_id, "object": "chat.completion", "created": created, "model": collection,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["answer"], "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(result["usage"]),
            "citations": result["citations"], "answered": result["answered"], "moderation": result["moderation"],
        })
    events = svc.pipeline.stream(q)
    # Moderation, retrieval and provider failures surface on the first event: still a JSON error.
    first = _not_found_as_model(lambda: next(events), collection)
    chunks = _chunks(first, events, completion_id, created, collection, include_usage)
    return Response(chunks, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _refuse_unsupported(body: dict) -> None:
    """A 400 naming every field that asks for something docqa cannot do (and how to drop it)."""
    refused = []
    for name in _REFUSED:
        value = body.get(name)
        if value is None or value is False or value == [] or (value == 0 and name == "top_logprobs"):
            continue
        if name == "n" and value == 1 and not isinstance(value, bool):
            continue
        if name in ("tool_choice", "function_call") and value == "none":
            continue
        if name == "response_format" and isinstance(value, dict) and value.get("type") == "text":
            continue
        if name == "modalities" and value == ["text"]:
            continue
        refused.append(name)
    if refused:
        names = ", ".join(f"'{n}'" for n in refused)
        raise DocqaError(f"docqa does not support {names}: it returns one text answer grounded in the "
                         "collection's documents (no tools, structured output, logprobs or audio). Remove "
                         f"{'it' if len(refused) == 1 else 'them'} ('n' may be 1).",
                         code="unsupported_parameter", details={"param": refused[0]})


def _include_usage(options: object, stream: bool) -> bool:
    if options is None:
        return False
    if not stream:
        raise DocqaError("'stream_options' is only allowed with \"stream\": true.", code="invalid_stream_options",
                         details={"param": "stream_options"})
    if not isinstance(options, dict):
        raise DocqaError("'stream_options' must be an object, e.g. {\"include_usage\": true}.",
                         code="invalid_stream_options", details={"param": "stream_options"})
    return _flag(options, "include_usage")


def _question(body: dict, collection: str, settings: Settings) -> Question:
    """The Question: the last message is the question, the user/assistant turns before it its history.

    System and developer messages are ignored: docqa's own instructions keep answers grounded in the
    documents and a client's system prompt must not loosen them.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DocqaError("'messages' must be a non-empty list of {\"role\", \"content\"} objects ending with "
                         "the user's question.", code="invalid_messages", details={"param": "messages"})
    turns = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            continue
        if role in ("tool", "function") or role == "assistant" and (message.get("tool_calls")
                                                                     or message.get("function_call")):
            raise DocqaError(f"{where} is a tool call or result: docqa does not call tools. Send only "
                             "system, user and assistant messages.", code="unsupported_parameter",
                             details={"param": where})
        if role not in ("user", "assistant"):
            raise DocqaError(f"{where} has role {role!r}: use system, developer, user or assistant.",
                             code="invalid_messages", details={"param": where})
        turns.append({"role": role, "content": _text(message.get("content"), role, f"{where}.content")})
    if not turns or turns[-1]["role"] != "user":
        raise DocqaError("The last user or assistant message must be the user's question: end 'messages' with "
                         "{\"role\": \"user\", \"content\": \"...\"}.", code="invalid_messages",
                         details={"param": "messages"})
    text = turns[-1]["content"].strip()
    if not text:
        raise DocqaError("The last user message is empty: put the question in its content.",
                         code="invalid_messages", details={"param": f"messages[{len(messages) - 1}]"})
    if len(text) > settings.max_question_chars:
        raise DocqaError(f"The question (the last user message) is {len(text)} characters; the limit is "
                         f"{settings.max_question_chars} (DOCQA_MAX_QUESTION_CHARS). Shorten it.",
                         code="question_too_long", details={"param": f"messages[{len(messages) - 1}]"})
    ask = {"question": text, "collection": collection, "top_k": body.get("top_k"), "history": turns[:-1]}
    try:
        return validate_question(ask, settings)
    except DocqaError as exc:
        exc.details.setdefault("param", "top_k" if exc.code == "invalid_top_k" else "messages")
        raise


def _text(content: object, role: str, path: str) -> str:
    """A message's text: a string, text parts joined by newlines, or '' for an assistant's null content."""
    if isinstance(content, str):
        return content
    if content is None and role == "assistant":
        return ""
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in _TEXT_PARTS:
                if not isinstance(part.get("text"), str):
                    raise DocqaError(f"{path}[{j}].text must be a string.", code="invalid_messages",
                                     details={"param": path})
                parts.append(part["text"])
            elif kind == "refusal" and role == "assistant":
                continue
            else:
                raise DocqaError(f"{path}[{j}] is a {kind or type(part).__name__!r} part: docqa takes text "
                                 "only. Send the content as a string or text parts.",
                                 code="unsupported_content", details={"param": path})
        return "\n".join(parts)
    raise DocqaError(f"{path} must be a string or a list of text parts.", code="invalid_messages",
                     details={"param": path})


def _not_found_as_model(call, collection: str):
    """Runs `call`; a collection deleted since it was checked is still a 404 about the model."""
    try:
        return call()
    except NotFound as exc:
        if exc.code != "collection_not_found":
            raise
        raise ModelNotFound(f"The model '{collection}' (a collection) is gone or still being created: "
                            f"{exc.message}", details={"param": "model"}) from exc


def _flag(body: dict, name: str) -> bool:
    """A boolean field where null means false, as OpenAI clients sometimes send it."""
    return flag({name: False if body.get(name) is None else body[name]}, name)


def _usage(usage: dict) -> dict:
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion)}


def _chunks(first: tuple[str, dict], events: Generator[tuple[str, dict], None, None], completion_id: str,
            created: int, model: str, include_usage: bool) -> Iterator[str]:
    """chat.completion.chunk SSE lines, `data: [DONE]` last; a late error is an OpenAI-shaped error event.

    The chunk carrying finish_reason, and every chunk after it, also carries "citations" and "answered".
    """
    def chunk(delta: dict | None, finish: str | None = None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None, "choices": choices, **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        result = None
        for kind, data in chain([first], events):
            if kind == "delta" and data["text"]:
                yield chunk({"content": data["text"]})
            elif kind == "done":
                result = data
        if result is None:
            raise DocqaError("The answer stream ended without an answer; ask again.", status=502,
                             code="incomplete_answer")
        extras = {"citations": result["citations"], "answered": result["answered"],
                  "moderation": result["moderation"]}
        yield chunk({}, "stop", **extras)
        if include_usage:
            yield chunk(None, usage=_usage(result["usage"]), **extras)
        yield "data: [DONE]\n\n"
    except DocqaError as exc:
        # Headers are sent: the error travels in the stream, where OpenAI SDKs raise it as an APIError.
        body = _error_body(exc.status, exc.code, exc.message, exc.details)
        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    except Exception:
        log.exception("unhandled error in a chat completion stream")
        body = _error_body(500, "internal_error", "docqa hit an internal error; the server log has the details.")
        yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    finally:
        events.close()  # a client that hung up stops the chat model's stream too


# ---- embeddings --------------------------------------------------------------------------------------


@blueprint.post("/v1/embeddings")
def embeddings():
    """Vectors from the configured embedder, as OpenAI's embeddings response (float or base64)."""
    body = json_body()
    embedder = services().embedder
    texts = _inputs(body.get("input"), MAX_EMBEDDING_INPUTS, MAX_EMBEDDING_CHARS, what="embed")
    model = _model_field(body, embedder.name)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise DocqaError(f"'encoding_format' must be \"float\" or \"base64\", got {encoding!r}.",
                         code="invalid_encoding_format", details={"param": "encoding_format"})
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != embedder.dim:
        raise DocqaError(f"'dimensions' must be {embedder.dim} (the size of {embedder.name}'s vectors) or "
                         "left out: docqa cannot shorten them.", code="invalid_dimensions",
                         details={"param": "dimensions"})
    counts = _token_counts(embedder, texts)
    if hasattr(embedder, "count_tokens"):
        for i, n in enumerate(counts):
            if n > embedder.max_tokens:
                raise DocqaError(f"input[{i}] is {n} tokens; {embedder.name} embeds at most {embedder.max_tokens}. "
                                 "Split it into smaller pieces.", code="input_too_long",
                                 details={"param": "input", "index": i})
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    data = [{"object": "embedding", "index": i,
             "embedding": _encode(vector, encoding)} for i, vector in enumerate(vectors)]
    total = sum(counts)
    return jsonify({"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": total, "total_tokens": total}})


def _token_counts(embedder, texts: list[str]) -> list[int]:
    """Tokens per text in the embedder's tokenizer when it has one, else tiktoken's cl100k_base."""
    if hasattr(embedder, "count_tokens_batch"):
        return list(embedder.count_tokens_batch(texts))
    if hasattr(embedder, "count_tokens"):
        return [embedder.count_tokens(t) for t in texts]
    from docqa import tokens  # lazy: the encoding loads on first use, not at import

    return [tokens.count(t) for t in texts]


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        # What OpenAI sends and its SDKs decode: little-endian float32 bytes.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


# ---- moderations -------------------------------------------------------------------------------------


@blueprint.post("/v1/moderations")
def moderations():
    """The configured moderator's verdict on each input, as OpenAI's moderation response."""
    body = json_body()
    moderator = services().moderator
    if moderator is None:
        raise DocqaError("Moderation is turned off on this server (DOCQA_MODERATOR=none): set DOCQA_MODERATOR "
                         "to local or openai to serve /v1/moderations.", status=404, code="moderation_disabled")
    raw = body.get("input")
    if isinstance(raw, list) and raw and all(isinstance(p, dict) for p in raw):
        # OpenAI's multi-modal form: a list of parts is one input, with one result.
        raw = _text(raw, "user", "input")
    texts = _inputs(raw, MAX_MODERATION_INPUTS, MAX_MODERATION_CHARS, what="moderate")
    _model_field(body, moderator.name)
    results = moderator.moderate(texts)
    return jsonify({"id": f"modr-{uuid.uuid4().hex}", "model": moderator.name,
                    "results": [{"flagged": bool(r["flagged"]), "categories": r["categories"],
                                 "category_scores": r["category_scores"],
                                 **{k: v for k, v in r.items() if k not in ("flagged", "categories",
                                                                            "category_scores")}}
                                for r in results]})


# ---- shared input checks -------------------------------------------------------------------------


def _inputs(raw: object, max_inputs: int, max_chars: int, *, what: str) -> list[str]:
    """`input` as a list of non-empty strings within the limits; 400s naming the problem otherwise."""
    def bad(message: str, code: str = "invalid_input") -> DocqaError:
        return DocqaError(message, code=code, details={"param": "input"})

    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise bad(f"'input' must be a string or a non-empty list of strings to {what}.")
    if any(isinstance(t, int) or isinstance(t, list) and t and all(isinstance(x, int) for x in t) for t in texts):
        raise bad(f"'input' holds token ids: docqa takes text and tokenizes it itself. Send the strings to {what} "
                  "(with the OpenAI SDK, pass strings, not tokens).", code="token_input_unsupported")
    if len(texts) > max_inputs:
        raise bad(f"'input' has {len(texts)} items; the limit is {max_inputs} per request. Send them in batches.",
                  code="too_many_inputs")
    total = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise bad(f"input[{i}] is {type(text).__name__}: every input must be a string.")
        if not text:
            raise bad(f"input[{i}] is empty: every input must be a non-empty string.")
        if len(text) > MAX_INPUT_CHARS:
            raise bad(f"input[{i}] is {len(text)} characters; the limit is {MAX_INPUT_CHARS}. Split it.",
                      code="input_too_long")
        total += len(text)
    if total > max_chars:
        raise bad(f"'input' totals {total} characters; the limit is {max_chars} per request. Send fewer at once.",
                  code="input_too_long")
    return texts


def _model_field(body: dict, default: str) -> str:
    """The request's `model` (any name: the configured provider serves it), or `default` when absent."""
    model = body.get("model")
    if model is None:
        return default
    if not isinstance(model, str) or not model:
        raise DocqaError("'model' must be a non-empty string.", code="invalid_model", details={"param": "model"})
    return model
