"""The objects one server process shares between requests: settings, providers, collections, jobs."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from docqa.answer import AskPipeline, Collections
from docqa.config import Settings


@dataclass(frozen=True)
class Services:
    """What every route of a docqa app reaches through `services()`."""

    settings: Settings
    embedder: object
    moderator: object | None
    chat: object
    collections: Collections
    pipeline: AskPipeline
    jobs: object | None = None  # docqa.jobs.JobQueue once the app has started it


def services() -> Services:
    """The Services of the app handling the current request."""
    return current_app.extensions["docqa"]
