// Vault commands (init, basis, enroll, search, erase, export, expire, optout, audit, key).
// Every command takes --vault DIR (default $FACEVAULT_VAULT, then ./var/vault), --json,
// --actor NAME (default the OS user) and --role ROLE (default admin); it exits 0 on success
// and otherwise prints one line "facevault: <reason>" on stderr and exits non-zero.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "image/decode.h"
#include "nn/model.h"
#include "service/service.h"
#include "vault/timeutil.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::cli {
namespace {

// JSON output never throws on invalid UTF-8 in user-supplied text (it prints U+FFFD).
constexpr auto kReplace = json::error_handler_t::replace;

std::string os_user() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid-" + std::to_string(getuid());
}

struct Common {
  std::string vault;
  bool json = false;
  std::string actor;
  std::string role = "admin";
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("--vault", c.vault, "vault directory (default $FACEVAULT_VAULT, then ./var/vault)");
  cmd->add_flag("--json", c.json, "machine-readable JSON output");
  cmd->add_option("--actor", c.actor, "who is acting, recorded in the audit log (default: the OS user)");
  cmd->add_option("--role", c.role, "admin, enroller, investigator or auditor (default admin)");
}

fs::path vault_dir(const Common& c) { return c.vault.empty() ? vault::default_vault_dir() : fs::path(c.vault); }

int fail(const Status& st, int code = kExitFailure) {
  std::string m = st.message();
  for (auto& ch : m)
    if (ch == '\n') ch = ' ';
  std::cerr << "facevault: " << m << "\n";
  return code;
}

Result<std::unique_ptr<service::Service>> open_service(const Common& c) {
  service::Actor a{c.actor.empty() ? os_user() : c.actor, c.role};
  return service::Service::open(vault_dir(c), a);
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

json box_json(const face::Box& b) {
  auto r = [](double v) { return std::round(v * 10) / 10; };
  return json::array({r(b.x1), r(b.y1), r(b.width()), r(b.height())});
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
    std::cout << r.to_json().dump(-1, ' ', false, kReplace) << "\n";
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

// ------------------------------------------------------------------ init

void add_init(CLI::App& app, int& exit_code) {
  struct A { std::string dir; Common c; double retention = 365; } ;
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("init", "create a vault: database, master key (mode 0600, or $FACEVAULT_MASTER_KEY), config");
  cmd->add_option("dir", a->dir, "vault directory (default: --vault, $FACEVAULT_VAULT, ./var/vault)");
  cmd->add_option("--retention-days", a->retention, "default retention of a subject's data (renewed by enrolment)")
      ->check(CLI::Range(1.0, 36500.0));
  add_common(cmd, a->c);
  cmd->callback([a, &exit_code] {
    const fs::path dir = a->dir.empty() ? vault_dir(a->c) : fs::path(a->dir);
    vault::VaultConfig cfg;
    cfg.default_retention_days = a->retention;
    Status st = vault::Vault::init(dir, cfg);
    if (!st.is_ok()) { exit_code = fail(st); return; }
    // The first audit entry records who created the vault.
    auto svc = service::Service::open(dir, {a->c.actor.empty() ? os_user() : a->c.actor, "admin"});
    if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
    auto ok = [&]() -> Result<std::string> {
      auto& db = (*svc)->vault().db();
      FV_ASSIGN_OR_RETURN(vault::Txn txn, vault::Txn::begin(db));
      vault::AuditEntry e;
      e.ts = vault::utc_now();
      e.actor = (*svc)->actor().name;
      e.role = "admin";
      e.action = "init";
      e.details = {{"schema_version", vault::kSchemaVersion}, {"master_key", (*svc)->vault().config().master_key},
                   {"master_key_id", (*svc)->vault().master_key_id()}};
      FV_ASSIGN_OR_RETURN(std::string h, vault::append_audit(db, e));
      FV_RETURN_IF_ERROR(txn.commit());
      return h;
    }();
    if (!ok.is_ok()) { exit_code = fail(ok.status()); return; }
    const auto& v = (*svc)->vault();
    if (a->c.json) {
      std::cout << json{{"vault", dir.string()}, {"master_key", v.config().master_key}, {"master_key_id", v.master_key_id()},
                        {"schema_version", vault::kSchemaVersion}}.dump(-1, ' ', false, kReplace) << "\n";
    } else {
      std::printf("vault created at %s\n", dir.c_str());
      if (v.config().master_key == "file")
        std::printf("master key: %s (mode 0600, id %s): back it up apart from the vault; without it nothing can be read\n",
                    v.paths().key().c_str(), v.master_key_id().c_str());
      else
        std::printf("master key: from $%s (id %s); no key file written\n", vault::kMasterKeyEnv, v.master_key_id().c_str());
    }
    exit_code = kExitOk;
  });
}

// ------------------------------------------------------------------ basis

void add_basis(CLI::App& app, int& exit_code) {
  auto* basis = app.add_subcommand("basis", "lawful-basis records: consent, legal obligation, public task, law-enforcement authorisation");
  basis->require_subcommand(1);
  {
    struct A { service::BasisRequest r; std::string expires; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = basis->add_subcommand("add", "record a lawful basis for a subject (creating the subject if new); prints the basis id");
    cmd->add_option("--subject", a->r.subject_ref, "the subject's external reference")->required();
    cmd->add_option("--kind", a->r.kind, "consent | legal-obligation | public-task | law-enforcement")->required();
    cmd->add_option("--reference", a->r.reference, "consent form id, warrant number, statute")->required();
    cmd->add_option("--purpose", a->r.purposes, "a purpose it covers (repeat for several)")->required();
    cmd->add_option("--expires", a->expires, "expiry date (YYYY-MM-DD, UTC end of day) or timestamp");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      if (!a->expires.empty()) a->r.expires = a->expires;
      auto r = (*svc)->add_basis(a->r);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      if (a->c.json)
        std::cout << json{{"basis", r->basis_id}, {"subject", a->r.subject_ref}, {"subject_id", r->subject_uid},
                          {"subject_created", r->subject_created}, {"retention_until", r->retention_until},
                          {"audit_hash", r->audit_hash}}.dump(-1, ' ', false, kReplace) << "\n";
      else
        std::printf("%lld\n", static_cast<long long>(r->basis_id));
      exit_code = kExitOk;
    });
  }
  {
    struct A { int64_t id = 0; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = basis->add_subcommand("withdraw", "withdraw a basis (e.g. consent): erases what it covered; prints a receipt");
    cmd->add_option("id", a->id, "basis id")->required();
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto r = (*svc)->withdraw_basis(a->id);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      print_receipt(*r, a->c.json);
      exit_code = kExitOk;
    });
  }
}

