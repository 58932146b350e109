"""A docqa app served over real HTTP on a free loopback port, for tests that need a real client."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from werkzeug.serving import make_server


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` on a free loopback port in a thread; yields its base URL (no trailing slash)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        services = getattr(app, "extensions", {}).get("docqa")
        if getattr(services, "jobs", None) is not None:
            services.jobs.stop()  # the app's ingestion worker threads
