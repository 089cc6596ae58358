// Tests only: the raw SQLite connection under a Vault, for tests that tamper with rows (alter
// an audit entry, shorten a retention) or count them with SQL of their own. Production code
// goes through the catalog (catalog.h); nothing under src/ includes this header.
#pragma once

#include "vault/vault.h"

namespace fv::vault::testing {

// Defined in vault.cpp (a friend of Vault).
Db& raw_db(Vault& v);

}  // namespace fv::vault::testing
