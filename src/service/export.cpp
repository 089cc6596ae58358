// The access export (right of access): everything held about one subject — bases, source
// images (decrypted to a private folder when asked), templates, and the audit entries that
// name the subject, with other subjects' ids removed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "service/service_impl.h"

namespace fv::service {

namespace fs = std::filesystem;
using nlohmann::json;
using vault::AuditEntry;

namespace {

// Decrypted photos go into a private folder (0700) when we create it, as private files (0600).
Status make_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) return Status::ok();
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (ec || (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST))
    return os_error(ec ? ec.value() : errno, "cannot create " + dir.string() + ": " + (ec ? ec.message() : std::strerror(errno)));
  return Status::ok();
}

bool write_private_file(const fs::path& out, const vault::Bytes& plain) {
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  bool written = fd >= 0 && ::fchmod(fd, 0600) == 0;  // an existing file keeps its mode otherwise
  for (size_t off = 0; written && off < plain.size();) {
    const ssize_t n = ::write(fd, plain.data() + off, plain.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) written = false;
    else off += static_cast<size_t>(n);
  }
  if (fd >= 0 && ::close(fd) != 0) written = false;
  return written;
}

json opt_json(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

}  // namespace

Result<json> Service::export_subject(const Actor& actor, const std::string& subject, bool include_templates,
                                     const std::optional<fs::path>& images_dir) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  FV_RETURN_IF_ERROR(m.authorize(actor, Action::kExport));
  auto& cat = m.catalog();
  FV_ASSIGN_OR_RETURN(auto s, cat.find_subject(subject));
  if (!s) return not_found("no subject '" + subject + "' in the vault");
  json j;
  j["subject"] = {{"reference", s->ref}, {"id", s->uid}, {"created_at", s->created_at}, {"retention_until", s->retention_until}};
  json bases = json::array();
  FV_ASSIGN_OR_RETURN(auto basis_rows, cat.bases_of_subject(s->id));
  for (auto& b : basis_rows)
    bases.push_back({{"id", b.id}, {"kind", b.kind}, {"reference", b.reference}, {"granted_at", b.granted_at},
                     {"expires_at", opt_json(b.expires_at)}, {"withdrawn_at", opt_json(b.withdrawn_at)},
                     {"rows_erased_at", opt_json(b.withdrawn_at ? b.withdrawn_at : b.lapse_erased_at)},
                     {"recorded_by", b.recorded_by}, {"purposes", json::parse(b.purposes_json)}});
  j["lawful_bases"] = bases;
  FV_ASSIGN_OR_RETURN(vault::SecretKey key, m.vault->subject_key(s->id));
  json images = json::array();
  if (images_dir) FV_RETURN_IF_ERROR(make_private_dir(*images_dir));
  FV_RETURN_IF_ERROR(cat.for_each_source_image(s->id, [&](const vault::SourceImageRow& r) -> Status {
    json im = {{"id", r.id}, {"basis_id", r.basis_id}, {"sha256", r.sha256}, {"bytes", r.bytes},
               {"format", r.format}, {"provenance", {{"supplied_by", r.supplied_by}, {"method", r.method},
                                                      {"source", r.source}, {"received_at", r.received_at}}},
               {"kept", r.sealed_image.has_value()}};
    if (r.sealed_image && images_dir) {
      FV_ASSIGN_OR_RETURN(vault::Bytes plain, vault::open_sealed(key, *r.sealed_image, vault::image_ad(s->id, r.id)));
      const fs::path out = *images_dir / ("image-" + std::to_string(r.id) + "." + (r.format.empty() ? "bin" : r.format));
      const bool written = write_private_file(out, plain);
      vault::wipe(plain);
      if (!written) return io_error("cannot write " + out.string());
      im["file"] = out.string();
    }
    images.push_back(im);
    return Status::ok();
  }));
  j["source_images"] = images;
  json faces = json::array();
  FV_RETURN_IF_ERROR(cat.for_each_face(s->id, [&](const vault::FaceRow& r) -> Status {
    json f = {{"id", r.id}, {"image_id", r.image_id ? json(*r.image_id) : json(nullptr)}, {"basis_id", r.basis_id},
              {"model", r.model_id}, {"model_version", r.model_version}, {"dim", r.dim},
              {"box", json::parse(r.box_json, nullptr, false)}, {"quality", json::parse(r.quality_json, nullptr, false)},
              {"created_at", r.created_at}, {"template", "held encrypted (pass --with-templates for the values)"}};
    if (include_templates) {
      FV_ASSIGN_OR_RETURN(auto t, open_template(key, r.sealed_template, vault::face_ad(s->id, r.id, r.model_id, r.model_version),
                                                r.model_id, r.model_version));
      f["template"] = t.values;
      vault::wipe(t.values);
    }
    faces.push_back(f);
    return Status::ok();
  }));
  j["templates"] = faces;
  // Reviewers' reference crops of the subject's faces (aligned face JPEGs, sealed).
  json references = json::array();
  FV_ASSIGN_OR_RETURN(auto crops, cat.reference_crops(s->id));
  for (auto& [face_id, sealed] : crops) {
    json rc = {{"face_id", face_id}, {"format", "jpeg"}};
    if (images_dir) {
      FV_ASSIGN_OR_RETURN(vault::Bytes plain, vault::open_sealed(key, sealed, vault::reference_ad(s->id, face_id)));
      const fs::path out = *images_dir / ("reference-" + std::to_string(face_id) + ".jpg");
      const bool written = write_private_file(out, plain);
      vault::wipe(plain);
      if (!written) return io_error("cannot write " + out.string());
      rc["file"] = out.string();
    }
    references.push_back(rc);
  }
  j["reference_crops"] = {{"count", references.size()}, {"crops", references}};
  FV_ASSIGN_OR_RETURN(auto candidacies, cat.review_candidates_of_subject(s->id));
  FV_RETURN_IF_ERROR(m.export_reviews(actor, candidacies, j));
  vault::AuditQuery aq;
  aq.subject = s->uid;
  FV_ASSIGN_OR_RETURN(auto entries, cat.read_audit(aq));
  FV_RETURN_IF_ERROR(m.redact_hidden_decisions(actor, entries));
  j["audit"] = export_audit(entries, s->uid);
  j["exported_at"] = m.now();
  AuditEntry e = m.entry(actor, Action::kExport);
  e.subjects = {s->uid};
  e.details = {{"templates_included", include_templates}, {"images_written", images_dir.has_value()}};
  FV_ASSIGN_OR_RETURN(std::string h, m.audit_now(e));
  j["audit_hash"] = h;
  return j;
}

