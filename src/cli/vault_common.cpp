#include "cli/vault_common.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "cli/cluster_client.h"
#include "image/decode.h"
#include "service/render.h"
#include "vault/vault.h"

namespace fs = std::filesystem;

namespace fv::cli {

constexpr const char* kVaultHelp = "vault directory (default $FACEVAULT_VAULT, then ./var/vault)";

void add_vault_options(CLI::App* cmd, VaultOptions& o) {
  auto* vault = cmd->add_option("--vault", o.vault, kVaultHelp);
  cmd->add_option("--cluster", o.cluster,
                  "run on a cluster instead: its NATS servers, comma-separated (needs the cluster's keys in "
                  "FACEVAULT_MASTER_KEY and FACEVAULT_AUDIT_SIGNING_KEY)")
      ->excludes(vault);
  cmd->add_flag("--json", o.json, "machine-readable JSON output");
  cmd->add_option("--actor", o.actor, "who is acting, recorded in the audit log (default: the OS user)");
  cmd->add_option("--role", o.role, "admin, enroller, investigator, auditor or reviewer (default admin)");
}

void add_vault_dir_option(CLI::App* cmd, std::string& vault) { cmd->add_option("--vault", vault, kVaultHelp); }

fs::path vault_dir(const std::string& vault) { return vault.empty() ? vault::default_vault_dir() : fs::path(vault); }

std::string os_user() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid-" + std::to_string(getuid());
}

int fail(const Status& st, int code) {
  std::string m = st.message();
  for (auto& ch : m)
    if (ch == '\n') ch = ' ';
  std::cerr << "facevault: " << m << "\n";
  return code;
}

Result<service::Actor> actor_of(const VaultOptions& o) {
  const auto role = service::parse_role(o.role);
  if (!role)
    return invalid_argument("unknown role '" + o.role + "' (" + service::role_names(service::all_roles()) + ")");
  return service::Actor{o.actor.empty() ? os_user() : o.actor, *role};
}

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return not_found("cannot read " + path + ": " + ec.message());
  if (size > image::DecodeLimits{}.max_file_bytes) return resource_exhausted(path + " is larger than 64 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path);
  std::vector<uint8_t> b(size);
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(size));
  if (!in) return io_error("cannot read " + path);
  return b;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::string one_in(double fmr) {
  if (fmr <= 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "1 in %.0f", 1.0 / fmr);
  return buf;
}

void print_receipt(const service::EraseReceipt& r, bool as_json) {
  if (!r.wiped && !r.audit_hash.empty())
    std::cerr << "facevault: warning: erased, but freed pages are not overwritten yet (" << r.wipe_error
              << "); the next command that opens the vault finishes it\n";
  if (as_json) {
    print_json(service::render::erase_receipt(r));
    return;
  }
  std::printf("ERASURE RECEIPT\n  subject        %s (vault id %s)\n  reason         %s\n  erased at      %s\n",
              r.subject_ref.c_str(), r.subject_uid.c_str(), r.reason.c_str(), r.erased_at.c_str());
  std::printf("  erased         %lld template(s), %lld source image record(s) (%lld kept image(s)), %lld lawful basis record(s)%s\n",
              static_cast<long long>(r.faces), static_cast<long long>(r.images), static_cast<long long>(r.kept_images),
              static_cast<long long>(r.bases), r.key_destroyed ? ", subject key destroyed" : "");
  std::printf("  free pages     %s\n", r.wiped ? "WAL checkpointed and truncated, freed pages overwritten"
                                              : "NOT wiped yet (pending: the next command that opens the vault does it)");
  std::printf("  audit entry    #%lld %s\n", static_cast<long long>(r.audit_seq), r.audit_hash.c_str());
}

Result<service::Service*> single_vault(service::Api& svc, const std::string& what) {
  if (auto* one = dynamic_cast<service::Service*>(&svc)) return one;
  return failed_precondition(what + " runs on one vault (--vault), not on a cluster");
}

std::function<void()> vault_command(const VaultOptions& o, int& exit_code, VaultCommand body) {
  return [&o, &exit_code, body = std::move(body)] {
    auto actor = actor_of(o);
    if (!actor.is_ok()) { exit_code = fail(actor.status()); return; }
    service::ServiceOptions options;
    options.pipelines = o.pipelines;
    if (!o.cluster.empty()) {
      auto client = ClusterClient::open(o.cluster, options);
      if (!client.is_ok()) { exit_code = fail(client.status()); return; }
      const Status st = body((*client)->service(), *actor);
      exit_code = st.is_ok() ? kExitOk : fail(st);
      return;
    }
    auto svc = service::Service::open(vault_dir(o.vault), options);
    if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
    const Status st = body(**svc, *actor);
    exit_code = st.is_ok() ? kExitOk : fail(st);
  };
}

}  // namespace fv::cli
