// facevault key: the master key (rotate, generate) and the API keys of `facevault serve`
// (create, revoke, list). API keys are managed by whoever holds the master key: the service
// is opened on the vault (which checks that key) and the caller acts as admin.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"
#include "vault/crypto.h"

using nlohmann::json;

namespace fv::cli {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (auto& x : items) s += (s.empty() ? "" : ",") + x;
  return s;
}

void add_master_key_commands(CLI::App* key, int& exit_code) {
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = key->add_subcommand("rotate", "re-wrap every subject key under a new master key (templates untouched)");
    add_vault_options(cmd, *c);
    set_examples(cmd, {"facevault key rotate --json --actor ops --role admin"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Api& svc, const service::Actor& actor) -> Status {
      // A cluster's master key is every node's at once: its rotation is a cluster procedure.
      FV_ASSIGN_OR_RETURN(service::Service * one, single_vault(svc, "key rotate"));
      return print_result(*c, one->rotate_key(actor), service::render::rotate_report,
                          [](const vault::Vault::RotateReport& r) {
                            std::printf("master key rotated: %s → %s; %lld subject key(s) re-wrapped, templates untouched\n",
                                        r.old_key_id.c_str(), r.new_key_id.c_str(), static_cast<long long>(r.subject_keys));
                          });
    }));
  }
  {
    auto json = std::make_shared<bool>(false);
    auto* cmd = key->add_subcommand("generate", "print a new random master key (64 hex digits) for $FACEVAULT_MASTER_KEY");
    cmd->add_flag("--json", *json, "{\"master_key\": HEX} instead of the bare key");
    set_examples(cmd, {"(umask 077 && facevault key generate > /etc/facevault/master.key)",
                       "export FACEVAULT_MASTER_KEY=$(facevault key generate)"});
    cmd->callback([json, &exit_code] {
      std::string hex = vault::SecretKey::random().to_hex();
      if (*json) {
        std::string line = "{\"master_key\":\"" + hex + "\"}";
        std::printf("%s\n", line.c_str());
        vault::wipe(line);
      } else {
        std::printf("%s\n", hex.c_str());
      }
      vault::wipe(hex);
      exit_code = kExitOk;
    });
  }
}

void add_api_key_commands(CLI::App* key, int& exit_code) {
  {
    struct A { VaultOptions c; std::string key_role, label; std::vector<std::string> purposes; };
    auto a = std::make_shared<A>();
    auto* cmd = key->add_subcommand("create", "create an API key for the HTTP API; prints the key once (only a hash is stored)");
    cmd->add_option("--role", a->key_role, "admin, enroller, investigator or auditor")->required();
    cmd->add_option("--purpose", a->purposes, "a purpose this key may search for (repeat for several)");
    cmd->add_option("--label", a->label, "who holds the key (free text)");
    add_vault_dir_option(cmd, a->c.vault);
    cmd->add_option("--actor", a->c.actor, "who creates it, recorded in the audit log (default: the OS user)");
    cmd->add_flag("--json", a->c.json, "machine-readable JSON output");
    set_examples(cmd, {"facevault key create --role investigator --purpose access-control --label \"desk 3\"",
                       "facevault key create --role enroller --json"});
    cmd->callback([a, &exit_code] {
      const auto role = service::parse_role(a->key_role);
      if (!role) {
        exit_code = fail(invalid_argument("unknown role '" + a->key_role + "' (" +
                                          service::role_names(service::all_roles()) + ")"),
                         kExitUsage);
        return;
      }
      // A refusal of the key itself (a malformed purpose) is a usage error, as a bad --role is.
      Status refusal;
      vault_command(a->c, exit_code, [a, role, &refusal](service::Api& svc, const service::Actor& actor) -> Status {
        auto k = svc.create_api_key(actor, *role, a->purposes, a->label);
        if (!k.is_ok()) return refusal = k.status();
        if (a->c.json) {
          json j = k->key.to_json();
          j["key"] = k->secret;
          print_json(j);
        } else {
          std::printf("%s\n", k->secret.c_str());
          std::fprintf(stderr, "API key %s (role %s%s%s): shown once, only its hash is stored; revoke with `facevault key revoke %s`\n",
                       k->key.id.c_str(), k->key.role.c_str(), k->key.purposes.empty() ? "" : ", purposes ",
                       joined(k->key.purposes).c_str(), k->key.id.c_str());
        }
        return Status::ok();
      })();
      if (refusal.code() == StatusCode::kInvalidArgument) exit_code = kExitUsage;
    });
  }
  {
    struct A { VaultOptions c; std::string id; };
    auto a = std::make_shared<A>();
    auto* cmd = key->add_subcommand("revoke", "revoke an API key (by its id, the 12 hex digits after fvk_)");
    cmd->add_option("id", a->id, "key id")->required();
    add_vault_dir_option(cmd, a->c.vault);
    cmd->add_option("--actor", a->c.actor, "who revokes it, recorded in the audit log (default: the OS user)");
    cmd->add_flag("--json", a->c.json, "machine-readable JSON output");
    set_examples(cmd, {"facevault key revoke 3f2a9c0d1e4b"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      std::string id = a->id;
      if (id.rfind("fvk_", 0) == 0) id = id.substr(4, 12);  // a whole key pasted: take its id
      FV_RETURN_IF_ERROR(svc.revoke_api_key(actor, id));
      if (a->c.json) print_json({{"revoked", id}});
      else std::printf("API key %s revoked\n", id.c_str());
      return Status::ok();
    }));
  }
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = key->add_subcommand("list", "list API keys (ids, roles, purposes; never the keys)");
    add_vault_dir_option(cmd, c->vault);
    cmd->add_option("--actor", c->actor, "who is acting (default: the OS user); accepted as on every vault command");
    cmd->add_flag("--json", c->json, "machine-readable JSON output (one key per line)");
    set_examples(cmd, {"facevault key list --json"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto keys, svc.list_api_keys(actor));
      for (auto& k : keys) {
        if (c->json) { print_json(k.to_json()); continue; }
        const std::string p = joined(k.purposes);
        std::printf("%s  %-12s %-30s %s%s%s\n", k.id.c_str(), k.role.c_str(), p.empty() ? "-" : p.c_str(),
                    k.created_at.c_str(), k.revoked_at ? "  revoked " : "", k.revoked_at ? k.revoked_at->c_str() : "");
      }
      return Status::ok();
    }));
  }
}

}  // namespace

void add_key_commands(CLI::App& app, int& exit_code) {
  auto* key = app.add_subcommand("key", "master key (rotate, generate) and API keys for `facevault serve` (create, revoke, list)");
  key->require_subcommand(1);
  set_examples(key, {"facevault key create --role investigator --purpose access-control", "facevault key list"});
  add_master_key_commands(key, exit_code);
  add_api_key_commands(key, exit_code);
}

}  // namespace fv::cli
