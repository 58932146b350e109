"""One exception family; every message says what to do next."""
from __future__ import annotations


class DocqaError(Exception):
    """An error the caller can act on: `status` is the HTTP status, `code` a stable slug."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.details = details or {}

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        body.update(self.details)
        return {"error": body}


class NotFound(DocqaError):
    status, code = 404, "not_found"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class PageNotFound(NotFound):
    code = "page_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Unauthorized(DocqaError):
    status, code = 401, "unauthorized"


class Forbidden(DocqaError):
    status, code = 403, "forbidden"


class CollectionBusy(DocqaError):
    status, code = 409, "collection_busy"


class UploadTooLarge(DocqaError):
    status, code = 413, "upload_too_large"


class UnsupportedType(DocqaError):
    status, code = 415, "unsupported_file_type"


class EmbedderMismatch(DocqaError):
    status, code = 409, "embedder_mismatch"


class CollectionLocked(DocqaError):
    status, code = 409, "collection_locked"


class ExtractionError(DocqaError):
    """A file that cannot be used; the message is the reason shown in the ingest report."""

    status, code = 422, "unprocessable_file"


class ModelMissing(DocqaError):
    status, code = 503, "model_missing"


class ProviderError(DocqaError):
    """A provider failed; 503 with Retry-After when it is down or rate-limiting."""

    status, code = 503, "provider_unavailable"


class Flagged(DocqaError):
    status, code = 400, "flagged"
