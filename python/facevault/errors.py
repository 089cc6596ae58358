"""The exceptions facevault raises: one class per status code of the library.

Every failure of the engine or of a vault use case arrives as an ``Error`` whose ``code`` is the
library's status code name ("NOT_FOUND", "PERMISSION_DENIED", ...). Catch the subclass to handle
one kind of failure; never inspect the message text, which is for people.
"""

from __future__ import annotations


class Error(Exception):
    """A facevault failure: ``code`` is the status code name, ``message`` says what went wrong."""

    def __init__(self, code: str, message: str) -> None:
        """An error with the status code name (e.g. "NOT_FOUND") and a message for people."""
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(Error):
    """Malformed input: a search without purpose or case, an unknown role or basis kind, a bad array."""


class NotFound(Error):
    """An unknown subject, basis, key, file or model file."""


class CorruptData(Error):
    """Bytes that do not parse (a truncated image), or stored data that does not decrypt."""


class Unsupported(Error):
    """Well-formed input in a format facevault does not handle (an image format it does not read)."""


class ResourceExhausted(Error):
    """Over a size limit (file bytes, pixels)."""


class IoError(Error):
    """The operating system refused a read or a write."""


class FailedPrecondition(Error):
    """A policy refusal or a state that does not allow it: no acceptable face, an opt-out match,
    a basis that does not cover the purpose, models not fetched."""


class Internal(Error):
    """A bug or a library failure facevault did not expect."""


class PermissionDenied(Error):
    """The role (or the credential's purposes) may not do this."""


class AlreadyExists(Error):
    """A record that may exist once is already there (a vault, a withdrawal)."""


class Unauthenticated(Error):
    """No caller could be established (a missing, unknown or revoked API key)."""


class Unavailable(Error):
    """A dependency is down or over capacity right now; the same call may succeed later."""


class Aborted(Error):
    """A concurrent write won (a replicated shard moved on): the same call may succeed again."""


class StorageFull(Error):
    """The disk (or a quota) is full: nothing was written; the same call may succeed once space is freed."""


ERRORS_BY_CODE: dict[str, type[Error]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "CORRUPT_DATA": CorruptData,
    "UNSUPPORTED": Unsupported,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "IO_ERROR": IoError,
    "FAILED_PRECONDITION": FailedPrecondition,
    "INTERNAL": Internal,
    "PERMISSION_DENIED": PermissionDenied,
    "ALREADY_EXISTS": AlreadyExists,
    "UNAUTHENTICATED": Unauthenticated,
    "UNAVAILABLE": Unavailable,
    "ABORTED": Aborted,
    "STORAGE_FULL": StorageFull,
}


def error_class(code: str) -> type[Error]:
    """The exception class for a status code name (Error for a code this table does not know)."""
    return ERRORS_BY_CODE.get(code, Error)
