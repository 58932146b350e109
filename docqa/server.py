"""The HTTP service: `create_app(settings, ...)`, its routes and one JSON error handler."""
from __future__ import annotations

import dataclasses
import logging
import time
from itertools import chain

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from docqa.answer import AskPipeline, Collections, answer_dict, validate_question
from docqa.auth import ApiKeys, check, check_exposure
from docqa.config import Settings
from docqa.errors import DocqaError
from docqa.httpjson import error_response, flag, http_error_code, json_body, sse
from docqa.jobs import JobQueue
from docqa.services import Services

log = logging.getLogger("docqa.server")
PROBE_TTL = 30.0  # seconds a provider that answered /readyz's probe counts as up without a new call


def create_app(settings: Settings | None = None, *, embedder=None, moderator=None, chat=None,
               warm: bool = False, start_jobs: bool = True) -> Flask:
    """The Flask app; providers not given are built from `settings` (read from DOCQA_* when None)."""
    from docqa.providers.registry import make_chat, make_embedder, make_moderator

    settings = settings or Settings.from_env()
    keys = ApiKeys.parse(settings.api_keys)  # a malformed key list fails before any model loads
    embedder = embedder if embedder is not None else make_embedder(settings)
    moderator = moderator if moderator is not None else make_moderator(settings)
    chat = chat if chat is not None else make_chat(settings)
    collections = Collections(settings, embedder)
    pipeline = AskPipeline(settings, collections, moderator, chat)
    if warm:
        embedder.embed(["warm up"])

    app = Flask("docqa", static_folder=None)  # docqa.web serves /static with its own headers
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_mb * 1024 * 1024
    jobs = JobQueue(settings, embedder)
    app.extensions["docqa"] = dataclasses.replace(
        Services(settings, embedder, moderator, chat, collections, pipeline), jobs=jobs)
    if start_jobs:  # tests may run jobs with jobs.run_pending() instead of worker threads
        jobs.start()
    _register_blueprints(app)

    @app.before_request
    def authorize():
        check(keys, request.method, request.path, request.headers)

    @app.errorhandler(DocqaError)
    def docqa_error(exc: DocqaError):
        return error_response(exc.to_dict(), exc.status, retry_after=exc.retry_after)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        body = {"error": {"code": http_error_code(exc), "message": exc.description or exc.name}}
        return error_response(body, exc.code or 500, cause=exc)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = jsonify({"error": {"code": "internal_error",
                                      "message": "docqa hit an internal error; the server log has the details."}})
        response.status_code = 500
        return response

    @app.post("/v1/ask")
    def ask():
        body = json_body()
        q = validate_question(body, settings)
        if flag(body, "stream"):
            events = pipeline.stream(q)
            first = next(events)  # moderation, retrieval and provider errors surface here, as JSON errors
            return Response(sse(chain([first], events)), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return jsonify(answer_dict(pipeline.ask(q), q.collection))

    @app.post("/v1/search")
    def search():
        body = json_body()
        q = validate_question({k: body.get(k) for k in ("query", "collection", "top_k")}, settings, "query")
        mode = body.get("mode")
        if mode is not None and mode not in ("hybrid", "dense", "bm25"):
            raise DocqaError("'mode' must be one of hybrid, dense, bm25.", code="invalid_mode")
        hits = pipeline.search(q.text, q.collection, q.top_k, mode)
        return jsonify({"hits": [{"document": h.chunk.doc, "document_id": h.chunk.doc_id, "page_start": h.chunk.page_start,
                                  "page_end": h.chunk.page_end, "score": round(float(h.score), 6),
                                  "text": h.chunk.text} for h in hits], "collection": q.collection})

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    probed_ok: dict[str, float] = {}

    @app.get("/readyz")
    def readyz():
        checks: dict[str, str] = {}
        ok = True
        for name in collections.names():
            try:
                collections.retriever(name)
                checks[f"collection:{name}"] = "ok"
            except DocqaError as exc:
                ok, checks[f"collection:{name}"] = False, exc.message
        for role, probe in (("embedder", lambda: embedder.embed(["ready"])),
                            ("moderator", lambda: moderator and moderator.moderate(["ready"]))):
            # A provider that answered recently is not asked again: with a paid API every probe
            # would be a billed call. A failing one is re-probed each time, so recovery shows at once.
            if role in probed_ok and time.monotonic() - probed_ok[role] < PROBE_TTL:
                checks[role] = "ok"
                continue
            try:
                probe()
                checks[role] = "ok"
                probed_ok[role] = time.monotonic()
            except DocqaError as exc:
                ok, checks[role] = False, exc.message
        response = jsonify({"status": "ready" if ok else "not ready", "checks": checks})
        response.status_code = 200 if ok else 503
        if not ok:
            response.headers["Retry-After"] = "5"
        return response

    return app


def _register_blueprints(app: Flask) -> None:
    """Collections, documents and jobs; the OpenAI-compatible API; the web page."""
    from docqa.documents_api import blueprint as documents
    from docqa.openai_api import blueprint as openai_compatible
    from docqa.web import blueprint as web

    for bp in (documents, openai_compatible, web):
        app.register_blueprint(bp)


def serve(settings: Settings) -> None:
    """Run the app under gunicorn (a production WSGI server) with the configured workers."""
    import os
    import sys

    if settings.workers < 1 or settings.server_threads < 1:
        raise DocqaError("DOCQA_WORKERS and DOCQA_SERVER_THREADS must be at least 1.")
    check_exposure(settings.host, ApiKeys.parse(settings.api_keys), settings.allow_public_without_keys)
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(settings.workers), "--worker-class", "gthread",
            "--threads", str(settings.server_threads), "--bind", f"{settings.host}:{settings.port}",
            "--timeout", "120", "--access-logfile", "-", "docqa.server:production_app()"]
    os.execvp(argv[0], argv)


def production_app() -> Flask:
    """The app gunicorn loads in each worker: settings from the environment, model warmed up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    app = create_app(Settings.from_env(), warm=True)
    log.info("docqa ready in %.1f s", time.perf_counter() - started)
    return app
