// Shell completion written from the command parser itself, so it cannot go stale: every
// command, subcommand and option `facevault --help` knows, and the choices of the options that
// take a fixed set of values. The output depends only on the parser (no time, no paths), so a
// build can install it (bash-completion's completions/facevault).
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace fv::cli {

// Every command as data, depth first in the order `--help` lists them:
// {"program": "facevault", "commands": [{"command": "basis add", "description",
//   "subcommands": [names], "options": [{"names", "takes_value", "required", "choices"}],
//   "positionals": [{"name", "required", "choices"}]}, ...]}; the first entry is the program itself
// ("command": ""). Hidden options are left out.
nlohmann::ordered_json command_tree(const CLI::App& root);

// A bash script defining _facevault and `complete -F _facevault facevault`.
std::string bash_completion(const CLI::App& root);

// The same script for zsh, through zsh's bashcompinit.
std::string zsh_completion(const CLI::App& root);

}  // namespace fv::cli
