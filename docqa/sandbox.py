"""One function run in a warm child process under a time limit and an address-space limit."""
from __future__ import annotations

import math
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from docqa.errors import DocqaError


class SandboxError(DocqaError):
    """The worker could not finish a call; `docqa.extract` turns these into per-file reasons."""

    status, code = 500, "worker_failed"


class SandboxTimeout(SandboxError):
    """The call ran past its time limit; the worker was killed."""


class SandboxMemoryError(SandboxError):
    """The call raised MemoryError under the worker's address-space limit."""


class SandboxCrashed(SandboxError):
    """The worker died during the call (a signal, e.g. a C parser aborting when out of memory)."""


class SandboxStartError(SandboxError):
    """The worker exited or stayed silent before it was ready (import error, too little memory)."""


class SandboxClosed(SandboxError):
    """The sandbox was closed before or during the call."""


class Sandbox:
    """Runs `target(*args)` in one reused worker process; a worker that times out or dies is replaced.

    Calls are serialised by a lock, so any thread may call. The worker is a fresh interpreter
    (`python -c`, not multiprocessing, which would re-import the caller's __main__), started on
    first use; `init` runs there once, e.g. to import parsers. `target` and `init` must be
    importable module-level functions, as they cross to the worker by name.
    """

    def __init__(self, target: Callable[..., Any], *, memory_mb: int,
                 init: Callable[[], None] | None = None, start_timeout: float = 60.0) -> None:
        self._target = target
        self._memory_mb = memory_mb
        self._init = init
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._closed = False

    def call(self, *args: Any, timeout: float) -> Any:
        """`target(*args)` as computed by the worker; exceptions it raised are raised here."""
        with self._lock:
            if self._closed:
                raise SandboxClosed("the worker was closed")
            conn = self._ensure_started()
            try:
                conn.send((timeout, args))
                if not conn.poll(timeout):
                    self._stop()
                    raise SandboxTimeout(f"no answer within {timeout:g} s")
                kind, value = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._stop(grace=5.0)  # it is exiting already; wait for the real status
                if self._closed:
                    raise SandboxClosed("the worker was closed") from exc
                raise SandboxCrashed(f"the worker died ({_describe_exit(code)})") from exc
        if kind == "memory":
            raise SandboxMemoryError("MemoryError in the worker")
        if kind == "raise":
            raise value
        return value

    def close(self) -> None:
        """Stop the worker; a call running in another thread ends with SandboxClosed."""
        self._closed = True
        proc = self._proc
        if proc is not None:
            proc.kill()  # do not wait for a running call; its thread sees EOF and cleans up
        with self._lock:
            self._stop()

    def _ensure_started(self) -> Connection:
        if self._proc is not None and self._conn is not None and self._proc.poll() is None:
            return self._conn
        self._stop()
        ours, theirs = socket.socketpair()
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), _IMPORT_ROOT],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)  # a parser's chatter must not mix into our stdout
        self._conn = conn = Connection(ours.detach())
        try:
            conn.send((self._target, self._memory_mb, self._init))
            ready = conn.poll(self._start_timeout) and conn.recv() == ("ready", None)
        except (EOFError, OSError):
            ready = False
        if not ready:
            code = self._stop(grace=5.0)
            if self._closed:
                raise SandboxClosed("the worker was closed")
            raise SandboxStartError(f"the worker did not start within {self._start_timeout:g} s"
                                    if code is None or code == -signal.SIGKILL else
                                    f"the worker exited while starting ({_describe_exit(code)}; "
                                    "its error output says why)")
        return conn

    def _stop(self, grace: float = 0.0) -> int | None:
        """Reap the worker, killing it if it has not exited within `grace` seconds; its exit code."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


# The worker imports docqa from wherever this copy of it lives, installed or not.
_IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "import sys; sys.path.insert(0, sys.argv[2]); from docqa.sandbox import _serve; _serve(int(sys.argv[1]))"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _serve(fd: int) -> None:
    """The worker's loop: receive args, reply ("ok", result) | ("raise", exc) | ("memory", None)."""
    conn = Connection(fd)
    # Ctrl-C reaches the whole process group; the parent decides what to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target, memory_mb, init = conn.recv()  # unpickling imports target's module
    # A parser aborting on a hostile file must not leave a core file the size of the limit.
    _lower_limit(resource.RLIMIT_CORE, 0)
    _lower_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    if init is not None:
        init()
    conn.send(("ready", None))
    while True:
        try:
            timeout, args = conn.recv()
        except EOFError:
            return
        _limit_cpu(timeout)
        try:
            reply = ("ok", target(*args))
        except MemoryError:
            reply = ("memory", None)
        except Exception as exc:  # the caller re-raises it: a reason for this input, not for the worker
            reply = ("raise", _portable(exc))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))


def _limit_cpu(seconds: float) -> None:
    """SIGXCPU after `seconds` more CPU time: stops this call even if the parent died meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds) + 1
    if hard == resource.RLIM_INFINITY or soft <= hard:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _lower_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling to the parent, else a RuntimeError carrying its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any pickling failure: fall back to the text, which always crosses
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
