// facevault authorisation add | grant | refuse | list: the authorisations searches cite when
// their purpose is in the vault's oversight.authorisation_required (EU AI Act Art 26(10): a
// judicial or administrative authority's, requested within 48 hours). --json prints what the
// HTTP API answers (render::authorisation).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/vault_common.h"
#include "service/render.h"

namespace fv::cli {
namespace {

void print_authorisation(const service::Authorisation& a) {
  std::string purposes;
  for (const auto& p : a.purposes) purposes += (purposes.empty() ? "" : ", ") + p;
  std::printf("%s  %-8s  %s, reference %s  purposes %s  valid %s → %s", a.id.c_str(), a.status.c_str(),
              a.authority.c_str(), a.reference.c_str(), purposes.c_str(), a.valid_from.c_str(), a.valid_until.c_str());
  if (a.status == "pending" && a.deadline) std::printf("  grant due by %s", a.deadline->c_str());
  if (a.decided_at) std::printf("  %s %s by %s", a.status.c_str(), a.decided_at->c_str(), a.decided_by.value_or("-").c_str());
  std::printf("  cited by %lld case(s)%s%s\n", static_cast<long long>(a.cases_citing), a.note.empty() ? "" : "  note: ",
              a.note.c_str());
}

// grant and refuse: the same command with another use case.
void add_decision_command(CLI::App* group, int& exit_code, const char* name, const char* what,
                          Result<service::Authorisation> (service::Api::*use_case)(const service::Actor&,
                                                                                     const std::string&,
                                                                                     const std::string&),
                          const char* example) {
  struct A { std::string id, note; VaultOptions c; };
  auto a = std::make_shared<A>();
  auto* cmd = group->add_subcommand(name, what);
  cmd->add_option("id", a->id, "the authorisation (au_…)")->required();
  cmd->add_option("--note", a->note, "a note kept with the decision (e.g. the authority's letter)");
  add_vault_options(cmd, a->c);
  set_examples(cmd, {example});
  cmd->callback(vault_command(a->c, exit_code, [a, use_case](service::Api& svc, const service::Actor& actor) -> Status {
    return print_result(a->c, (svc.*use_case)(actor, a->id, a->note), service::render::authorisation, print_authorisation);
  }));
}

}  // namespace

void add_authorisation_commands(CLI::App& app, int& exit_code) {
  auto* group = app.add_subcommand("authorisation", "authorisations of searches: issuing authority, reference, purposes, validity");
  group->require_subcommand(1);
  set_examples(group, {"facevault authorisation add --authority \"District Court\" --reference W-17 --purpose investigation "
                       "--valid-from 2025-01-01 --valid-until 2025-03-31 --role auditor",
                       "facevault authorisation list --role investigator"});
  {
    struct A { service::AuthorisationRequest r; std::string deadline; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = group->add_subcommand("add", "record an authorisation, granted or (--pending) requested; prints its id");
    cmd->add_option("--authority", a->r.authority, "the issuing judicial or administrative authority")->required();
    cmd->add_option("--reference", a->r.reference, "the authority's reference (warrant, decision number)")->required();
    cmd->add_option("--purpose", a->r.purposes, "a purpose it covers (repeat for several)")->required();
    cmd->add_option("--valid-from", a->r.valid_from, "start (YYYY-MM-DD or timestamp, UTC)")->required();
    cmd->add_option("--valid-until", a->r.valid_until, "end (YYYY-MM-DD, end of that day, or timestamp, UTC)")->required();
    auto* pending = cmd->add_flag("--pending", a->r.pending,
                                  "requested, not granted yet: searches may cite it until its deadline; then it lapses "
                                  "and the cases that cited it are marked unusable");
    cmd->add_option("--deadline", a->deadline, "with --pending: when it lapses without a grant (default: now + the vault's "
                                               "oversight.authorisation_pending_hours, 48)")
        ->needs(pending);
    cmd->add_option("--note", a->r.note, "a note kept with the record");
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault authorisation add --authority \"District Court\" --reference W-17 --purpose investigation "
                       "--valid-from 2025-01-01 --valid-until 2025-03-31 --role auditor",
                       "facevault authorisation add --authority \"Prosecutor\" --reference R-9 --purpose investigation "
                       "--valid-from 2025-01-01 --valid-until 2025-01-31 --pending --json --role auditor"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      if (!a->deadline.empty()) a->r.deadline = a->deadline;
      return print_result(a->c, svc.authorisation_add(actor, a->r), service::render::authorisation,
                          [](const service::Authorisation& au) { std::printf("%s\n", au.id.c_str()); });
    }));
  }
  add_decision_command(group, exit_code, "grant", "record that a pending authorisation was granted",
                       &service::Api::authorisation_grant,
                       "facevault authorisation grant au_0123 --note \"granted by letter of 2 Jan\" --role auditor");
  add_decision_command(group, exit_code, "refuse", "record that an authorisation was refused (pending) or withdrawn (granted): searches may no longer "
                       "cite it and the cases that cited it become unusable",
                       &service::Api::authorisation_refuse,
                       "facevault authorisation refuse au_0123 --note \"refused by the court\" --role auditor --json");
  {
    auto c = std::make_shared<VaultOptions>();
    auto* cmd = group->add_subcommand("list", "every authorisation, with its status and the cases that cited it");
    add_vault_options(cmd, *c);
    set_examples(cmd, {"facevault authorisation list --role investigator", "facevault authorisation list --json --role auditor"});
    cmd->callback(vault_command(*c, exit_code, [c](service::Api& svc, const service::Actor& actor) -> Status {
      FV_ASSIGN_OR_RETURN(auto list, svc.authorisation_list(actor));
      for (const auto& a : list) {
        // One authorisation per line (JSON Lines), each as GET /v1/authorisations renders it.
        if (c->json) print_json(service::render::authorisation(a));
        else print_authorisation(a);
      }
      if (!c->json && list.empty()) std::printf("no authorisation\n");
      return Status::ok();
    }));
  }
}

}  // namespace fv::cli
