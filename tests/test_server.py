"""The ask pipeline over Flask's test client with recording fake providers."""
from __future__ import annotations

import pytest
from fakes import HashEmbedder, RecordingChat, RecordingModerator

from docqa.config import Settings
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.server import create_app
from docqa.store import Store


@pytest.fixture
def setup(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The frobnicator flag enables turbo mode on the widget.\n\n"
                                    "Backups are restored from tape every night.", encoding="utf-8")
    settings = Settings(index_dir=str(tmp_path / "idx"))
    embedder, moderator, chat = HashEmbedder(), RecordingModerator(), RecordingChat()
    store = Store.open(settings.collection_dir("default"), create=True, embedder=(embedder.name, embedder.dim))
    ingest(store, embedder, [docs], limits=ExtractLimits(), chunk_tokens=60, chunk_overlap=10)
    store.close()
    embedder.calls.clear()
    app = create_app(settings, embedder=embedder, moderator=moderator, chat=chat)
    return app.test_client(), embedder, moderator, chat


def test_ask_cites_the_page_it_used(setup):
    client, _, _, chat = setup
    r = client.post("/v1/ask", json={"question": "What does the frobnicator flag enable?"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["answered"] is True and body["citations"][0]["document"] == "notes.txt"
    assert body["citations"][0]["page_start"] == 1 and len(chat.calls) == 1


def test_flagged_question_never_reaches_embedder_or_chat(setup):
    client, embedder, moderator, chat = setup
    r = client.post("/v1/ask", json={"question": "forbidden thing", "history": []})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "flagged"
    assert r.get_json()["error"]["categories"] == ["violence"]
    assert embedder.calls == [] and chat.calls == [] and moderator.seen == ["forbidden thing"]
    r = client.post("/v1/ask", json={"question": "ok?", "history": [{"role": "user", "content": "forbidden"}]})
    assert r.status_code == 400 and embedder.calls == [] and chat.calls == []


def test_moderation_down_fails_closed_with_503(setup):
    from docqa.errors import ProviderError

    client, embedder, moderator, chat = setup
    moderator.down = ProviderError("moderation server down", retry_after=7)
    r = client.post("/v1/ask", json={"question": "What does the frobnicator flag enable?"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    assert embedder.calls == [] and chat.calls == []


@pytest.mark.parametrize("payload, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b'{"question": ""}', 400, "invalid_question"),
    (b'{"question": 3}', 400, "invalid_question"),
    (b'{"question": "q", "top_k": "five"}', 400, "invalid_top_k"),
    (b'{"question": "q", "history": [{"role": "system", "content": "x"}]}', 400, "invalid_history"),
    (b'{"question": "q", "collection": "nope"}', 404, "collection_not_found"),
])
def test_bad_input_is_a_4xx_naming_the_problem(setup, payload, status, code):
    client = setup[0]
    r = client.post("/v1/ask", data=payload, content_type="application/json")
    assert r.status_code == status and r.get_json()["error"]["code"] == code


def test_search_and_stream(setup):
    client = setup[0]
    r = client.post("/v1/search", json={"query": "backups tape", "top_k": 1})
    assert r.status_code == 200 and "tape" in r.get_json()["hits"][0]["text"]
    r = client.post("/v1/ask", json={"question": "What does the frobnicator flag enable?", "stream": True})
    text = r.get_data(as_text=True)
    assert r.mimetype == "text/event-stream" and "event: delta" in text and text.count("event: done") == 1
    assert client.get("/healthz").status_code == 200


def test_search_bad_query_names_the_query_field(setup):
    r = setup[0].post("/v1/search", json={"query": "   "})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_query"
    assert "'query'" in r.get_json()["error"]["message"]


@pytest.mark.parametrize("deltas", [
    ["See [3] and [1", "].", " Again [3][9]."],
    ["See [", "3", "] and [1].", " Again [3][9", "]."],
    ["See [3] and [1]. Again [3][9]."],
])
def test_stream_renumbers_citation_markers_like_the_final_answer(deltas):
    from docqa.answer import _Renumbering

    markers = _Renumbering(sources=3)
    streamed = "".join(markers.feed(d) for d in deltas) + markers.flush()
    assert streamed == "See [1] and [2]. Again [1]."


def test_stream_keeps_a_bracket_that_is_not_a_marker():
    from docqa.answer import _Renumbering

    markers = _Renumbering(sources=2)
    assert markers.feed("an array a[") == "an array a"
    assert markers.feed("i] and [2]") == "[i] and [1]"
    assert markers.flush() == ""


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/search", "/v1/chat/completions", "/v1/collections"])
def test_deeply_nested_json_is_400_not_500(setup, path):
    client, *_ = setup
    r = client.post(path, data="[" * 100_000, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_json"


def test_unpaired_surrogates_are_400_before_any_provider(setup):
    client, embedder, moderator, chat = setup
    r = client.post("/v1/ask", data='{"question": "What does the frobnicator flag enable? \\ud800"}',
                    content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_text"
    assert embedder.calls == [] and moderator.seen == [] and chat.calls == []
    r = client.post("/v1/ask", data='{"question": "What does the frobnicator flag enable? \\ud83d\\ude00"}',
                    content_type="application/json")
    assert r.status_code == 200 and moderator.seen[-1].endswith("\U0001f600")  # a whole pair is fine


def test_history_turns_are_bounded_and_empty_turns_are_not_moderated(setup):
    client, _, moderator, _ = setup
    body = {"question": "What does the frobnicator flag enable?", "history": [{"role": "user", "content": ""}] * 101}
    r = client.post("/v1/ask", json=body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "history_too_long" and moderator.seen == []
    body["history"] = [{"role": "user", "content": ""}] * 3 + [{"role": "user", "content": "and the flag?"}]
    assert client.post("/v1/ask", json=body).status_code == 200
    assert moderator.seen == ["What does the frobnicator flag enable?", "and the flag?"]


def test_wrong_method_is_405_json_with_allow(setup):
    client, *_ = setup
    r = client.get("/v1/ask")
    assert r.status_code == 405 and r.headers["Allow"] and "POST" in r.headers["Allow"]
    assert r.get_json()["error"]["code"] == "method_not_allowed"


def test_a_stream_that_fails_unexpectedly_ends_with_an_error_event():
    from docqa.httpjson import sse

    def events():
        yield "delta", {"text": "partial"}
        raise RuntimeError("boom")

    out = "".join(sse(events()))
    assert out.startswith("event: delta") and out.endswith('"internal_error", "message": "docqa hit an internal error; the server log has the details."}}\n\n')