Status Service::Impl::export_reviews(const Actor& actor, const std::vector<vault::ReviewCandidateRow>& candidacies,
                                     json& j) {
  // Every review case the subject was a candidate in, with every decision about them. Only a
  // candidacy whose status is "confirmed" is a confirmed identification; all others are
  // search candidates only.
  const int required = config().reviewers_required;
  json reviews = j.contains("review_cases") && j["review_cases"].is_array() ? j["review_cases"] : json::array();
  for (const auto& k : candidacies) {
    const std::string status = review_candidate_status(k, required);
    json decisions = json::array();
    for (const auto& d : k.decisions)
      decisions.push_back({{"reviewer", d.reviewer}, {"reviewer_role", d.reviewer_role}, {"decision", d.decision},
                           {"reason", d.reason}, {"decided_at", d.decided_at}, {"reference_available", d.reference_available}});
    json row = {{"review_case", k.case_uid}, {"case_status", k.case_status}, {"candidate", k.id},
                {"face_index", k.face_index}, {"rank", k.rank}, {"status", status},
                {"confirmed", status == "confirmed"}, {"decisions_recorded", k.decisions.size()}};
    if (k.case_unusable) row["unusable"] = *k.case_unusable;
    // The authorisation the search cited: part of the legal basis of that processing (Art 15(1)).
    if (k.case_authorisation)
      row["authorisation"] = {{"id", k.case_authorisation->uid}, {"authority", k.case_authorisation->authority},
                              {"reference", k.case_authorisation->reference}};
    // An admin exporting may also review this candidate: its decisions stay hidden from them
    // until they decided it or the case closed (independent review).
    FV_ASSIGN_OR_RETURN(const bool hidden, decisions_hidden(actor, k.case_uid, k.id));
    if (hidden) row["decisions_hidden"] = "until you record your own decision on this candidate or its case closes";
    else row["decisions"] = decisions;
    reviews.push_back(row);
  }
  int64_t confirmed = 0;
  for (const auto& r : reviews) confirmed += r.value("confirmed", false) ? 1 : 0;
  j["review_cases"] = reviews;
  j["review_summary"] = {
      {"candidacies", reviews.size()},
      {"confirmed_identifications", confirmed},
      {"notice", "a candidacy is a confirmed identification only when its status is \"confirmed\" (" +
                     std::to_string(required) + " reviewers confirmed it and none disagreed); every other one is a "
                     "search candidate only, not an identification"}};
  return Status::ok();
}

json export_audit(const std::vector<AuditEntry>& entries, const std::string& uid) {
  json audit = json::array();
  for (auto& e : entries) {
    json a = e.to_json();
    // Another subject's ids are not this subject's data: keep only theirs.
    a["subjects"] = json::array({uid});
    if (e.action == "search" && a["details"].contains("candidates")) {
      json mine = json::array();
      for (size_t fi = 0; fi < a["details"]["candidates"].size(); ++fi) {
        const auto& ids = a["details"]["candidates"][fi];
        for (size_t rank = 0; rank < ids.size(); ++rank)
          if (ids[rank] == uid) mine.push_back({{"face", fi}, {"rank", rank + 1}});
      }
      a["details"]["candidates"] = mine;
      a["details"]["returned_as_candidate"] = !mine.empty();
    }
    audit.push_back(a);
  }
  return audit;
}

}  // namespace fv::service
