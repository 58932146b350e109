"""Fixtures shared by every test: no real keys, no proxies, no network beyond loopback."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

_real_connect = socket.socket.connect


def _loopback_only(self, address, *args, **kwargs):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None if host != "localhost" else ipaddress.ip_address("127.0.0.1")
        if ip is None or not ip.is_loopback:
            raise OSError(f"tests may not reach {host!r}: only loopback is allowed")
    return _real_connect(self, address, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network_no_keys(monkeypatch):
    """Clear real keys, proxies and docqa settings; refuse non-loopback connections."""
    for name in list(os.environ):
        if name.startswith("DOCQA_") or name.upper() in (
                "OPENAI_API_KEY", "OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
    yield


@pytest.fixture
def fake_openai():
    """A started FakeOpenAI on a free loopback port; fails the test if a handler raised unexpectedly."""
    from fake_openai import FakeOpenAI

    with FakeOpenAI(dim=8) as server:
        yield server
    assert not server.errors, server.errors
