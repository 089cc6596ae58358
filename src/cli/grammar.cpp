#include "cli/grammar.h"

namespace fv::cli {

const char* const kHelpFooter =
    "Exit codes: 0 success; 1 usage error; 2 the command could not run (missing models, unreadable "
    "input files); 3 the command ran but some inputs failed (each reported in the output).\n"
    "Models: fetched once by `make models` into $FACEVAULT_MODEL_DIR (default ~/.cache/facevault/models).\n"
    "Shell completion: source <(facevault completion bash)";

void set_examples(CLI::App* cmd, std::initializer_list<const char*> lines) {
  std::string footer = lines.size() > 1 ? "Examples:\n" : "Example:\n";
  for (const char* line : lines) footer += std::string("  ") + line + "\n";
  cmd->footer(footer + "\n" + kHelpFooter);
}

void add_json_noop_flag(CLI::App* cmd, const char* output) {
  // The value is never read: the flag exists for the one grammar (--json on every command).
  cmd->add_flag("--json")->description(std::string("accepted for the common grammar; the output is ") + output + " already");
}

}  // namespace fv::cli
