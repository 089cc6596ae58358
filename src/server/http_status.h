// How the service's errors reach HTTP: by StatusCode only, never by message text. One table,
// so a test can walk every code (tests/server/http_status_test.cpp).
#pragma once

#include "common/status.h"

namespace fv::server {

// The HTTP status for a Status code: InvalidArgument 400, Unauthenticated 401,
// PermissionDenied 403, NotFound 404, AlreadyExists 409, ResourceExhausted 413,
// Unsupported 415, CorruptData and FailedPrecondition 422 (understood and refused),
// Unavailable 503, StorageFull 507, IoError and Internal 500. kOk is not an error: 200.
int http_status_for(StatusCode code);

// The short machine-readable name of an HTTP error status in error bodies ("forbidden", ...).
const char* http_error_code(int status);

}  // namespace fv::server
