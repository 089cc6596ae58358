// Status → Python exception: a use case's Status crosses into Python as a facevault.Error
// subclass chosen by its StatusCode (facevault/errors.py holds the classes), never by its text.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>

#include "common/status.h"

namespace fv::python {

// The code's name as Python sees it in Error.code: the enumerator without its k, in upper
// snake case ("INVALID_ARGUMENT", "NOT_FOUND", ...).
const char* code_name(StatusCode code);
// Every code except kOk, in declaration order (facevault.status_codes()).
std::vector<StatusCode> error_codes();

// Thrown by the bindings for a Status that is not ok; the registered translator raises the
// matching facevault.Error subclass with (code, message).
class StatusError : public std::exception {
 public:
  explicit StatusError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

inline void throw_if_error(const Status& st) {
  if (!st.is_ok()) throw StatusError(st);
}

template <class T>
T value_or_throw(Result<T> r) {
  if (!r.is_ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Registers the translator and facevault.status_codes() / the private _raise_status, with
// which the tests walk every code across the boundary.
void bind_errors(pybind11::module_& m);

}  // namespace fv::python
