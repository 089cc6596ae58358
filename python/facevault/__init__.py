"""facevault: face detection, templates and verification, and a consent-bound face vault.

``Engine`` runs the face pipeline on images in memory (no vault, no audit). ``Vault`` is a
handle on a vault: lawful basis, enrollment, purpose-bound search with a case reference,
erasure with a receipt, export and the audit check, each under the vault's policy and audited,
as from the ``facevault`` command or its HTTP API. Failures raise ``facevault.Error``
subclasses that carry the library's status code.
"""

from __future__ import annotations

from ._facevault import (
    AuditReport,
    Basis,
    Candidate,
    Comparison,
    Engine,
    Enrollment,
    ErasureReceipt,
    ExpiryReport,
    Face,
    Optout,
    Quality,
    SearchFace,
    SearchResult,
    SubjectVerification,
    Vault,
    __version__,
    decode,
    status_codes,
)
from .errors import (
    Aborted,
    AlreadyExists,
    CorruptData,
    Error,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    IoError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StorageFull,
    Unauthenticated,
    Unavailable,
    Unsupported,
)

__all__ = [
    "__version__",
    "AlreadyExists",
    "AuditReport",
    "Basis",
    "Candidate",
    "Comparison",
    "CorruptData",
    "Engine",
    "Enrollment",
    "ErasureReceipt",
    "Error",
    "ExpiryReport",
    "Face",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "IoError",
    "NotFound",
    "Optout",
    "PermissionDenied",
    "Quality",
    "ResourceExhausted",
    "SearchFace",
    "SearchResult",
    "StorageFull",
    "SubjectVerification",
    "Unauthenticated",
    "Unavailable",
    "Aborted",
    "Unsupported",
    "Vault",
    "decode",
    "status_codes",
]
