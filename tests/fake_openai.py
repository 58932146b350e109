"""A fake OpenAI-compatible server on a free loopback port, for tests of anything that speaks that API.

    with FakeOpenAI(dim=8) as fake:
        config = OpenAIConfig(base_url=fake.base_url, api_key="sk-test")
        ...
        fake.queue(Fault.rate_limited(retry_after="1"), Fault.server_error())   # next two POSTs fail
        fake.requests_to("/v1/embeddings")                                      # what was sent

Endpoints (all under /v1): POST embeddings (deterministic hash-seeded vectors, deliberately not
unit length and listed in reverse order, so clients must normalise and sort by `index`),
POST chat/completions (plain, or SSE with a comment, several delta chunks split across TCP writes,
a finish chunk, a usage chunk when `stream_options.include_usage`, then `[DONE]`),
POST moderations (flags texts containing `flag_word`), GET models.
Like the real API it rejects more than 2048 embedding inputs, empty inputs and unknown models (404),
and with `api_key` set it answers 401 to any other bearer token, echoing the token it got.

Faults: `queue()` scripted `Fault`s; each POST takes the first queued fault whose `path` matches
(None matches any) and is answered by it instead of normally: an error status with headers, a delay
first (`Fault.slow`, then a normal answer), or a dropped connection. `outage(fault)` answers every
matching POST with `fault` (after the queued ones) until `outage(None)`: a server that stays down.
`embed` replaces the random vectors with a function of the text (e.g. a bag of words), for tests
that need retrieval by meaning to work.
Every request is recorded (`requests`); `max_in_flight` and `gate()` let tests prove concurrency;
`stream_delay` pauses between SSE events (a stream that stalls past the client's read timeout).
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MODELS = ("text-embedding-3-small", "gpt-4o-mini", "omni-moderation-latest", "fake-embed", "fake-chat")
CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
              "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
              "sexual/minors", "violence", "violence/graphic")
FLAG_CATEGORY = "violence"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it; header names are lower-case, `body` is parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    at: float


@dataclass(frozen=True)
class Fault:
    """A scripted answer: `status` None means answer normally (after `delay`); `drop` closes the socket."""

    status: int | None = 500
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None
    drop: bool = False

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1", path: str | None = None, **headers: str) -> Fault:
        hdrs = dict(headers)
        if retry_after is not None:
            hdrs["Retry-After"] = retry_after
        return cls(429, _error("Rate limit reached for requests", "requests", "rate_limit_exceeded"), hdrs,
                   path=path)

    @classmethod
    def insufficient_quota(cls, path: str | None = None) -> Fault:
        return cls(429, _error("You exceeded your current quota, please check your plan and billing details.",
                               "insufficient_quota", "insufficient_quota"), path=path)

    @classmethod
    def server_error(cls, status: int = 500, path: str | None = None) -> Fault:
        return cls(status, _error("The server had an error while processing your request.", "server_error"),
                   path=path)

    @classmethod
    def unauthorized(cls, status: int = 401, path: str | None = None) -> Fault:
        return cls(status, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
                   path=path)

    @classmethod
    def slow(cls, seconds: float, path: str | None = None) -> Fault:
        return cls(None, delay=seconds, path=path)

    @classmethod
    def dropped(cls, path: str | None = None) -> Fault:
        return cls(None, drop=True, path=path)


class FakeOpenAI:
    """The server; start/stop it with `with`, point clients at `base_url`."""

    def __init__(self, *, dim: int = 8, api_key: str | None = None, flag_word: str = "forbidden",
                 chat_reply: str | Callable[[list[dict]], str] | None = None,
                 models: tuple[str, ...] = MODELS, reverse_embeddings: bool = True,
                 stream_delay: float = 0.0,
                 embed: Callable[[str, int], np.ndarray] | None = None) -> None:
        self.dim = dim
        self.embed = embed                 # (text, dim) -> vector; None: hash-seeded random vectors
        self.stream_delay = stream_delay   # seconds between SSE delta events
        self.api_key = api_key
        self.flag_word = flag_word
        self.chat_reply = chat_reply
        self.models = models
        self.reverse_embeddings = reverse_embeddings
        self.errors: list[BaseException] = []   # unexpected exceptions inside handlers
        self.max_in_flight = 0
        self._requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._outage: Fault | None = None
        self._gates: dict[str, tuple[int, float]] = {}
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._cond:
            self._cond.notify_all()
            connections = list(self._connections)
        for conn in connections:   # unblock handler threads parked on idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>/v1"""
        return f"http://127.0.0.1:{self.port}/v1"

    # scripting and inspection
    def queue(self, *faults: Fault) -> None:
        """Answer the next matching requests with these faults, in order."""
        with self._cond:
            self._faults.extend(faults)

    def outage(self, fault: Fault | None) -> None:
        """Answer every POST matching `fault.path` with `fault` from now on; None ends the outage."""
        with self._cond:
            self._outage = fault

    def pending_faults(self) -> int:
        with self._cond:
            return len(self._faults)

    def gate(self, path: str, n: int, timeout: float = 5.0) -> None:
        """Hold requests to `path` until `n` are in flight at once (or `timeout` passes), then open."""
        with self._cond:
            self._gates[path] = (n, timeout)

    @property
    def requests(self) -> list[Recorded]:
        with self._cond:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def vector(self, text: str, dim: int | None = None) -> np.ndarray:
        """The raw (not normalised) vector the server returns for `text`."""
        if self.embed is not None:
            return np.asarray(self.embed(text, dim or self.dim), dtype=np.float32)
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        return (rng.standard_normal(dim or self.dim) * 3.0 + 0.5).astype(np.float32)

    def reply_for(self, messages: list[dict]) -> str:
        """The assistant text the server answers `messages` with."""
        if callable(self.chat_reply):
            return self.chat_reply(messages)
        if self.chat_reply is not None:
            return self.chat_reply
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        return f"You asked: {last} The answer is 42, see [1]."

    def is_flagged(self, text: str) -> bool:
        return self.flag_word.lower() in text.lower()

    # used by the handler
    def _take_fault(self, path: str) -> Fault | None:
        with self._cond:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path == path:
                    return self._faults.pop(i)
            outage = self._outage
            if outage is not None and (outage.path is None or outage.path == path):
                return outage
        return None

    def _enter(self, record: Recorded) -> None:
        with self._cond:
            self._requests.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._cond.notify_all()
            gate = self._gates.get(record.path)
            if gate:
                n, timeout = gate
                if self._in_flight >= n:
                    # Open for good: the requests already waiting may wake only after this one has
                    # finished, when fewer than n are left in flight.
                    del self._gates[record.path]
                    self._cond.notify_all()
                else:
                    self._cond.wait_for(lambda: record.path not in self._gates or self._stopping.is_set(),
                                        timeout)

    def _leave(self) -> None:
        with self._cond:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False   # stop() must not wait for handlers sleeping in a slow fault
    fake: FakeOpenAI

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        # A client that timed out and hung up is part of the scenarios, not a server bug.
        if not isinstance(exc, ConnectionError | TimeoutError) and exc is not None:
            self.fake.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:
        pass  # keep test output clean; requests are recorded instead

    def setup(self) -> None:
        super().setup()
        with self.server.fake._cond:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._cond:
            self.server.fake._connections.discard(self.connection)
        super().finish()

    # routing
    def do_GET(self) -> None:
        fake = self.server.fake
        self._record(None)
        try:
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models]})
            else:
                self._json(404, _error(f"Unknown path {self.path}", "invalid_request_error"))
        finally:
            fake._leave()

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?")[0]
        self._record(body)
        try:
            fault = fake._take_fault(path)
            if fault is not None:
                if fault.delay:
                    fake._stopping.wait(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.status is not None:
                    self._json(fault.status, fault.body or {}, fault.headers)
                    return
            if fake.api_key is not None:
                sent = self.headers.get("Authorization", "")
                if sent != f"Bearer {fake.api_key}":
                    given = sent.removeprefix("Bearer ") or "(none)"
                    self._json(401, _error(f"Incorrect API key provided: {given}.", "invalid_request_error",
                                           "invalid_api_key"))
                    return
            if not isinstance(body, dict):
                self._json(400, _error("We could not parse the JSON body of your request.",
                                       "invalid_request_error"))
                return
            if "model" in body and body["model"] not in fake.models:
                self._json(404, _error(f"The model `{body['model']}` does not exist or you do not have "
                                       "access to it.", "invalid_request_error", "model_not_found"))
                return
            route = {"/v1/embeddings": self._embeddings, "/v1/chat/completions": self._chat,
                     "/v1/moderations": self._moderations}.get(path)
            if route is None:
                self._json(404, _error(f"Unknown path {path}", "invalid_request_error"))
            else:
                route(body)
        finally:
            fake._leave()

    def _record(self, body: dict | None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.fake._enter(Recorded(self.command, self.path.split("?")[0], headers, body, time.monotonic()))

    # endpoints
    def _embeddings(self, body: dict) -> None:
        fake = self.server.fake
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            self._json(400, _error("'$.input' is invalid: expected non-empty strings.", "invalid_request_error"))
            return
        if len(inputs) > 2048:
            self._json(400, _error(f"'$.input' is invalid: {len(inputs)} inputs, at most 2048 allowed.",
                                   "invalid_request_error"))
            return
        dim = body.get("dimensions") or fake.dim
        data = [{"object": "embedding", "index": i, "embedding": fake.vector(t, dim).tolist()}
                for i, t in enumerate(inputs)]
        if fake.reverse_embeddings:
            data.reverse()
        tokens = sum(_tokens(t) for t in inputs)
        self._json(200, {"object": "list", "data": data, "model": body["model"],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _chat(self, body: dict) -> None:
        fake = self.server.fake
        messages = body.get("messages") or []
        reply = fake.reply_for(messages)
        prompt = sum(_tokens(str(m.get("content", ""))) for m in messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": _tokens(reply),
                 "total_tokens": prompt + _tokens(reply)}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            self._json(200, {**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]}]
        events += [{**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                   for piece in re.findall(r"\S+\s*|\s+", reply)]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._write_chunk(b": keep-alive\n\n")
        for event in events:
            data = f"data: {json.dumps(event)}\r\n\r\n".encode()
            # Split each event across two writes so clients must buffer partial lines.
            half = len(data) // 2
            self._write_chunk(data[:half])
            self._write_chunk(data[half:])
            if fake.stream_delay:
                fake._stopping.wait(fake.stream_delay)
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _moderations(self, body: dict) -> None:
        fake = self.server.fake
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            self._json(400, _error("'$.input' is invalid.", "invalid_request_error"))
            return
        results = []
        for text in inputs:
            flagged = fake.is_flagged(text)
            results.append({
                "flagged": flagged,
                "categories": {c: flagged and c == FLAG_CATEGORY for c in CATEGORIES},
                "category_scores": {c: 0.97 if flagged and c == FLAG_CATEGORY else 0.0001 for c in CATEGORIES},
            })
        self._json(200, {"id": "modr-fake", "model": body["model"], "results": results})

    # writing
    def _json(self, status: int, payload: dict | str, headers: dict[str, str] | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        headers = dict(headers or {})
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", None)
                         or ("application/json" if isinstance(payload, dict) else "text/plain"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _error(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _tokens(text: str) -> int:
    return len(text.split())
