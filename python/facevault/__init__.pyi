"""Type stubs of the facevault package: the compiled core and the exceptions."""

from ._facevault import (
    AuditReport as AuditReport,
    Basis as Basis,
    Candidate as Candidate,
    Comparison as Comparison,
    Engine as Engine,
    Enrollment as Enrollment,
    ErasureReceipt as ErasureReceipt,
    ExpiryReport as ExpiryReport,
    Face as Face,
    Optout as Optout,
    Quality as Quality,
    SearchFace as SearchFace,
    SearchResult as SearchResult,
    SubjectVerification as SubjectVerification,
    Vault as Vault,
    __version__ as __version__,
    decode as decode,
    status_codes as status_codes,
)
from .errors import (
    Aborted as Aborted,
    AlreadyExists as AlreadyExists,
    CorruptData as CorruptData,
    Error as Error,
    FailedPrecondition as FailedPrecondition,
    Internal as Internal,
    InvalidArgument as InvalidArgument,
    IoError as IoError,
    NotFound as NotFound,
    PermissionDenied as PermissionDenied,
    ResourceExhausted as ResourceExhausted,
    StorageFull as StorageFull,
    Unauthenticated as Unauthenticated,
    Unavailable as Unavailable,
    Unsupported as Unsupported,
)

__all__: list[str]
