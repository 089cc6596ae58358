// Status and Result<T>: explicit errors that never cross a module boundary as exceptions.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace fv {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // caller passed something malformed
  kNotFound,           // a file, model or id that does not exist
  kCorruptData,        // bytes that do not parse (truncated image, bad JSON, ...)
  kUnsupported,        // well-formed but not something we handle (GIF, 4-channel float, ...)
  kResourceExhausted,  // over a configured limit (pixels, file size, disk)
  kIoError,            // the operating system refused a read or write
  kFailedPrecondition, // the system is not in a state to do this (model not fetched, ...)
  kInternal,           // a bug or a library failure we did not expect
  kPermissionDenied,   // the caller is known but its role (or key) may not do this
  kAlreadyExists,      // a record that may exist once is already there (a basis withdrawn twice, ...)
  kUnauthenticated,    // no caller could be established (missing, unknown or revoked API key)
  kUnavailable,        // a dependency is down or over capacity right now; the same call may succeed later
  kAborted,            // a concurrent write won (a replicated shard moved on): catch up and redo the call
  kStorageFull,        // the disk (or a quota) is full; the call may succeed once space is freed
};
// The last code: codes travel as their number between nodes (cluster/rpc.h), new ones go last.
inline constexpr StatusCode kLastStatusCode = StatusCode::kStorageFull;

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status corrupt_data(std::string m) { return {StatusCode::kCorruptData, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status resource_exhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status failed_precondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status permission_denied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status already_exists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status storage_full(std::string m) { return {StatusCode::kStorageFull, std::move(m)}; }
// What a failed system call's errno `err` says: a full disk or quota is kStorageFull, anything
// else kIoError.
Status os_error(int err, std::string m);

// A value or the Status explaining why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}         // NOLINT: implicit by design

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace fv

#define FV_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::fv::Status fv_status_ = (expr);       \
    if (!fv_status_.is_ok()) return fv_status_; \
  } while (0)

// Binds the value of a Result<T> expression to `lhs`, or returns its Status from the enclosing
// function. `lhs` may declare a variable: FV_ASSIGN_OR_RETURN(auto x, f());
#define FV_ASSIGN_OR_RETURN(lhs, expr)                                                    \
  auto FV_CONCAT_(fv_r_, __LINE__) = (expr);                                              \
  if (!FV_CONCAT_(fv_r_, __LINE__).is_ok()) return FV_CONCAT_(fv_r_, __LINE__).status(); \
  lhs = std::move(FV_CONCAT_(fv_r_, __LINE__)).value()
#define FV_CONCAT_(a, b) FV_CONCAT2_(a, b)
#define FV_CONCAT2_(a, b) a##b
