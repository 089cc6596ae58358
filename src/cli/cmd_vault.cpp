// Vault commands (init, basis, enroll, search, erase, export, expire, optout, audit, key).
#include "cli/commands.h"

namespace fv::cli {

void add_vault_commands(CLI::App& /*app*/, int& /*exit_code*/) {}

}  // namespace fv::cli