// ------------------------------------------------------------------ enroll

void add_enroll(CLI::App& app, int& exit_code) {
  struct A {
    std::string subject, purpose, manifest, source, supplied_by, method;
    int64_t basis = 0;
    int face = -1, threads = 1;
    bool keep = false, progress = false, no_progress = false;
    std::vector<std::string> images;
    Common c;
  };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("enroll", "enrol photos of a subject under a lawful basis (or a CSV manifest: image,subject,basis[,provenance])");
  cmd->add_option("images", a->images, "photos, each with exactly one acceptable face (or --face)");
  cmd->add_option("--subject", a->subject, "the subject's external reference");
  cmd->add_option("--basis", a->basis, "lawful basis id (from `facevault basis add`)");
  cmd->add_option("--purpose", a->purpose, "refuse unless the basis covers this purpose");
  cmd->add_option("--face", a->face, "which face (0-based, best detection first) when a photo has several");
  cmd->add_flag("--keep-image", a->keep, "also keep the photo, encrypted with the subject's key (off: templates only)");
  cmd->add_option("--source", a->source, "provenance: where the photo comes from (default: its file name)");
  cmd->add_option("--supplied-by", a->supplied_by, "provenance: who supplied it (default: the actor)");
  cmd->add_option("--method", a->method, "provenance: how it was received (default: file, or manifest)");
  cmd->add_option("--manifest", a->manifest, "CSV: image,subject,basis[,provenance]; one report line per row");
  cmd->add_option("--threads", a->threads, "pipeline workers for --manifest")->check(CLI::Range(1, 64));
  cmd->add_flag("--progress", a->progress, "progress bar on stderr even when it is not a terminal");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  add_common(cmd, a->c);
  cmd->callback([a, &exit_code] {
    if (a->manifest.empty() && (a->subject.empty() || a->basis == 0 || a->images.empty())) {
      exit_code = fail(invalid_argument("enroll needs --subject REF --basis ID IMG… (or --manifest CSV)"), kExitUsage);
      return;
    }
    auto svc = open_service(a->c);
    if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
    size_t ok = 0, bad = 0;
    auto report = [&](const std::string& file, const std::string& subject, const Result<service::EnrollResult>& r) {
      if (r.is_ok()) {
        ++ok;
        if (a->c.json)
          std::cout << json{{"file", file}, {"subject", subject}, {"subject_id", r->subject_uid}, {"face_id", r->face_id},
                            {"image_id", r->image_id}, {"face", r->face_index}, {"box", box_json(r->box)},
                            {"sha256", r->sha256}, {"retention_until", r->retention_until}, {"audit_hash", r->audit_hash}}
                           .dump(-1, ' ', false, kReplace) << "\n";
        else
          std::printf("enrolled %s → %s (template %lld, retention until %s)\n", file.c_str(), subject.c_str(),
                      static_cast<long long>(r->face_id), r->retention_until.c_str());
      } else {
        ++bad;
        if (a->c.json) std::cout << json{{"file", file}, {"subject", subject}, {"error", r.status().message()}}.dump(-1, ' ', false, kReplace) << "\n";
        std::cerr << "facevault: " << file << ": " << r.status().message() << "\n";
      }
      std::cout.flush();
    };
    if (!a->manifest.empty()) {
      auto rows = service::Service::read_manifest(a->manifest);
      if (!rows.is_ok()) { exit_code = fail(rows.status(), kExitUsage); return; }
      if (a->threads > 1) nn::set_inner_threads(1);
      const bool bar = !a->no_progress && (a->progress || isatty(STDERR_FILENO));
      auto st = (*svc)->enroll_batch(
          *rows, a->threads, a->keep, a->method.empty() ? "manifest" : a->method,
          [&](const service::Service::BatchRow& row, const Result<service::EnrollResult>& r) {
            report(row.image + " (line " + std::to_string(row.line) + ")", row.subject_ref, r);
          },
          [&](size_t done, size_t total) {
            if (!bar) return;
            const int w = 30, filled = static_cast<int>(w * done / std::max<size_t>(1, total));
            std::fprintf(stderr, "\r[%s%s] %zu/%zu", std::string(filled, '#').c_str(), std::string(w - filled, ' ').c_str(),
                         done, total);
            if (done == total) std::fprintf(stderr, "\n");
          });
      if (!st.is_ok()) { exit_code = fail(st); return; }
    }
    for (const auto& file : a->images) {
      if (a->subject.empty() || a->basis == 0) {
        exit_code = fail(invalid_argument("images on the command line need --subject and --basis"), kExitUsage);
        return;
      }
      service::EnrollRequest req;
      req.subject_ref = a->subject;
      req.basis_id = a->basis;
      if (!a->purpose.empty()) req.purpose = a->purpose;
      req.face_index = a->face;
      req.keep_image = a->keep;
      req.provenance.supplied_by = a->supplied_by;
      req.provenance.method = a->method.empty() ? "file" : a->method;
      req.provenance.source = a->source.empty() ? fs::path(file).filename().string() : a->source;
      auto bytes = read_file(file);
      if (!bytes.is_ok()) { report(file, a->subject, bytes.status()); continue; }
      report(file, a->subject, (*svc)->enroll(req, std::move(*bytes)));
    }
    if (bad == 0) exit_code = kExitOk;
    else if (ok > 0) exit_code = kExitPartial;
    else exit_code = kExitFailure;
  });
}

