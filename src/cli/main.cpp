// facevault: one binary, one subcommand per use case.
#include <iostream>
#include <string>

#include <sodium.h>

#include "cli/commands.h"
#include "cli/grammar.h"

int main(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::cerr << "facevault: libsodium failed to initialise\n";
    return fv::cli::kExitFailure;
  }
  CLI::App app{"facevault: lawful face recognition and face search"};
  // Subcommands set their own footer (an example, then the same exit codes): cli/grammar.h.
  fv::cli::set_examples(&app, {"facevault detect --json photo.jpg", "facevault init && facevault serve",
                                "facevault search --help"});
  app.require_subcommand(1);
  int exit_code = fv::cli::kExitOk;
  fv::cli::add_face_commands(app, exit_code);
  fv::cli::add_verify_command(app, exit_code);
  fv::cli::add_eval_commands(app, exit_code);
  fv::cli::add_vault_commands(app, exit_code);
  fv::cli::add_oversight_commands(app, exit_code);
  fv::cli::add_index_commands(app, exit_code);
  fv::cli::add_serve_commands(app, exit_code);
  fv::cli::add_cluster_commands(app, exit_code);
  fv::cli::add_completion_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : fv::cli::kExitUsage;
  } catch (const std::exception& e) {
    // A bug, not a reason: still one line on stderr and a failure exit code, never an abort.
    std::string m = e.what();
    for (auto& ch : m)
      if (ch == '\n' || ch == '\r') ch = ' ';
    std::cerr << "facevault: internal error: " << m << "\n";
    return fv::cli::kExitFailure;
  }
  return exit_code;
}
