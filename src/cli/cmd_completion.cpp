// facevault completion bash | zsh: the shell completion script, written from this parser; with
// --json the command tree it is written from (every command, its options and their choices).
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/grammar.h"

namespace fv::cli {

void add_completion_command(CLI::App& app, int& exit_code) {
  struct A { std::string shell; bool json = false; };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("completion", "print the shell completion script (bash or zsh) of every command and option");
  cmd->add_option("shell", a->shell, "bash or zsh")->check(CLI::IsMember({"bash", "zsh"}));
  cmd->add_flag("--json", a->json, "the command tree instead (commands, options, choices): one JSON object");
  set_examples(cmd, {"source <(facevault completion bash)",
                     "facevault completion bash > /usr/share/bash-completion/completions/facevault",
                     "facevault completion --json"});
  // The callback runs after parsing, when the tree is complete (this command registers last).
  const CLI::App* root = &app;
  cmd->callback([a, root, &exit_code] {
    if (a->json) {
      std::cout << command_tree(*root).dump() << "\n";
    } else if (a->shell.empty()) {
      std::cerr << "facevault: completion needs a shell: bash or zsh (or --json)\n";
      exit_code = kExitUsage;
      return;
    } else {
      std::cout << (a->shell == "zsh" ? zsh_completion(*root) : bash_completion(*root));
    }
    exit_code = kExitOk;
  });
}

}  // namespace fv::cli