// ------------------------------------------------------------------ search

void add_search(CLI::App& app, int& exit_code) {
  struct A { std::string image; service::SearchRequest r; double max_fmr = 0, max_fpir = 0; Common c; };
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
  cmd->add_option("--max-fpir", a->max_fpir, "identification mode: false-positive identification rate (default 0.01)")
      ->check(CLI::Range(1e-9, 0.5));
  add_common(cmd, a->c);
  cmd->callback([a, &exit_code] {
    auto svc = open_service(a->c);
    if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
    if (a->max_fmr > 0) a->r.max_fmr = a->max_fmr;
    if (a->max_fpir > 0) a->r.max_fpir = a->max_fpir;
    auto bytes = read_file(a->image);
    if (!bytes.is_ok()) { exit_code = fail(bytes.status()); return; }
    auto r = (*svc)->search(a->r, std::move(*bytes));
    if (!r.is_ok()) { exit_code = fail(r.status()); return; }
    if (a->c.json) {
      json faces = json::array();
      for (auto& f : r->faces) {
        json cands = json::array();
        for (auto& c : f.candidates)
          cands.push_back({{"subject", c.subject_ref}, {"similarity", std::round(c.similarity * 1e4) / 1e4},
                           {"fmr", c.fmr ? json(*c.fmr) : json(nullptr)}});
        faces.push_back({{"box", box_json(f.box)}, {"quality_ok", f.quality_ok}, {"candidates", cands}});
      }
      std::cout << json{{"faces", faces}, {"purpose", a->r.purpose}, {"case", a->r.case_ref},
                        {"eligible_subjects", r->eligible_subjects}, {"max_fmr", r->max_fmr},
                        {"threshold", r->threshold}, {"calibration", r->calibration}, {"audit_hash", r->audit_hash}}
                       .dump(-1, ' ', false, kReplace) << "\n";
    } else {
      std::printf("%zu face(s); searched %lld subject(s) whose basis covers '%s' (case %s)\n", r->faces.size(),
                  static_cast<long long>(r->eligible_subjects), a->r.purpose.c_str(), a->r.case_ref.c_str());
      for (size_t i = 0; i < r->faces.size(); ++i) {
        const auto& f = r->faces[i];
        std::printf("face %zu at [%.0f, %.0f, %.0f, %.0f]%s\n", i, f.box.x1, f.box.y1, f.box.width(), f.box.height(),
                    f.quality_ok ? "" : " (low quality: treat candidates with extra care)");
        if (f.candidates.empty()) std::printf("  no candidate above the threshold (false-match rate ≤ %g)\n", r->max_fmr);
        for (auto& c : f.candidates)
          std::printf("  %-20s similarity %.4f  false-match rate %s\n", c.subject_ref.c_str(), c.similarity,
                      c.fmr ? one_in(*c.fmr).c_str() : "unknown");
      }
      std::printf("candidates are for human review, not identifications; this search is in the audit log (%s)\n",
                  r->audit_hash.substr(0, 16).c_str());
    }
    exit_code = kExitOk;
  });
}

