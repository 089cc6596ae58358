// facevault audit verify | checkpoint | show: the tamper-evident audit log and its signed checkpoints.
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"

using nlohmann::json;

namespace fv::cli {
namespace {

void print_entry_text(const vault::AuditEntry& e) {
  constexpr auto kReplace = json::error_handler_t::replace;
  std::printf("#%-5lld %s %-10s %-12s %-14s %-7s", static_cast<long long>(e.seq), e.ts.c_str(), e.actor.c_str(),
              e.role.c_str(), e.action.c_str(), e.outcome.c_str());
  if (!e.purpose.empty()) std::printf(" purpose=%s", e.purpose.c_str());
  if (!e.case_ref.empty()) std::printf(" case=%s", e.case_ref.c_str());
  if (!e.subjects.empty()) std::printf(" subjects=%s", json(e.subjects).dump(-1, ' ', false, kReplace).c_str());
  std::printf(" %s\n", e.details.dump(-1, ' ', false, kReplace).c_str());
}

}  // namespace

void add_audit_commands(CLI::App& app, int& exit_code) {
  auto* audit = app.add_subcommand("audit", "the tamper-evident audit log");
  audit->require_subcommand(1);
  set_examples(audit, {"facevault audit verify --role auditor", "facevault audit checkpoint --role auditor --json",
                       "facevault audit show --subject S-1 --role auditor"});
  {
    struct A { std::string against; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = audit->add_subcommand("verify", "recompute the hash chain and check every signed checkpoint; name the first "
                                                "altered, removed, inserted or reordered entry or checkpoint");
    cmd->add_option("--against", a->against,
                    "also check a checkpoint kept elsewhere (the JSON printed by `audit checkpoint --json`)")
        ->check(CLI::ExistingFile);
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault audit verify --role auditor --json",
                       "facevault audit verify --against /mnt/offsite/checkpoint-2024-06-01.json --role auditor"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      vault::AuditVerifyReport r;
      if (!a->against.empty()) {
        std::ifstream in(a->against);
        if (!in) return invalid_argument("cannot read " + a->against);
        auto j = json::parse(in, nullptr, false);
        if (j.is_discarded()) return invalid_argument(a->against + " is not JSON (expected the output of `audit checkpoint --json`)");
        FV_ASSIGN_OR_RETURN(auto external, vault::AuditCheckpoint::from_json(j));
        // A checkpoint signs one chain's head; a cluster keeps a chain per vault.
        FV_ASSIGN_OR_RETURN(service::Service * one, single_vault(svc, "audit verify --against"));
        FV_ASSIGN_OR_RETURN(r, one->audit_verify_against(actor, external));
      } else {
        FV_ASSIGN_OR_RETURN(r, svc.audit_verify(actor));
      }
      if (a->c.json) print_json(r.to_json());
      if (!r.ok) return failed_precondition("audit chain broken: " + r.message);
      if (!a->c.json)
        std::printf("audit chain intact: %lld entries, head %s, %lld signed checkpoints valid%s\n",
                    static_cast<long long>(r.entries), r.head.c_str(), static_cast<long long>(r.checkpoints),
                    a->against.empty() ? "" : ", external checkpoint matches");
      return Status::ok();
    }));
  }
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = audit->add_subcommand("checkpoint", "sign the audit chain's head now and print the checkpoint, to keep "
                                                    "outside the vault (check it later with audit verify --against)");
    add_vault_options(cmd, *c);
    set_examples(cmd, {"facevault audit checkpoint --role auditor --json > /mnt/offsite/checkpoint.json"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto cp, svc.audit_checkpoint(actor));
      if (c->json) {
        print_json(cp.to_json());
        return Status::ok();
      }
      std::printf("checkpoint #%lld: audit entry %lld\nhead        %s\npublic key  %s\nsignature   %s\ncreated at  %s\n",
                  static_cast<long long>(cp.id), static_cast<long long>(cp.seq), cp.head.c_str(), cp.public_key.c_str(),
                  cp.signature.c_str(), cp.created_at.c_str());
      std::printf("keep it outside the vault: facevault audit checkpoint --json > FILE; check with audit verify --against FILE\n");
      return Status::ok();
    }));
  }
  {
    struct A { std::string since, subject; size_t limit = 0; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = audit->add_subcommand("show", "print audit entries");
    cmd->add_option("--since", a->since, "entries at or after this date/time (UTC)");
    cmd->add_option("--subject", a->subject, "entries naming this subject (reference, or vault id after erasure)");
    cmd->add_option("--limit", a->limit, "at most N entries");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault audit show --since 2024-01-01 --limit 20 --role auditor",
                       "facevault audit show --subject S-1 --role auditor --json"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      service::AuditFilter filter;
      if (!a->since.empty()) filter.since = a->since;
      if (!a->subject.empty()) filter.subject = a->subject;
      filter.limit = a->limit;
      FV_ASSIGN_OR_RETURN(auto page, svc.audit_show(actor, filter));
      if (a->c.json) {
        // One entry per line (JSON Lines), each as the HTTP API renders it in its page.
        const nlohmann::json rendered = service::render::audit_page(page);
        for (const auto& e : rendered["entries"]) print_json(e);
        return Status::ok();
      }
      for (const auto& e : page.entries) print_entry_text(e);
      return Status::ok();
    }));
  }
}

}  // namespace fv::cli
