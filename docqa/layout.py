"""Where collections live: one directory per name under the index directory; names, listing, removal.

    indexes/<name>/docqa.sqlite   the collection (see docqa.store)
    indexes/<name>/write.lock     flock held by the one writer
    indexes/.deleted-<name>-*     a deletion in progress, or interrupted by a crash
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from docqa.errors import CollectionLocked, CollectionNotFound, DocqaError

DB_FILE = "docqa.sqlite"
LOCK_FILE = "write.lock"
DELETED_PREFIX = ".deleted-"  # a collection being deleted is renamed to this, a name no collection can have
NAME_RULE = "1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_collection_name(name: str) -> str:
    """`name` if it is a valid collection name; DocqaError naming the rule otherwise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise DocqaError(f"Invalid collection name {name!r}: use {NAME_RULE}.", code="invalid_collection_name")
    return name


def list_collections(index_dir: Path) -> list[str]:
    """Sorted names of the collections under `index_dir` (empty when it does not exist)."""
    root = Path(index_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if _NAME_RE.fullmatch(p.name) and (p / DB_FILE).is_file())


def remove_collection(path: Path, *, timeout: float = 0.0) -> None:
    """Deletes a collection under its write lock; CollectionNotFound when missing, CollectionLocked when busy.

    The directory is renamed away before it is removed, so a crash half-way leaves no half-deleted
    collection, only a hidden directory that purge_deleted() removes.
    """
    path = Path(path)
    name = validate_collection_name(path.name)
    if path.is_symlink():
        raise DocqaError(f"Collection '{name}' is a symbolic link ({path} -> {os.readlink(path)}); docqa does not "
                         "delete through links: remove the link and its target by hand.", status=409,
                         code="collection_is_link")
    if not path.is_dir():
        raise CollectionNotFound(f"No collection '{name}' in {path.parent}/.")
    doomed = path.parent / f"{DELETED_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    # The lock is taken without opening the database, so that a damaged collection can be deleted too.
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        acquire_lock(fd, name, timeout)
        os.rename(path, doomed)
        fsync_dir(path.parent)
    finally:
        os.close(fd)  # releases the lock
    shutil.rmtree(doomed)


def purge_deleted(index_dir: Path) -> None:
    """Removes what deletions interrupted by a crash left under `index_dir`."""
    root = Path(index_dir)
    if root.is_dir():
        for doomed in root.glob(f"{DELETED_PREFIX}*"):
            shutil.rmtree(doomed, onerror=_ignore_missing)


def _ignore_missing(function, path, exc_info) -> None:
    # Two processes may purge the same directory at once; what the other removed is gone either way.
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def acquire_lock(fd: int, name: str, timeout: float) -> None:
    """flock on the open lock file `fd`, waiting up to `timeout` seconds; records our pid in it."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                raise CollectionLocked(
                    f"Collection '{name}' is being written by another process (pid {holder}); "
                    "wait for it to finish or retry with DOCQA_LOCK_TIMEOUT=600") from None
            time.sleep(min(0.05, left))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
