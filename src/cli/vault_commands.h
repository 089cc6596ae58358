// The vault commands, one group per file; add_vault_commands (cmd_vault.cpp) registers them in
// the order `facevault --help` lists them.
#pragma once

#include <CLI/CLI.hpp>

namespace fv::cli {

void add_init_command(CLI::App& app, int& exit_code);       // cmd_vault.cpp
void add_basis_commands(CLI::App& app, int& exit_code);     // cmd_vault.cpp
void add_enroll_command(CLI::App& app, int& exit_code);     // cmd_enroll.cpp
void add_search_command(CLI::App& app, int& exit_code);     // cmd_search.cpp
void add_erasure_commands(CLI::App& app, int& exit_code);   // cmd_erasure.cpp: erase, export, expire
void add_optout_commands(CLI::App& app, int& exit_code);    // cmd_optout.cpp
void add_audit_commands(CLI::App& app, int& exit_code);     // cmd_audit.cpp
void add_key_commands(CLI::App& app, int& exit_code);       // cmd_keys.cpp: master key and API keys

}  // namespace fv::cli