// ------------------------------------------------------------------ erase, export, expire

void add_erase_export_expire(CLI::App& app, int& exit_code) {
  {
    struct A { std::string subject, reason = "erasure request"; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("erase", "erase a subject: templates, images, bases, subject key; wipes freed pages; prints a receipt");
    cmd->add_option("subject", a->subject, "external reference (or vault id)")->required();
    cmd->add_option("--reason", a->reason, "recorded in the receipt and the audit log");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto r = (*svc)->erase(a->subject, a->reason);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      print_receipt(*r, a->c.json);
      exit_code = kExitOk;
    });
  }
  {
    struct A { std::string subject, images_dir; bool templates = false; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("export", "access export: everything held about a subject as JSON, with the audit entries naming them");
    cmd->add_option("subject", a->subject, "external reference (or vault id)")->required();
    cmd->add_option("--images-dir", a->images_dir, "also write the kept images (decrypted) into this folder");
    cmd->add_flag("--with-templates", a->templates, "include the template values");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      std::optional<fs::path> dir;
      if (!a->images_dir.empty()) dir = a->images_dir;
      auto r = (*svc)->export_subject(a->subject, a->templates, dir);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      std::cout << (a->c.json ? r->dump() : r->dump(2, ' ', false, kReplace)) << "\n";
      exit_code = kExitOk;
    });
  }
  {
    struct A { std::string as_of; bool dry_run = false; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = app.add_subcommand("expire", "erase every subject whose retention has ended or whose lawful bases have all lapsed");
    cmd->add_option("--as-of", a->as_of, "evaluate at this date instead of now (YYYY-MM-DD or timestamp, UTC; a future date only with --dry-run)");
    cmd->add_flag("--dry-run", a->dry_run, "list what is due without erasing");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      std::optional<std::string> as_of;
      if (!a->as_of.empty()) as_of = a->as_of;
      auto r = (*svc)->expire(as_of, a->dry_run);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      if (a->c.json) {
        json er = json::array();
        for (auto& e : r->erased) er.push_back(e.to_json());
        std::cout << json{{"as_of", r->as_of}, {"dry_run", a->dry_run}, {"erased", er}, {"audit_hash", r->audit_hash}}.dump(-1, ' ', false, kReplace) << "\n";
      } else {
        std::printf("%s %zu subject(s) as of %s\n", a->dry_run ? "due:" : "erased", r->erased.size(), r->as_of.c_str());
        for (auto& e : r->erased) std::printf("  %s (vault id %s): %s\n", e.subject_ref.c_str(), e.subject_uid.c_str(), e.reason.c_str());
      }
      exit_code = kExitOk;
    });
  }
}

