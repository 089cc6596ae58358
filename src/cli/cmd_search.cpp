// facevault search: 1:N search of every face in a photo under a purpose and a case.
// --json prints exactly what POST /v1/search answers (service::render::search).
#include <cstdio>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "service/render.h"

namespace fv::cli {
namespace {

void print_search_text(const service::SearchResult& r) {
  std::printf("%zu face(s); searched %lld subject(s) whose basis covers '%s' (case %s)\n", r.faces.size(),
              static_cast<long long>(r.eligible_subjects), r.purpose.c_str(), r.case_ref.c_str());
  for (size_t i = 0; i < r.faces.size(); ++i) {
    const auto& f = r.faces[i];
    std::printf("face %zu at [%.0f, %.0f, %.0f, %.0f]%s\n", i, f.box.x1, f.box.y1, f.box.width(), f.box.height(),
                f.quality_ok ? "" : " (low quality: treat candidates with extra care)");
    if (f.candidates.empty()) std::printf("  no candidate above the threshold (false-match rate ≤ %g)\n", r.max_fmr);
    for (auto& c : f.candidates)
      std::printf("  %-20s similarity %.4f  false-match rate %s\n", c.subject_ref.c_str(), c.similarity,
                  c.fmr ? one_in(*c.fmr).c_str() : "unknown");
  }
  if (r.authorisation)
    std::printf("under authorisation %s%s\n", r.authorisation->c_str(),
                r.authorisation_pending ? " (pending: the results become unusable if it is not granted by its deadline)" : "");
  if (!r.review_case.empty())
    std::printf("review case %s: candidates are for two-person review, not identifications, until reviewers confirm "
                "them (facevault review show %s)\n", r.review_case.c_str(), r.review_case.c_str());
  else
    std::printf("candidates are for human review, not identifications\n");
  std::printf("this search is in the audit log (%s)\n", r.audit_hash.substr(0, 16).c_str());
}

}  // namespace

void add_search_command(CLI::App& app, int& exit_code) {
  struct A { std::string image, authorisation; service::SearchRequest r; double max_fmr = 0, max_fpir = 0; VaultOptions c; };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("search", "1:N search of every face in a photo, among subjects whose lawful basis covers the purpose");
  cmd->add_option("image", a->image, "probe photo")->required();
  cmd->add_option("--purpose", a->r.purpose, "the purpose of this search (required)");
  cmd->add_option("--case", a->r.case_ref, "the case reference this search is for (required)");
  cmd->add_option("--top", a->r.top_k, "at most K candidates per face (default 5)")->check(CLI::Range(1, 1000));
  cmd->add_option("--max-fmr", a->max_fmr, "drop candidates whose false-match rate is above this (default and upper bound: the vault's search_max_fmr, 1e-3)")
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--mode", a->r.mode,
                  "threshold (default: candidates above the false-match limit), identification (above the "
                  "threshold for --max-fpir of the eligible gallery) or investigation (the top 50 for human review)")
      ->check(CLI::IsMember(service::kSearchModes));
  cmd->add_option("--authorisation", a->authorisation,
                  "the authorisation this search cites (au_…; required when the purpose needs one: "
                  "facevault authorisation list)");
  cmd->add_option("--max-fpir", a->max_fpir, "identification mode: false-positive identification rate (default 0.01)")
      ->check(CLI::Range(1e-9, 0.5));
  add_vault_options(cmd, a->c);
  set_examples(cmd, {"facevault search photo.jpg --purpose access-control --case C-1 --role investigator",
                     "facevault search photo.jpg --purpose access-control --case C-1 --mode investigation --json",
                     "facevault search photo.jpg --purpose investigation --case C-2 --authorisation au_0123 --role investigator"});
  cmd->callback(vault_command(a->c, exit_code, [a](service::Api& svc, const service::Actor& actor) -> Status {
    if (a->max_fmr > 0) a->r.max_fmr = a->max_fmr;
    if (a->max_fpir > 0) a->r.max_fpir = a->max_fpir;
    if (!a->authorisation.empty()) a->r.authorisation = a->authorisation;
    FV_ASSIGN_OR_RETURN(auto bytes, read_file(a->image));
    return print_result(a->c, svc.search(actor, a->r, std::move(bytes)), service::render::search, print_search_text);
  }));
}

}  // namespace fv::cli
