// Vault commands (init, basis, enroll, search, erase, export, expire, optout, audit, key).
// Every command takes --vault DIR (default $FACEVAULT_VAULT, then ./var/vault), --json,
// --actor NAME (default the OS user) and --role ROLE (default admin); it exits 0 on success
// and otherwise prints one line "facevault: <reason>" on stderr and exits non-zero
// (vault_common.h). This file registers them and holds `init` and `basis`.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"
#include "vault/audit.h"
#include "vault/timeutil.h"
#include "vault/vault.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::cli {
namespace {

Result<service::BasisKind> basis_kind(const std::string& name) {
  if (auto k = service::parse_basis_kind(name)) return *k;
  std::string known;
  for (auto k : service::all_basis_kinds()) known += (known.empty() ? "" : ", ") + std::string(service::basis_kind_name(k));
  return invalid_argument("unknown basis kind '" + name + "' (" + known + ")");
}

}  // namespace

void add_init_command(CLI::App& app, int& exit_code) {
  struct A { std::string dir; VaultOptions c; double retention = 365; };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("init", "create a vault: database, master key (mode 0600, or $FACEVAULT_MASTER_KEY), config");
  cmd->add_option("dir", a->dir, "vault directory (default: --vault, $FACEVAULT_VAULT, ./var/vault)");
  cmd->add_option("--retention-days", a->retention, "default retention of a subject's data (renewed by enrollment)")
      ->check(CLI::Range(1.0, 36500.0));
  add_vault_options(cmd, a->c);
  set_examples(cmd, {"facevault init /srv/facevault", "facevault init --vault var/vault --retention-days 180 --json"});
  cmd->callback([a, &exit_code] {
    const fs::path dir = a->dir.empty() ? vault_dir(a->c.vault) : fs::path(a->dir);
    vault::VaultConfig cfg;
    cfg.default_retention_days = a->retention;
    const service::Actor creator{a->c.actor.empty() ? os_user() : a->c.actor, service::Role::kAdmin};
    if (Status st = service::init_vault(dir, cfg, creator); !st.is_ok()) { exit_code = fail(st); return; }
    auto v = vault::Vault::open(dir);  // what was made, for the report below
    if (!v.is_ok()) { exit_code = fail(v.status()); return; }
    if (a->c.json) {
      print_json({{"vault", dir.string()}, {"master_key", (*v)->config().master_key},
                  {"master_key_id", (*v)->master_key_id()}, {"schema_version", vault::kSchemaVersion}});
    } else {
      std::printf("vault created at %s\n", dir.c_str());
      if ((*v)->config().master_key == "file")
        std::printf("master key: %s (mode 0600, id %s): back it up apart from the vault; without it nothing can be read\n",
                    (*v)->paths().key().c_str(), (*v)->master_key_id().c_str());
      else
        std::printf("master key: from $%s (id %s); no key file written\n", vault::kMasterKeyEnv,
                    (*v)->master_key_id().c_str());
    }
    exit_code = kExitOk;
  });
}

void add_basis_commands(CLI::App& app, int& exit_code) {
  auto* basis = app.add_subcommand("basis", "lawful-basis records: consent, legal obligation, public task, law-enforcement authorisation");
  basis->require_subcommand(1);
  set_examples(basis, {"facevault basis add --subject S-1 --kind consent --reference form-7 --purpose access-control"});
  {
    struct A { service::BasisRequest r; std::string kind, expires; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = basis->add_subcommand("add", "record a lawful basis for a subject (creating the subject if new); prints the basis id");
    cmd->add_option("--subject", a->r.subject_ref, "the subject's external reference")->required();
    cmd->add_option("--kind", a->kind, "consent | legal-obligation | public-task | law-enforcement")->required();
    cmd->add_option("--reference", a->r.reference, "consent form id, warrant number, statute")->required();
    cmd->add_option("--purpose", a->r.purposes, "a purpose it covers (repeat for several)")->required();
    cmd->add_option("--expires", a->expires, "expiry date (YYYY-MM-DD, UTC end of day) or timestamp");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault basis add --subject S-1 --kind consent --reference form-7 --purpose access-control --expires 2030-12-31"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(a->r.kind, basis_kind(a->kind));
      if (!a->expires.empty()) a->r.expires = a->expires;
      return print_result(a->c, svc.add_basis(actor, a->r), service::render::basis,
                          [](const service::BasisResult& r) { std::printf("%lld\n", static_cast<long long>(r.basis_id)); });
    }));
  }
  {
    struct A { int64_t id = 0; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = basis->add_subcommand("withdraw", "withdraw a basis (e.g. consent): erases what it covered; prints a receipt");
    cmd->add_option("id", a->id, "basis id")->required();
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault basis withdraw 3 --json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto receipt, svc.withdraw_basis(actor, a->id));
      print_receipt(receipt, a->c.json);
      return Status::ok();
    }));
  }
}

void add_vault_commands(CLI::App& app, int& exit_code) {
  add_init_command(app, exit_code);
  add_basis_commands(app, exit_code);
  add_enroll_command(app, exit_code);
  add_search_command(app, exit_code);
  add_erasure_commands(app, exit_code);
  add_optout_commands(app, exit_code);
  add_audit_commands(app, exit_code);
  add_key_commands(app, exit_code);
}

}  // namespace fv::cli
