// facevault enroll: photos of one subject on the command line, or a CSV manifest
// (image,subject,basis[,provenance]); one report line per photo, exit 3 when only some failed.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/grammar.h"
#include "cli/vault_commands.h"
#include "cli/vault_common.h"
#include "nn/model.h"
#include "service/render.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::cli {
namespace {

struct EnrollArgs {
  std::string subject, purpose, manifest, source, supplied_by, method;
  int64_t basis = 0;
  int face = -1, threads = 1;
  bool keep = false, progress = false, no_progress = false;
  bool keep_reference = false, no_keep_reference = false;
  std::vector<std::string> images;
  VaultOptions c;
};

// Counts the outcomes and prints one line per photo (a JSON object with --json).
class EnrollReport {
 public:
  explicit EnrollReport(bool as_json) : json_(as_json) {}
  void add(const std::string& file, const std::string& subject, const Result<service::EnrollResult>& r) {
    if (r.is_ok()) {
      ++ok_;
      if (json_) {
        json j = service::render::enrollment(*r);
        j["file"] = file;
        print_json(j);
      } else {
        std::printf("enrolled %s → %s (template %lld, retention until %s%s)\n", file.c_str(), subject.c_str(),
                    static_cast<long long>(r->face_id), r->retention_until.c_str(),
                    r->reference_kept ? "; reference crop kept for reviewers" : "");
      }
    } else {
      ++bad_;
      if (json_) print_json({{"file", file}, {"subject", subject}, {"error", r.status().message()}});
      std::cerr << "facevault: " << file << ": " << r.status().message() << "\n";
    }
    std::cout.flush();
  }
  int exit_code() const { return bad_ == 0 ? kExitOk : ok_ > 0 ? kExitPartial : kExitFailure; }

 private:
  bool json_;
  size_t ok_ = 0, bad_ = 0;
};

void progress_bar(size_t done, size_t total) {
  const int w = 30, filled = static_cast<int>(w * done / std::max<size_t>(1, total));
  std::fprintf(stderr, "\r[%s%s] %zu/%zu", std::string(filled, '#').c_str(), std::string(w - filled, ' ').c_str(), done,
               total);
  if (done == total) std::fprintf(stderr, "\n");
}

// Returns the exit code: usage errors (1) and a failed manifest (2) stop the command; a photo
// that fails is reported and the others go on (3 when some failed).
// A manifest on a cluster: row by row, each enrollment on its subject's shard (the batch use
// case, which analyses photos ahead of the commits, is one vault's).
void enroll_rows(const EnrollArgs& a, service::Api& svc, const service::Actor& actor,
                 const std::vector<service::BatchRow>& rows, EnrollReport& report, bool bar) {
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    auto bytes = read_file(row.image);
    const std::string where = row.image + " (line " + std::to_string(row.line) + ")";
    if (!bytes.is_ok()) report.add(where, row.subject_ref, bytes.status());
    else report.add(where, row.subject_ref,
                    svc.enroll(actor, service::manifest_request(row, a.keep, a.method.empty() ? "manifest" : a.method),
                               std::move(*bytes)));
    if (bar) progress_bar(i + 1, rows.size());
  }
}

int run_enroll(const EnrollArgs& a, service::Api& api, const service::Actor& actor) {
  EnrollReport report(a.c.json);
  auto* one = dynamic_cast<service::Service*>(&api);
  if (!a.manifest.empty()) {
    auto rows = service::read_manifest(a.manifest);
    if (!rows.is_ok()) return fail(rows.status(), kExitUsage);
    if (a.threads > 1) nn::set_inner_threads(1);
    const bool bar = !a.no_progress && (a.progress || isatty(STDERR_FILENO));
    if (one) {
      auto st = one->enroll_batch(
          actor, *rows, a.threads, a.keep, a.method.empty() ? "manifest" : a.method,
          [&](const service::BatchRow& row, const Result<service::EnrollResult>& r) {
            report.add(row.image + " (line " + std::to_string(row.line) + ")", row.subject_ref, r);
          },
          [&](size_t done, size_t total) {
            if (bar) progress_bar(done, total);
          });
      if (!st.is_ok()) return fail(st);
    } else {
      enroll_rows(a, api, actor, *rows, report, bar);
    }
  }
  for (const auto& file : a.images) {
    if (a.subject.empty() || a.basis == 0)
      return fail(invalid_argument("images on the command line need --subject and --basis"), kExitUsage);
    service::EnrollRequest req;
    req.subject_ref = a.subject;
    req.basis_id = a.basis;
    if (!a.purpose.empty()) req.purpose = a.purpose;
    req.face_index = a.face;
    req.keep_image = a.keep;
    if (a.keep_reference) req.keep_reference = true;
    if (a.no_keep_reference) req.keep_reference = false;
    req.provenance.supplied_by = a.supplied_by;
    req.provenance.method = a.method.empty() ? "file" : a.method;
    req.provenance.source = a.source.empty() ? fs::path(file).filename().string() : a.source;
    auto bytes = read_file(file);
    if (!bytes.is_ok()) { report.add(file, a.subject, bytes.status()); continue; }
    report.add(file, a.subject, api.enroll(actor, req, std::move(*bytes)));
  }
  return report.exit_code();
}

}  // namespace