// ------------------------------------------------------------------ optout

void add_optout(CLI::App& app, int& exit_code) {
  auto* opt = app.add_subcommand("optout", "the do-not-enrol registry (encrypted templates only)");
  opt->require_subcommand(1);
  {
    struct A { std::string image; int face = -1; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = opt->add_subcommand("add", "add the face in a photo to the do-not-enrol list");
    cmd->add_option("image", a->image, "photo of the person opting out")->required();
    cmd->add_option("--face", a->face, "which face when the photo has several");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto bytes = read_file(a->image);
      if (!bytes.is_ok()) { exit_code = fail(bytes.status()); return; }
      auto r = (*svc)->optout_add(std::move(*bytes), a->face);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      if (a->c.json) {
        std::cout << json{{"optout", r->optout_uid}, {"enrolled_matches", r->enrolled_match_count},
                          {"audit_hash", r->audit_hash}}.dump(-1, ' ', false, kReplace) << "\n";
      } else {
        std::printf("opt-out %s recorded (only an encrypted template is kept)\n", r->optout_uid.c_str());
        if (r->enrolled_match_count > 0)
          std::printf("  %lld enrolled subject(s) match it: an auditor lists them with `facevault optout check --role auditor`\n",
                      static_cast<long long>(r->enrolled_match_count));
      }
      exit_code = kExitOk;
    });
  }
  {
    auto c = std::make_shared<Common>();
    auto* cmd = opt->add_subcommand("check", "list enrolled subjects that match an opt-out");
    add_common(cmd, *c);
    cmd->callback([c, &exit_code] {
      auto svc = open_service(*c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto r = (*svc)->optout_check();
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      auto incomparable = (*svc)->incomparable_optouts();
      if (!incomparable.is_ok()) { exit_code = fail(incomparable.status()); return; }
      if (*incomparable > 0)
        std::cerr << "facevault: WARNING: " << *incomparable
                  << " opt-out(s) were made with another face model and are compared with nothing: they do NOT block "
                     "enrolment. Take them again from new photos with the current model.\n";
      if (c->json) {
        json m = json::array();
        for (auto& x : *r) m.push_back({{"subject", x.subject_ref}, {"subject_id", x.subject_uid}, {"optout", x.optout_uid}, {"similarity", x.similarity}});
        std::cout << json{{"matches", m}, {"threshold", (*svc)->optout_threshold()}, {"incomparable_optouts", *incomparable}}
                         .dump(-1, ' ', false, kReplace) << "\n";
      } else {
        if (r->empty()) std::printf("no enrolled subject matches an opt-out\n");
        for (auto& x : *r)
          std::printf("%s (vault id %s) matches opt-out %s (similarity %.4f)\n", x.subject_ref.c_str(), x.subject_uid.c_str(),
                      x.optout_uid.c_str(), x.similarity);
      }
      exit_code = kExitOk;
    });
  }
}

// ------------------------------------------------------------------ audit, key

