// facevault audit verify | show: the tamper-evident audit log.
#include <cstdio>
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
  set_examples(audit, {"facevault audit verify --role auditor", "facevault audit show --subject S-1 --role auditor"});
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = audit->add_subcommand("verify", "recompute the hash chain; name the first altered, removed, inserted or reordered entry");
    add_vault_options(cmd, *c);
    set_examples(cmd, {"facevault audit verify --role auditor --json"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Service& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto r, svc.audit_verify(actor));
      if (c->json) print_json(r.to_json());
      if (!r.ok) return failed_precondition("audit chain broken: " + r.message);
      if (!c->json) std::printf("audit chain intact: %lld entries, head %s\n", static_cast<long long>(r.entries), r.head.c_str());
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
    cmd->callback(vault_command(a->c, exit_code, [a](service::Service& svc, const service::Actor& actor) -> Status {
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
