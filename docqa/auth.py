"""API keys with scopes: `read` (ask, search, list) and `write` (upload, delete, create).

Keys come from DOCQA_API_KEYS as `KEY:SCOPES` entries. A request's key is hashed and compared with
every configured key's hash in constant time, and keys never appear in logs or error messages.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from docqa.errors import DocqaError, Forbidden, Unauthorized

SCOPES = ("read", "write")
# POST routes that only read: asking and searching change nothing on the server.
READ_POSTS = frozenset({"/v1/ask", "/v1/search", "/v1/chat/completions", "/v1/embeddings", "/v1/moderations"})
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico"})




@dataclass(frozen=True)
class ApiKeys:
    """The configured keys, kept only as SHA-256 digests with their scopes."""

    entries: tuple[tuple[bytes, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        """Keys from `KEY:SCOPES,KEY:SCOPES` (SCOPES: read, write or read+write)."""
        entries = []
        for n, item in enumerate((s.strip() for s in spec.split(",")), start=1):
            if not item:
                continue
            key, sep, scopes = item.rpartition(":")
            wanted = frozenset(s.strip() for s in scopes.split("+"))
            if not sep or not key or any(c.isspace() for c in key) or not wanted <= set(SCOPES):
                raise DocqaError(f"DOCQA_API_KEYS entry {n} is not KEY:SCOPES with SCOPES read, write or "
                                 "read+write (e.g. `k1:read+write,k2:read`); keys may not contain spaces.")
            entries.append((_digest(key), wanted))
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def scopes(self, key: str) -> frozenset[str] | None:
        """The scopes of `key`, None when it is not configured; the time taken does not depend on the key."""
        digest = _digest(key)
        found: frozenset[str] | None = None
        for known, scopes in self.entries:  # no early exit: every key is compared
            if hmac.compare_digest(known, digest):
                found = scopes
        return found


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for the public page, its assets, health checks and preflights."""
    if method == "OPTIONS" or path in PUBLIC_PATHS or path.startswith("/static/"):
        return None
    if method in ("GET", "HEAD") or path.rstrip("/") in READ_POSTS:
        return "read"
    return "write"


def check(keys: ApiKeys, method: str, path: str, headers) -> None:
    """Raises Unauthorized / Forbidden unless the request may go on; a no-op when no keys are configured."""
    scope = required_scope(method, path)
    if not keys or scope is None:
        return
    key = presented_key(headers)
    if key is None:
        raise Unauthorized("This server requires an API key: send `Authorization: Bearer KEY` "
                           "(keys are set with DOCQA_API_KEYS).")
    scopes = keys.scopes(key)
    if scopes is None:
        raise Unauthorized("The API key is not valid: send one of the keys set in DOCQA_API_KEYS "
                           "as `Authorization: Bearer KEY`.")
    if scope not in scopes:
        raise Forbidden(f"This key has the {'+'.join(sorted(scopes))} scope; {method} {path} needs "
                        f"the {scope} scope. Use a key with `{scope}` in DOCQA_API_KEYS.")


def presented_key(headers) -> str | None:
    """The key sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("X-API-Key", "").strip() or None


def check_exposure(host: str, keys: ApiKeys, allow_public: bool) -> None:
    """Refuses to serve a non-loopback address without keys unless that was explicitly allowed."""
    if keys or allow_public or is_loopback(host):
        return
    raise DocqaError(f"Refusing to serve {host} without API keys: anyone who can reach it could read and "
                     "delete your documents. Set DOCQA_API_KEYS (e.g. `KEY:read+write`), or "
                     "DOCQA_ALLOW_PUBLIC_WITHOUT_KEYS=true if that is what you want.", code="insecure_bind")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