void add_enroll_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<EnrollArgs>();
  auto* cmd = app.add_subcommand("enroll", "enroll photos of a subject under a lawful basis (or a CSV manifest: image,subject,basis[,provenance])");
  cmd->add_option("images", a->images, "photos, each with exactly one acceptable face (or --face)");
  cmd->add_option("--subject", a->subject, "the subject's external reference");
  cmd->add_option("--basis", a->basis, "lawful basis id (from `facevault basis add`)");
  cmd->add_option("--purpose", a->purpose, "refuse unless the basis covers this purpose");
  cmd->add_option("--face", a->face, "which face (0-based, best detection first) when a photo has several");
  cmd->add_flag("--keep-image", a->keep, "also keep the photo, encrypted with the subject's key (off: templates only)");
  auto* keep_ref = cmd->add_flag("--keep-reference", a->keep_reference,
                                 "keep an encrypted aligned crop of the face for reviewers to compare with "
                                 "(default: the vault's oversight.keep_reference_crops)");
  cmd->add_flag("--no-keep-reference", a->no_keep_reference, "keep no reference crop, whatever the vault's default")
      ->excludes(keep_ref);
  cmd->add_option("--source", a->source, "provenance: where the photo comes from (default: its file name)");
  cmd->add_option("--supplied-by", a->supplied_by, "provenance: who supplied it (default: the actor)");
  cmd->add_option("--method", a->method, "provenance: how it was received (default: file, or manifest)");
  cmd->add_option("--manifest", a->manifest, "CSV: image,subject,basis[,provenance]; one report line per row");
  cmd->add_option("--threads", a->threads, "pipeline workers for --manifest")->check(CLI::Range(1, 64));
  cmd->add_flag("--progress", a->progress, "progress bar on stderr even when it is not a terminal");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  add_vault_options(cmd, a->c);
  set_examples(cmd, {"facevault enroll --subject S-1 --basis 1 --purpose access-control photo1.jpg photo2.jpg",
                     "facevault enroll --subject S-2 --basis 2 --keep-reference photo.jpg",
                     "facevault enroll --manifest staff.csv --threads 2 --json"});
  cmd->callback([a, &exit_code] {
    if (a->manifest.empty() && (a->subject.empty() || a->basis == 0 || a->images.empty())) {
      exit_code = fail(invalid_argument("enroll needs --subject REF --basis ID IMG… (or --manifest CSV)"), kExitUsage);
      return;
    }
    if (!a->manifest.empty() && (a->keep_reference || a->no_keep_reference)) {
      // A manifest's rows follow the vault's setting (the batch use case takes no per-row choice).
      exit_code = fail(invalid_argument("--keep-reference and --no-keep-reference apply to photos on the command line; a "
                                        "manifest follows the vault's oversight.keep_reference_crops"),
                       kExitUsage);
      return;
    }
    // The skeleton's Status cannot carry "some photos failed" (exit 3): the code travels beside it.
    int code = kExitOk;
    a->c.pipelines = a->threads;  // a pipeline per manifest worker
    vault_command(a->c, exit_code, [a, &code](service::Api& svc, const service::Actor& actor) {
      code = run_enroll(*a, svc, actor);
      return Status::ok();
    })();
    if (exit_code == kExitOk) exit_code = code;
  });
}

}  // namespace fv::cli
