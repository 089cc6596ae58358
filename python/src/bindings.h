// The parts of the _facevault module, each bound in its own file.
#pragma once

#include <pybind11/pybind11.h>

namespace fv::python {

void bind_engine(pybind11::module_& m);  // engine.cpp: Engine, Face, Quality, Comparison
void bind_vault(pybind11::module_& m);   // vault.cpp: Vault and the results of its use cases

}  // namespace fv::python
