// The conventions every `facevault` command follows (cli/README.md, "The grammar"): the help
// footer with an example and the exit codes, and the --json flag.
#pragma once

#include <initializer_list>
#include <string>

#include <CLI/CLI.hpp>

namespace fv::cli {

// The footer of `facevault --help`: exit codes and where the models come from.
extern const char* const kHelpFooter;

// The footer of `facevault COMMAND --help`: "Example:" with each line (a whole command line,
// starting with "facevault"), then kHelpFooter. Every command and command group has one;
// tests/cli/grammar_test.cpp checks it for every command the parser knows.
void set_examples(CLI::App* cmd, std::initializer_list<const char*> lines);

// --json on a command whose only output is JSON already (detect, embed, bench index): accepted
// so that every command takes it; it changes nothing.
void add_json_noop_flag(CLI::App* cmd, const char* output);

}  // namespace fv::cli
