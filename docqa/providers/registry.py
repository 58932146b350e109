"""Provider names -> factories. Each factory imports its backend only when called."""
from __future__ import annotations

from collections.abc import Callable

from docqa.config import Settings
from docqa.errors import DocqaError
from docqa.providers.base import Embedder, Moderator


def _openai_config(s: Settings):
    from docqa.providers.openai import OpenAIConfig

    return OpenAIConfig(base_url=s.openai_base_url, api_key=s.openai_api_key,
                        embed_model=s.openai_embed_model, chat_model=s.openai_chat_model,
                        moderation_model=s.openai_moderation_model, timeout=s.openai_timeout,
                        max_retries=s.openai_max_retries, concurrency=s.openai_concurrency,
                        context_window=s.openai_context_window, embed_dim=s.openai_embed_dim or None,
                        max_retry_wait=s.openai_max_retry_wait)


def _local_embedder(s: Settings) -> Embedder:
    from docqa.providers.local import MiniLMEmbedder

    return MiniLMEmbedder(mode=s.local_embed_mode, threads=s.threads, batch_size=s.embed_batch,
                          cache_dir=s.model_cache)


def _openai_embedder(s: Settings) -> Embedder:
    from docqa.providers.openai import OpenAIEmbedder

    return OpenAIEmbedder(_openai_config(s))


def _local_moderator(s: Settings) -> Moderator:
    from docqa.providers.moderation import LocalModerator

    return LocalModerator()


def _openai_moderator(s: Settings) -> Moderator:
    from docqa.providers.openai import OpenAIModerator

    return OpenAIModerator(_openai_config(s))


def _local_chat(s: Settings):
    from docqa.providers.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer()


def _openai_chat(s: Settings):
    from docqa.providers.openai import OpenAIChat

    return OpenAIChat(_openai_config(s))


EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {"local": _local_embedder, "openai": _openai_embedder}
MODERATORS: dict[str, Callable[[Settings], Moderator | None]] = {
    "local": _local_moderator, "openai": _openai_moderator, "none": lambda s: None}
CHAT_MODELS: dict[str, Callable[[Settings], object]] = {"local": _local_chat, "openai": _openai_chat}


def _pick(table: dict, name: str, setting: str):
    try:
        return table[name]
    except KeyError:
        raise DocqaError(f"Unknown {setting.lower().removeprefix('docqa_')} provider {name!r}: "
                         f"set {setting} to one of {', '.join(sorted(table))}.",
                         code="unknown_provider") from None


def make_embedder(s: Settings) -> Embedder:
    """The embedder chosen by DOCQA_EMBEDDER."""
    return _pick(EMBEDDERS, s.embedder, "DOCQA_EMBEDDER")(s)


def make_moderator(s: Settings) -> Moderator | None:
    """The moderator chosen by DOCQA_MODERATOR (None when it is 'none')."""
    return _pick(MODERATORS, s.moderator, "DOCQA_MODERATOR")(s)


def make_chat(s: Settings):
    """The answerer chosen by DOCQA_CHAT."""
    return _pick(CHAT_MODELS, s.chat, "DOCQA_CHAT")(s)
