// The `facevault` subcommands. Each add_* registers its subcommands on the app; the callback
// stores the process exit code in `exit_code` (ExitCode below; cli/README.md, "The grammar").
#pragma once

#include <CLI/CLI.hpp>

#include "cli/batch.h"

namespace fv::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad arguments (CLI11 also uses non-zero codes for parse errors)
  kExitFailure = 2,      // the command could not run: missing models, unreadable inputs
  kExitPartial = 3,      // the command ran, but some inputs failed (each reported in the output)
};

// Options every face command shares, bound to CLI flags by add_pipeline_flags.
struct PipelineFlags {
  int threads = 1;
  bool no_tiling = false;
  double min_face = 20;
  float det_score = 0.65f;
  float tile_score = -1;  // < 0: the detector's default
  std::string embedder = "faceplugin-mobilefacenet-512";
  bool progress = false;
  bool no_progress = false;
  BatchOptions to_batch(bool embed) const;
};
void add_pipeline_flags(CLI::App* cmd, PipelineFlags& flags);

void add_face_commands(CLI::App& app, int& exit_code);
void add_verify_command(CLI::App& app, int& exit_code);
void add_eval_commands(CLI::App& app, int& exit_code);
void add_vault_commands(CLI::App& app, int& exit_code);  // init … key (vault_commands.h)
void add_index_commands(CLI::App& app, int& exit_code);  // eval ident, bench index
void add_serve_commands(CLI::App& app, int& exit_code);  // serve
void add_cluster_commands(CLI::App& app, int& exit_code);  // cluster init|status (cmd_cluster.cpp)
// Human oversight: review, authorisation, report (cmd_review.cpp registers the three).
void add_oversight_commands(CLI::App& app, int& exit_code);
void add_review_commands(CLI::App& app, int& exit_code);         // cmd_review.cpp
void add_authorisation_commands(CLI::App& app, int& exit_code);  // cmd_authorisation.cpp
void add_report_command(CLI::App& app, int& exit_code);          // cmd_report.cpp
void add_completion_command(CLI::App& app, int& exit_code);  // completion: register it last

}  // namespace fv::cli
