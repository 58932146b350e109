"""docqa: ask questions of your documents and get answers that cite their pages."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Client", "ClientError"]


def __getattr__(name: str):
    # `import docqa` stays cheap (the CLI and workers import it): the client and `requests`
    # load only when docqa.Client is first used.
    if name in __all__:
        from docqa import client

        return getattr(client, name)
    raise AttributeError(f"module 'docqa' has no attribute {name!r}")