void add_audit_key(CLI::App& app, int& exit_code) {
  auto* audit = app.add_subcommand("audit", "the tamper-evident audit log");
  audit->require_subcommand(1);
  {
    auto c = std::make_shared<Common>();
    auto* cmd = audit->add_subcommand("verify", "recompute the hash chain; name the first altered, removed, inserted or reordered entry");
    add_common(cmd, *c);
    cmd->callback([c, &exit_code] {
      auto svc = open_service(*c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto r = (*svc)->audit_verify();
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      if (c->json) std::cout << r->to_json().dump(-1, ' ', false, kReplace) << "\n";
      if (!r->ok) { exit_code = fail(failed_precondition("audit chain broken: " + r->message)); return; }
      if (!c->json) std::printf("audit chain intact: %lld entries, head %s\n", static_cast<long long>(r->entries), r->head.c_str());
      exit_code = kExitOk;
    });
  }
  {
    struct A { std::string since, subject; size_t limit = 0; Common c; };
    auto a = std::make_shared<A>();
    auto* cmd = audit->add_subcommand("show", "print audit entries");
    cmd->add_option("--since", a->since, "entries at or after this date/time (UTC)");
    cmd->add_option("--subject", a->subject, "entries naming this subject (reference, or vault id after erasure)");
    cmd->add_option("--limit", a->limit, "at most N entries");
    add_common(cmd, a->c);
    cmd->callback([a, &exit_code] {
      auto svc = open_service(a->c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      std::optional<std::string> since, subject;
      if (!a->since.empty()) since = a->since;
      if (!a->subject.empty()) subject = a->subject;
      auto r = (*svc)->audit_show(since, subject, a->limit);
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      for (auto& e : *r) {
        if (a->c.json) { std::cout << e.to_json().dump(-1, ' ', false, kReplace) << "\n"; continue; }
        std::printf("#%-5lld %s %-10s %-12s %-14s %-7s", static_cast<long long>(e.seq), e.ts.c_str(), e.actor.c_str(),
                    e.role.c_str(), e.action.c_str(), e.outcome.c_str());
        if (!e.purpose.empty()) std::printf(" purpose=%s", e.purpose.c_str());
        if (!e.case_ref.empty()) std::printf(" case=%s", e.case_ref.c_str());
        if (!e.subjects.empty()) std::printf(" subjects=%s", json(e.subjects).dump(-1, ' ', false, kReplace).c_str());
        std::printf(" %s\n", e.details.dump(-1, ' ', false, kReplace).c_str());
      }
      exit_code = kExitOk;
    });
  }
  auto* key = app.add_subcommand("key", "master key management");
  key->require_subcommand(1);
  {
    auto c = std::make_shared<Common>();
    auto* cmd = key->add_subcommand("rotate", "re-wrap every subject key under a new master key (templates untouched)");
    add_common(cmd, *c);
    cmd->callback([c, &exit_code] {
      auto svc = open_service(*c);
      if (!svc.is_ok()) { exit_code = fail(svc.status()); return; }
      auto r = (*svc)->rotate_key();
      if (!r.is_ok()) { exit_code = fail(r.status()); return; }
      if (c->json)
        std::cout << json{{"old_key_id", r->old_key_id}, {"new_key_id", r->new_key_id}, {"subject_keys", r->subject_keys},
                          {"optout_key", r->optout_key}}.dump(-1, ' ', false, kReplace) << "\n";
      else
        std::printf("master key rotated: %s → %s; %lld subject key(s) re-wrapped, templates untouched\n",
                    r->old_key_id.c_str(), r->new_key_id.c_str(), static_cast<long long>(r->subject_keys));
      exit_code = kExitOk;
    });
  }
  {
    auto* cmd = key->add_subcommand("generate", "print a new random master key (64 hex digits) for $FACEVAULT_MASTER_KEY");
    cmd->callback([&exit_code] {
      std::string hex = vault::SecretKey::random().to_hex();
      std::printf("%s\n", hex.c_str());
      vault::wipe(hex);
      exit_code = kExitOk;
    });
  }
}

}  // namespace

void add_vault_commands(CLI::App& app, int& exit_code) {
  add_init(app, exit_code);
  add_basis(app, exit_code);
  add_enroll(app, exit_code);
  add_search(app, exit_code);
  add_erase_export_expire(app, exit_code);
  add_optout(app, exit_code);
  add_audit_key(app, exit_code);
}

}  // namespace fv::cli
