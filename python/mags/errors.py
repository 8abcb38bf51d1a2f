"""The SDK's errors: every failure is a MagsError with a stable ``code``, the HTTP ``status`` (0 when no HTTP answer
arrived) and a sentence a person can act on, as the Node SDK and the server have them."""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "MagsError",
    "MagsAuthError",
    "MagsNotFoundError",
    "MagsConflictError",
    "MagsTimeoutError",
    "MagsConnectionError",
    "error_from_response",
]


class MagsError(Exception):
    """The server refused or failed a request (``code`` and message are the server's own), or the SDK could not
    carry it out. ``request_id`` names the job the error is about, when there is one."""

    def __init__(self, status: int, code: str, message: str, request_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class MagsAuthError(MagsError):
    """401 or 403: no token, a wrong, revoked or expired token, or a call only the server's owner may make."""


class MagsNotFoundError(MagsError):
    """404: no such job, workspace, file, alias or cron job for this user (another user's is not found either)."""


class MagsConflictError(MagsError):
    """409: the resource is in a state that forbids the call (a workspace in use, a name taken, a job not finished)."""


class MagsTimeoutError(MagsError):
    """A wait ran out: ``run_and_wait``'s ``timeout``, or a request the server did not answer in time. The job itself
    keeps running."""

    def __init__(self, message: str, request_id: Optional[str] = None) -> None:
        super().__init__(0, "timeout", message, request_id)


class MagsConnectionError(MagsError):
    """No HTTP answer: the server is down, the address is wrong, or the connection broke. ``status`` is 0."""

    def __init__(self, message: str, request_id: Optional[str] = None) -> None:
        super().__init__(0, "network_error", message, request_id)


_CODE_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unsupported_option",
    429: "too_many_requests",
    503: "unavailable",
    507: "insufficient_storage",
}


def _code_for_status(status: int) -> str:
    return _CODE_BY_STATUS.get(status, "internal" if status >= 500 else "invalid_request")


def _class_for_status(status: int) -> type:
    if status in (401, 403):
        return MagsAuthError
    if status == 404:
        return MagsNotFoundError
    if status == 409:
        return MagsConflictError
    return MagsError


def error_from_response(
    status: int, reason: str, body: Any, base_url: str, request_id: Optional[str] = None
) -> MagsError:
    """The error for a non-2xx answer: the body's ``{error, code}`` when it has them, else a sentence from the status."""
    cls = _class_for_status(status)
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        code = body.get("code") if isinstance(body.get("code"), str) and body.get("code") else _code_for_status(status)
        return cls(status, code, body["error"], request_id)
    text = f"{status} {reason}" if reason else str(status)
    return cls(
        status,
        _code_for_status(status),
        f"the Mags server at {base_url} answered HTTP {text} without an explanation",
        request_id,
    )
