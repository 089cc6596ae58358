// What every vault command shares: the options --vault (or --cluster), --json, --actor and
// --role, the one skeleton of a command (actor → service → use case → output → exit code),
// reading a photo from disk and the one-line failure on stderr. The serve and key commands use
// the same. A command runs on one vault, or with --cluster on a cluster through a temporary
// client node (cli/cluster_client.h), behind the same service::Api.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "service/service.h"

namespace fv::cli {

// Options of every vault command (add_vault_options binds them).
struct VaultOptions {
  std::string vault;          // empty: $FACEVAULT_VAULT, then ./var/vault
  std::string cluster;        // NATS servers, comma-separated: the command runs on that cluster
  bool json = false;
  std::string actor;          // empty: the OS user
  std::string role = "admin";
  int pipelines = 1;          // face pipelines the service runs at once (enroll --threads)
};
void add_vault_options(CLI::App* cmd, VaultOptions& o);
// Just --vault (commands that act as the vault's holder: serve, API keys).
void add_vault_dir_option(CLI::App* cmd, std::string& vault);

std::filesystem::path vault_dir(const std::string& vault);
std::string os_user();

// "facevault: <reason>" (one line) on stderr; returns `code`.
int fail(const Status& st, int code = kExitFailure);

// The caller of one command: --actor (default the OS user) in the --role given. An unknown role
// is kInvalidArgument, before the vault is opened.
Result<service::Actor> actor_of(const VaultOptions& o);

// A photo from disk, refused before reading when larger than the decoder accepts.
Result<std::vector<uint8_t>> read_file(const std::string& path);

// One JSON document on one line of stdout. Text the user supplied that is not UTF-8 prints as
// U+FFFD instead of making the JSON library throw.
void print_json(const nlohmann::json& j);

// An erasure receipt (erase, basis withdraw): the JSON of render::erase_receipt or the text
// receipt; a warning on stderr when the freed pages are not wiped yet.
void print_receipt(const service::EraseReceipt& r, bool as_json);

// "1 in 10000"; "0" for a rate of zero.
std::string one_in(double fmr);

// The body of a vault command: runs one use case and prints its result; a Status that is not
// ok is printed by the skeleton.
using VaultCommand = std::function<Status(service::Api& svc, const service::Actor& actor)>;

// The single vault behind `svc`; kFailedPrecondition naming `what` when the command runs on a
// cluster (a use case the cluster does not offer, such as master-key rotation).
Result<service::Service*> single_vault(service::Api& svc, const std::string& what);

// The skeleton every vault command shares: resolves the actor, opens the service on the
// vault (or the cluster), runs `body` and sets `exit_code` (0, or 2 with the reason on stderr). `o` is read when
// the command runs: keep it in the options struct that `body` holds (a shared_ptr).
std::function<void()> vault_command(const VaultOptions& o, int& exit_code, VaultCommand body);

// The common output step: `to_json(value)` on one line with --json, otherwise `print_text(value)`.
template <class T, class ToJson, class PrintText>
Status print_result(const VaultOptions& o, const Result<T>& r, ToJson&& to_json, PrintText&& print_text) {
  if (!r.is_ok()) return r.status();
  if (o.json) print_json(to_json(*r));
  else print_text(*r);
  return Status::ok();
}

}  // namespace fv::cli
