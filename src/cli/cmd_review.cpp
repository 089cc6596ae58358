// facevault review list | show | decide: the two-person review of search candidates (EU AI
// Act Art 14(5)). Every search opens a review case; a candidate is a confirmed identification
// only once the vault's reviewers_required reviewers confirmed it. Who may see which case and
// which decisions is the service's rule (a reviewer sees the others' decisions on a candidate
// only after recording their own); --json prints what GET /v1/reviews/{id} answers.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"

namespace fv::cli {
namespace {

int confirmed_count(const service::ReviewCase& c) {
  int n = 0;
  for (const auto& cand : c.candidates) n += cand.status == "confirmed";
  return n;
}

void print_case_line(const service::ReviewCase& c) {
  int decided = 0;
  for (const auto& cand : c.candidates) decided += cand.decided_by_caller;
  std::printf("%s  %-6s  opened %s by %s  purpose %s  case %s  %zu candidate(s), %d confirmed, %d decided by you%s\n",
              c.id.c_str(), c.status.c_str(), c.opened_at.c_str(), c.searcher.c_str(), c.purpose.c_str(),
              c.case_ref.c_str(), c.candidates.size(), confirmed_count(c), decided, c.unusable ? "  UNUSABLE" : "");
}

void print_decision(const service::ReviewDecision& d) {
  std::printf("      %s  %s (%s): %s — \"%s\"%s\n", d.decided_at.c_str(), d.reviewer.c_str(), d.reviewer_role.c_str(),
              d.decision.c_str(), d.reason.c_str(), d.reference_available ? "" : " (compared without a kept reference)");
}

void print_case(const service::ReviewCase& c, int reviewers_required) {
  std::printf("review case %s (%s)\n", c.id.c_str(), c.status.c_str());
  std::printf("  opened      %s by %s (search audit entry #%lld)\n", c.opened_at.c_str(), c.searcher.c_str(),
              static_cast<long long>(c.search_audit_seq));
  std::printf("  purpose     %s, case %s, mode %s\n", c.purpose.c_str(), c.case_ref.c_str(), c.mode.c_str());
  std::printf("  authorised  %s\n", c.authorisation ? c.authorisation->c_str() : "-");
  if (c.closed_at) std::printf("  closed      %s\n", c.closed_at->c_str());
  if (c.unusable) std::printf("  UNUSABLE    %s\n", c.unusable->c_str());
  std::string faces;
  for (int f : c.probe_faces) faces += (faces.empty() ? "" : ", ") + std::to_string(f);
  std::printf("  probe crops %s\n", faces.empty() ? "none kept" : ("face " + faces).c_str());
  std::printf("A candidate is not an identification until %d reviewers confirm it.\n", reviewers_required);
  for (const auto& cand : c.candidates) {
    const bool confirmed = cand.status == "confirmed";
    std::printf("  candidate %lld: face %d rank %d  %s  similarity %.4f  false-match rate %s\n",
                static_cast<long long>(cand.id), cand.face_index, cand.rank,
                cand.subject_ref.empty() ? "(erased)" : cand.subject_ref.c_str(), cand.similarity,
                cand.fmr ? one_in(*cand.fmr).c_str() : "unknown");
    std::printf("    %s, %d of %d decision(s) recorded; %s\n",
                confirmed ? "CONFIRMED identification" : ("candidate only: " + cand.status).c_str(),
                cand.decisions_recorded, reviewers_required,
                cand.reference_available ? "enrolled reference face kept" : "no enrolled reference face kept");
    if (!cand.decisions) {
      std::printf("    decisions hidden until you record your own decision\n");
      continue;
    }
    if (cand.decisions->empty()) std::printf("    no decision yet\n");
    for (const auto& d : *cand.decisions) print_decision(d);
  }
}

}  // namespace

void add_review_commands(CLI::App& app, int& exit_code) {
  auto* review = app.add_subcommand("review", "two-person review of search candidates: cases, decisions");
  review->require_subcommand(1);
  set_examples(review, {"facevault review list --awaiting --actor rita --role reviewer",
                        "facevault review decide rv_0123 --candidate 4 --decision reject --reason \"different ears\" "
                        "--actor rita --role reviewer"});
  {
    struct A { std::string status; bool awaiting = false; size_t limit = 100; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = review->add_subcommand("list", "review cases you may see, newest first");
    cmd->add_option("--status", a->status, "only open or closed cases")->check(CLI::IsMember({"open", "closed"}));
    cmd->add_flag("--awaiting", a->awaiting, "only open cases with a candidate you may still decide");
    cmd->add_option("--limit", a->limit, "at most N cases (default 100)")->check(CLI::Range(1, 1000));
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault review list --status open --actor rita --role reviewer",
                       "facevault review list --awaiting --json --actor rita --role reviewer"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      service::ReviewListFilter f;
      if (!a->status.empty()) f.status = a->status;
      f.awaiting_caller = a->awaiting;
      f.limit = a->limit;
      FV_ASSIGN_OR_RETURN(auto cases, svc.review_list(actor, f));
      for (const auto& c : cases) {
        // One case per line (JSON Lines), each as GET /v1/reviews/{id} renders it.
        if (a->c.json) print_json(service::render::review_case(c, svc.config().reviewers_required));
        else print_case_line(c);
      }
      if (!a->c.json && cases.empty()) std::printf("no review case\n");
      return Status::ok();
    }));
  }
  {
    struct A { std::string id; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = review->add_subcommand("show", "one review case: its candidates, their status and the decisions you may see");
    cmd->add_option("case", a->id, "the review case (rv_…, printed by search)")->required();
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault review show rv_0123 --actor rita --role reviewer",
                       "facevault review show rv_0123 --json --role auditor"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      const int required = svc.config().reviewers_required;
      return print_result(
          a->c, svc.review_show(actor, a->id),
          [required](const service::ReviewCase& c) { return service::render::review_case(c, required); },
          [required](const service::ReviewCase& c) { print_case(c, required); });
    }));
  }
  {
    struct A { std::string id, decision, reason; int64_t candidate = 0; VaultOptions c; };
    auto a = std::make_shared<A>();
    auto* cmd = review->add_subcommand("decide", "record your decision on one candidate of a case (audited, naming you)");
    cmd->add_option("case", a->id, "the review case (rv_…)")->required();
    cmd->add_option("--candidate", a->candidate, "the candidate's id in the case (review show lists them)")
        ->required()
        ->check(CLI::Range(int64_t{1}, int64_t{2'000'000'000}));
    cmd->add_option("--decision", a->decision, "confirm, reject or inconclusive")
        ->required()
        ->check(CLI::IsMember({"confirm", "reject", "inconclusive"}));
    cmd->add_option("--reason", a->reason, "why, in your words (kept in the case and the audit log)")->required();
    add_vault_options(cmd, a->c);
    set_examples(cmd, {"facevault review decide rv_0123 --candidate 4 --decision confirm --reason \"same scar, same ears\" "
                       "--actor rita --role reviewer"});
    cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
      service::ReviewDecisionRequest req;
      req.candidate_id = a->candidate;
      auto verdict = service::parse_review_verdict(a->decision);
      if (!verdict) return invalid_argument("unknown decision '" + a->decision + "' (confirm, reject, inconclusive)");
      req.verdict = *verdict;
      req.reason = a->reason;
      return print_result(a->c, svc.review_decide(actor, a->id, req), service::render::review_decision,
                          [&](const service::ReviewDecision& d) {
                            std::printf("recorded: %s on candidate %lld of %s by %s%s; audit entry %s\n", d.decision.c_str(),
                                        static_cast<long long>(d.candidate_id), a->id.c_str(), d.reviewer.c_str(),
                                        d.reference_available ? "" : " (compared without a kept reference)",
                                        d.audit_hash.empty() ? "-" : d.audit_hash.substr(0, 16).c_str());
                          });
    }));
  }
}

void add_oversight_commands(CLI::App& app, int& exit_code) {
  add_review_commands(app, exit_code);
  add_authorisation_commands(app, exit_code);
  add_report_command(app, exit_code);
}

}  // namespace fv::cli
