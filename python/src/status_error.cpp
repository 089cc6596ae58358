#include "status_error.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace fv::python {

const char* code_name(StatusCode code) {
  // No default: -Wswitch names a StatusCode added later and missing here.
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kCorruptData: return "CORRUPT_DATA";
    case StatusCode::kUnsupported: return "UNSUPPORTED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kIoError: return "IO_ERROR";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kStorageFull: return "STORAGE_FULL";
  }
  return "INTERNAL";
}

std::vector<StatusCode> error_codes() {
  std::vector<StatusCode> codes;
  for (int c = static_cast<int>(StatusCode::kInvalidArgument); c <= static_cast<int>(kLastStatusCode); ++c)
    codes.push_back(static_cast<StatusCode>(c));
  return codes;
}

void bind_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      // The classes live in Python (docstrings, picklable, subclassable); looked up per raise
      // so the module never holds a reference past interpreter shutdown.
      py::object errors = py::module_::import("facevault.errors");
      py::object cls = errors.attr("error_class")(code_name(e.status().code()));
      py::object exc = cls(code_name(e.status().code()), e.status().message());
      PyErr_SetObject(cls.ptr(), exc.ptr());
    }
  });

  m.def(
      "status_codes",
      [] {
        std::vector<std::string> names;
        for (StatusCode c : error_codes()) names.push_back(code_name(c));
        return names;
      },
      "The name of every status code an error can carry (Error.code), in the library's order.");

  m.def(
      "_raise_status",
      [](const std::string& code, const std::string& message) {
        for (StatusCode c : error_codes())
          if (code == code_name(c)) throw StatusError(Status(c, message));
        throw StatusError(invalid_argument("unknown status code '" + code + "'"));
      },
      py::arg("code"), py::arg("message"),
      "Raises the error a C++ Status with this code and message becomes (the tests walk every code with it).");
}

}  // namespace fv::python
