// _facevault: the compiled part of the facevault package (python/README.md). Another adapter
// over the library, like the CLI and the HTTP server: the engine (face pipeline) and the vault's
// use cases through service::Service, under the same policy.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "status_error.h"

PYBIND11_MODULE(_facevault, m) {
  m.attr("__version__") = FACEVAULT_VERSION;
  m.doc() = "facevault's compiled core: Engine (face pipeline) and Vault (the use cases under policy).";
  fv::python::bind_errors(m);
  fv::python::bind_engine(m);
  fv::python::bind_vault(m);
}
