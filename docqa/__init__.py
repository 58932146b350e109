"""docqa: ask questions of your documents and get answers that cite their pages."""
from __future__ import annotations

__version__ = "0.1.0"
