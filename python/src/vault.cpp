// facevault.Vault: the vault's use cases through service::Service, as the CLI and the HTTP
// server reach them. Every call passes the handle's Actor (name and role); the service checks
// the role against the policy table, applies purpose limitation and writes the audit entry.
// Nothing here touches the vault's storage except `init`, which, like `facevault init`, creates
// the vault and records its first audit entry before a service can be opened on it.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "convert.h"
#include "service/policy.h"
#include "service/render.h"
#include "service/service.h"
#include "status_error.h"
#include "vault/audit.h"
#include "vault/timeutil.h"
#include "vault/vault.h"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace fv::python {
namespace {

using service::Actor;
using service::Service;

// Runs a use case with the GIL released (photo analysis and the vault's I/O take long), then
// raises its Status or returns its value with the GIL held again.
template <class F>
auto without_gil(F&& f) {
  auto r = [&] {
    py::gil_scoped_release nogil;
    return f();
  }();
  return value_or_throw(std::move(r));
}

std::string os_user() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid-" + std::to_string(getuid());
}

service::Role role_of(const std::string& name) {
  const auto role = service::parse_role(name);
  if (!role)
    throw StatusError(
        invalid_argument("unknown role '" + name + "' (" + service::role_names(service::all_roles()) + ")"));
  return *role;
}

std::vector<std::string> purposes_of(const py::handle& purposes) {
  if (py::isinstance<py::str>(purposes)) return {purposes.cast<std::string>()};
  return purposes.cast<std::vector<std::string>>();
}

class Vault {
 public:
  Vault(const fs::path& path, std::optional<std::string> actor, const std::string& role, int threads)
      : path_(path), actor_{actor ? *actor : os_user(), role_of(role)} {
    if (threads < 1 || threads > 256) throw StatusError(invalid_argument("threads must be 1 to 256"));
    service::ServiceOptions options;
    options.pipelines = threads;
    svc_ = std::shared_ptr<Service>(without_gil([&] { return Service::open(path, options); }));
  }
  Vault(std::shared_ptr<Service> svc, fs::path path, Actor actor)
      : svc_(std::move(svc)), path_(std::move(path)), actor_(std::move(actor)) {}

  static Vault init(const fs::path& path, double retention_days, std::optional<std::string> actor, int threads) {
    const std::string name = actor ? *actor : os_user();
    vault::VaultConfig cfg;
    cfg.default_retention_days = retention_days;
    const Status st = [&] {
      py::gil_scoped_release nogil;
      return service::init_vault(path, cfg, Actor{name, service::Role::kAdmin});
    }();
    throw_if_error(st);
    return Vault(path, name, "admin", threads);
  }

  Vault with_actor(const std::string& name, const std::string& role) const {
    return Vault(service(), path_, Actor{name, role_of(role)});
  }

  service::BasisResult add_basis(const std::string& subject, const std::string& kind, const std::string& reference,
                                 const py::handle& purposes, std::optional<std::string> expires) {
    service::BasisRequest req;
    req.subject_ref = subject;
    const auto k = service::parse_basis_kind(kind);
    if (!k) {
      std::string known;
      for (auto b : service::all_basis_kinds()) known += (known.empty() ? "" : ", ") + std::string(service::basis_kind_name(b));
      throw StatusError(invalid_argument("unknown basis kind '" + kind + "' (" + known + ")"));
    }
    req.kind = *k;
    req.reference = reference;
    req.purposes = purposes_of(purposes);
    req.expires = std::move(expires);
    auto svc = service();
    return without_gil([&] { return svc->add_basis(actor_, req); });
  }

  service::EraseReceipt withdraw_basis(int64_t basis_id) {
    auto svc = service();
    return without_gil([&] { return svc->withdraw_basis(actor_, basis_id); });
  }

  service::EnrollResult enroll(const std::string& subject, int64_t basis_id, const py::handle& image,
                               std::optional<int> face, bool keep_image, std::optional<std::string> purpose,
                               std::optional<std::string> source, std::optional<std::string> supplied_by,
                               const std::string& method, std::optional<bool> keep_reference) {
    EncodedPhoto photo = encoded_photo(image);
    service::EnrollRequest req(subject, basis_id, std::move(purpose));
    req.face_index = face.value_or(-1);
    req.keep_image = keep_image;
    req.keep_reference = keep_reference;
    req.provenance.method = method;
    req.provenance.source = source ? *source : photo.name;
    if (supplied_by) req.provenance.supplied_by = *supplied_by;
    auto svc = service();
    return without_gil([&] { return svc->enroll(actor_, req, std::move(photo.bytes)); });
  }

  service::SearchResult search(const py::handle& image, const std::string& purpose, const std::string& case_ref,
                               std::optional<int> top, const std::string& mode, std::optional<double> max_fmr,
                               std::optional<double> max_fpir, std::optional<std::string> authorisation) {
    EncodedPhoto photo = encoded_photo(image);
    service::SearchRequest req(purpose, case_ref, top.value_or(0));
    req.mode = mode;
    req.max_fmr = max_fmr;
    req.max_fpir = max_fpir;
    req.authorisation = std::move(authorisation);
    auto svc = service();
    return without_gil([&] { return svc->search(actor_, req, std::move(photo.bytes)); });
  }

  service::VerifyResult verify(const py::handle& image, const std::string& subject, const std::string& purpose,
                               const std::string& case_ref, std::optional<double> max_fmr,
                               std::optional<std::string> authorisation) {
    EncodedPhoto photo = encoded_photo(image);
    service::SearchRequest req(purpose, case_ref);
    req.max_fmr = max_fmr;
    req.authorisation = std::move(authorisation);
    auto svc = service();
    return without_gil([&] { return svc->verify_subject(actor_, req, subject, std::move(photo.bytes)); });
  }

  service::EraseReceipt erase(const std::string& subject, const std::string& reason) {
    auto svc = service();
    return without_gil([&] { return svc->erase(actor_, subject, reason); });
  }

  service::ExpireReport expire(std::optional<std::string> as_of, bool dry_run) {
    auto svc = service();
    return without_gil([&] { return svc->expire(actor_, as_of, dry_run); });
  }

  // Review cases (two-person review of search candidates): dicts in the shape of the HTTP API.
  py::object review_list(std::optional<std::string> status, bool awaiting) {
    service::ReviewListFilter f;
    f.status = std::move(status);
    f.awaiting_caller = awaiting;
    auto svc = service();
    auto cases = without_gil([&] { return svc->review_list(actor_, f); });
    nlohmann::json out = nlohmann::json::array();
    for (auto& c : cases) out.push_back(service::render::review_case(c, svc->config().reviewers_required));
    return to_python(out);
  }

  py::object review_show(const std::string& case_id) {
    auto svc = service();
    auto c = without_gil([&] { return svc->review_show(actor_, case_id); });
    return to_python(service::render::review_case(c, svc->config().reviewers_required));
  }

  py::object review_decide(const std::string& case_id, int64_t candidate, const std::string& decision,
                           const std::string& reason) {
    const auto verdict = service::parse_review_verdict(decision);
    if (!verdict) throw StatusError(invalid_argument("decision must be confirm, reject or inconclusive"));
    service::ReviewDecisionRequest req{candidate, *verdict, reason, {}};
    auto svc = service();
    auto d = without_gil([&] { return svc->review_decide(actor_, case_id, req); });
    return to_python(service::render::review_decision(d));
  }

  py::object export_subject(const std::string& subject, bool include_templates, std::optional<fs::path> images_dir) {
    auto svc = service();
    return to_python(without_gil([&] { return svc->export_subject(actor_, subject, include_templates, images_dir); }));
  }

  service::OptoutResult optout_add(const py::handle& image, std::optional<int> face) {
    EncodedPhoto photo = encoded_photo(image);
    auto svc = service();
    return without_gil([&] { return svc->optout_add(actor_, std::move(photo.bytes), face.value_or(-1)); });
  }

  vault::AuditVerifyReport audit_verify() {
    auto svc = service();
    return without_gil([&] { return svc->audit_verify(actor_); });
  }

  void close() { svc_.reset(); }
  const fs::path& path() const { return path_; }
  const std::string& actor() const { return actor_.name; }
  std::string role() const { return service::role_name(actor_.role); }

 private:
  // A local reference for the length of a call: another thread's close() cannot pull the
  // service from under it.
  std::shared_ptr<Service> service() const {
    auto s = svc_;
    if (!s) throw StatusError(failed_precondition("this vault handle is closed"));
    return s;
  }

  std::shared_ptr<Service> svc_;
  fs::path path_;
  Actor actor_;
};

template <class T, class Render>
void def_to_dict(py::class_<T>& c, Render render, const char* doc) {
  c.def("to_dict", [render](const T& r) { return to_python(render(r)); }, doc);
}

void bind_results(py::module_& m) {
  using namespace service;
  const char* kAsJson = "The result as `--json` and the HTTP API render it (service::render): plain dicts and lists.";

  py::class_<BasisResult> basis(m, "Basis", "A lawful-basis record just added.");
  basis.def_readonly("id", &BasisResult::basis_id, "The basis id (enroll() takes it).")
      .def_readonly("subject", &BasisResult::subject_ref, "The subject's external reference.")
      .def_readonly("subject_id", &BasisResult::subject_uid, "The subject's vault id.")
      .def_readonly("subject_created", &BasisResult::subject_created, "Whether the subject was new.")
      .def_readonly("retention_until", &BasisResult::retention_until, "When the subject's data is due for erasure.")
      .def_readonly("audit_hash", &BasisResult::audit_hash, "Hash of the audit entry that records it.");
  def_to_dict(basis, render::basis, kAsJson);

  py::class_<EnrollResult> enrollment(m, "Enrollment", "A face enrolled: its template is sealed in the vault.");
  enrollment.def_readonly("subject", &EnrollResult::subject_ref, "The subject's external reference.")
      .def_readonly("subject_id", &EnrollResult::subject_uid, "The subject's vault id.")
      .def_readonly("face_id", &EnrollResult::face_id, "The enrolled template's id.")
      .def_readonly("image_id", &EnrollResult::image_id, "The source image record's id.")
      .def_readonly("face", &EnrollResult::face_index, "Which face of the photo was enrolled.")
      .def_property_readonly("box", [](const EnrollResult& r) { return box_tuple(r.box); }, "(x, y, width, height) of that face.")
      .def_readonly("sha256", &EnrollResult::sha256, "SHA-256 of the photo as received.")
      .def_readonly("retention_until", &EnrollResult::retention_until, "When the subject's data is due for erasure.")
      .def_readonly("audit_hash", &EnrollResult::audit_hash, "Hash of the audit entry that records it.");
  def_to_dict(enrollment, render::enrollment, kAsJson);

  py::class_<Candidate>(m, "Candidate", "An enrolled subject similar to a probe face: a lead for human review, not an identification.")
      .def_readonly("subject", &Candidate::subject_ref, "The subject's external reference.")
      .def_readonly("subject_id", &Candidate::subject_uid, "The subject's vault id.")
      .def_readonly("similarity", &Candidate::similarity, "Cosine similarity, unrounded.")
      .def_readonly("fmr", &Candidate::fmr, "Calibrated false-match rate of the similarity (None without a table).")
      .def_readonly("fpir", &Candidate::fpir, "False-positive identification rate for the gallery searched (identification mode).")
      .def("__repr__", [](const Candidate& c) {
        return "Candidate(subject=" + py::repr(py::str(c.subject_ref)).cast<std::string>() +
               ", similarity=" + std::to_string(c.similarity) + ")";
      });

  py::class_<SearchFace>(m, "SearchFace", "A face of the probe photo and its candidates, best first.")
      .def_property_readonly("box", [](const SearchFace& f) { return box_tuple(f.box); }, "(x, y, width, height) of the probe face.")
      .def_readonly("quality_ok", &SearchFace::quality_ok, "Whether the probe face passes the quality thresholds.")
      .def_readonly("candidates", &SearchFace::candidates, "The Candidates, best first.");

  py::class_<SearchResult> search(m, "SearchResult", "A purpose-bound 1:N search of a photo: candidates for human review.");
  search.def_readonly("faces", &SearchResult::faces, "One SearchFace per face of the probe photo.")
      .def_readonly("purpose", &SearchResult::purpose, "The purpose searched under.")
      .def_readonly("case", &SearchResult::case_ref, "The case reference.")
      .def_readonly("mode", &SearchResult::mode, "threshold, identification or investigation.")
      .def_readonly("eligible_subjects", &SearchResult::eligible_subjects, "Subjects whose basis covers the purpose.")
      .def_readonly("eligible_templates", &SearchResult::eligible_templates, "Their templates: the gallery searched.")
      .def_readonly("threshold", &SearchResult::threshold, "The similarity threshold applied.")
      .def_readonly("max_fmr", &SearchResult::max_fmr, "The false-match rate the threshold is set to.")
      .def_readonly("calibration", &SearchResult::calibration, "Where the calibration table comes from.")
      .def_readonly("audit_hash", &SearchResult::audit_hash, "Hash of the audit entry that records the search.")
      .def_readonly("review_case", &SearchResult::review_case,
                    "The review case the search opened: its candidates await two-person review.")
      .def_readonly("authorisation", &SearchResult::authorisation, "The authorisation cited, if any.")
      .def_readonly("authorisation_pending", &SearchResult::authorisation_pending,
                    "Cited while pending: the results become unusable if it lapses without a grant.")
      .def_property_readonly("notice", [](const SearchResult& r) { return render::search(r)["notice"].get<std::string>(); },
                             "What the candidates are (and are not), as every adapter states it.");
  def_to_dict(search, render::search, kAsJson);

  py::class_<VerifyResult> verification(m, "SubjectVerification", "A photo compared with one enrolled subject under a purpose.");
  verification.def_readonly("subject", &VerifyResult::subject_ref, "The subject's external reference.")
      .def_readonly("similarity", &VerifyResult::similarity, "Best similarity over the subject's eligible templates.")
      .def_readonly("same", &VerifyResult::same, "similarity >= threshold.")
      .def_readonly("threshold", &VerifyResult::threshold, "The decision threshold at threshold_fmr.")
      .def_readonly("threshold_fmr", &VerifyResult::max_fmr, "The false-match rate the decision is made at.")
      .def_readonly("score_fmr", &VerifyResult::fmr, "Calibrated false-match rate of the similarity (None without a table).")
      .def_property_readonly("box", [](const VerifyResult& r) { return box_tuple(r.box); }, "The probe face compared.")
      .def_readonly("audit_hash", &VerifyResult::audit_hash, "Hash of the audit entry that records it.");
  def_to_dict(verification, render::verify_subject, kAsJson);

  py::class_<EraseReceipt> receipt(m, "ErasureReceipt", "What an erasure (or a withdrawal) removed: the receipt to hand over.");
  receipt.def_readonly("subject", &EraseReceipt::subject_ref, "The subject's external reference.")
      .def_readonly("subject_id", &EraseReceipt::subject_uid, "The subject's vault id.")
      .def_readonly("reason", &EraseReceipt::reason, "Why it was erased.")
      .def_readonly("erased_at", &EraseReceipt::erased_at, "When (UTC).")
      .def_readonly("basis_id", &EraseReceipt::basis_id,
                    "The basis whose rows went while the subject stays (a withdrawal or an expired basis), else None.")
      .def_readonly("templates", &EraseReceipt::faces, "Templates erased.")
      .def_readonly("source_images", &EraseReceipt::images, "Source image records erased.")
      .def_readonly("kept_images", &EraseReceipt::kept_images, "Kept photos erased.")
      .def_readonly("lawful_bases", &EraseReceipt::bases, "Lawful-basis records erased.")
      .def_readonly("subject_key_destroyed", &EraseReceipt::key_destroyed, "Whether the subject's data key was destroyed.")
      .def_readonly("free_pages_wiped", &EraseReceipt::wiped, "WAL checkpointed and freed pages overwritten.")
      .def_readonly("wipe_error", &EraseReceipt::wipe_error, "Why not (the next open of the vault finishes it).")
      .def_readonly("search_index_removed", &EraseReceipt::index_removed, "Templates removed from the in-memory index.")
      .def_readonly("audit_seq", &EraseReceipt::audit_seq, "Sequence number of the audit entry.")
      .def_readonly("audit_hash", &EraseReceipt::audit_hash, "Hash of the audit entry.");
  def_to_dict(receipt, render::erase_receipt, kAsJson);

  py::class_<ExpireReport> expiry(m, "ExpiryReport", "The subjects a retention run erased (or would erase, dry_run).");
  expiry.def_readonly("as_of", &ExpireReport::as_of, "The date the run was made for.")
      .def_readonly("dry_run", &ExpireReport::dry_run, "Whether nothing was erased.")
      .def_readonly("erased", &ExpireReport::erased, "One ErasureReceipt per subject.")
      .def_readonly("bases_lapsed", &ExpireReport::bases_lapsed,
                    "One ErasureReceipt per expired basis whose rows went while its subject stays under another.")
      .def_readonly("audit_hash", &ExpireReport::audit_hash, "Hash of the audit entry.");
  def_to_dict(expiry, render::expire_report, kAsJson);

  py::class_<OptoutResult> optout(m, "Optout", "An entry added to the opt-out registry.");
  optout.def_readonly("optout", &OptoutResult::optout_uid, "The opt-out entry's id.")
      .def_readonly("enrolled_match_count", &OptoutResult::enrolled_match_count, "How many enrolled subjects it matches.")
      .def_readonly("audit_hash", &OptoutResult::audit_hash, "Hash of the audit entry.");
  def_to_dict(optout, render::optout, kAsJson);

  py::class_<vault::AuditVerifyReport> audit(m, "AuditReport", "The check of the audit chain's hashes and links.");
  audit.def_readonly("ok", &vault::AuditVerifyReport::ok, "Whether every entry and link checks out.")
      .def_readonly("entries", &vault::AuditVerifyReport::entries, "Entries checked.")
      .def_readonly("head", &vault::AuditVerifyReport::head, "Hash of the last entry.")
      .def_readonly("first_bad_seq", &vault::AuditVerifyReport::first_bad_seq, "The first bad entry (0 when ok).")
      .def_readonly("problem", &vault::AuditVerifyReport::problem, "altered, removed, inserted, reordered or truncated.")
      .def_readonly("message", &vault::AuditVerifyReport::message, "One line naming the entry.");
  def_to_dict(audit, [](const vault::AuditVerifyReport& r) { return r.to_json(); }, kAsJson);
}

}  // namespace

void bind_vault(py::module_& m) {
  bind_results(m);

  py::class_<Vault>(m, "Vault",
                    "A handle on a vault: its use cases under the vault's policy, acting as one caller (actor, role).\n\n"
                    "Every call is checked against the role, purpose-limited and audited by the library, exactly as\n"
                    "from the CLI or the HTTP API. Photos are bytes or a local file path. Handles from with_role() and\n"
                    "as_actor() share one open vault; it closes when the last handle is closed or collected.")
      .def(py::init<const fs::path&, std::optional<std::string>, const std::string&, int>(), py::arg("path"),
           py::arg("actor") = py::none(), py::arg("role") = "admin", py::arg("threads") = 1,
           "Opens the vault at path (master key from $FACEVAULT_MASTER_KEY or the vault's key file).\n"
           "actor: who is acting, recorded in the audit log (default: the OS user); role: admin, enroller,\n"
           "investigator, auditor or reviewer; threads: photos analyzed at once. Models from $FACEVAULT_MODEL_DIR or the cache.")
      .def_static("init", &Vault::init, py::arg("path"), py::arg("retention_days") = 365.0, py::arg("actor") = py::none(),
                  py::arg("threads") = 1,
                  "Creates a vault at path (database, master key, config), records who created it, and returns an\n"
                  "admin handle on it. Raises AlreadyExists when a vault is there.")
      .def("with_role", [](const Vault& v, const std::string& role) { return v.with_actor(v.actor(), role); },
           py::arg("role"), "Another handle on the same vault: the same actor in another role.")
      .def("as_actor",
           [](const Vault& v, const std::string& name, std::optional<std::string> role) {
             return v.with_actor(name, role ? *role : v.role());
           },
           py::arg("name"), py::arg("role") = py::none(), "Another handle on the same vault acting as name (role: this one's by default).")
      .def("add_basis", &Vault::add_basis, py::arg("subject"), py::arg("kind"), py::arg("reference"), py::arg("purposes"),
           py::arg("expires") = py::none(),
           "Records a lawful basis for a subject (creating the subject when new). kind: consent, legal-obligation,\n"
           "public-task or law-enforcement; reference: consent form id, warrant number, statute; purposes: the\n"
           "purposes it covers; expires: a date (YYYY-MM-DD, UTC end of day) or timestamp.")
      .def("withdraw_basis", &Vault::withdraw_basis, py::arg("basis_id"),
           "Withdraws a basis (e.g. consent): erases what it covered and returns the ErasureReceipt.")
      .def("enroll", &Vault::enroll, py::arg("subject"), py::arg("basis_id"), py::arg("image"), py::arg("face") = py::none(),
           py::arg("keep_image") = false, py::arg("purpose") = py::none(), py::arg("source") = py::none(),
           py::arg("supplied_by") = py::none(), py::arg("method") = "python", py::arg("keep_reference") = py::none(),
           "Enrolls the one acceptable face of a photo (or face=index) under a basis: quality gate, opt-out\n"
           "check, sealed template, provenance (source: default the file name; supplied_by: default the actor;\n"
           "method: how the photo reached you) and audit entry, all or nothing. purpose: a purpose the basis must\n"
           "cover. keep_image: also keep the photo, sealed. keep_reference: keep a sealed aligned crop of the face\n"
           "for reviewers to compare (default: the vault's oversight.keep_reference_crops).")
      .def("search", &Vault::search, py::arg("image"), py::arg("purpose"), py::arg("case"), py::arg("top") = py::none(),
           py::arg("mode") = "threshold", py::arg("max_fmr") = py::none(), py::arg("max_fpir") = py::none(),
           py::arg("authorisation") = py::none(),
           "Searches the faces of a photo among the subjects enrolled under a basis that covers purpose, for case\n"
           "(both required). mode: threshold (candidates above max_fmr), identification (max_fpir) or investigation\n"
           "(the top best). authorisation: the authorisation cited (required for purposes the vault lists in\n"
           "oversight.authorisation_required). Opens a review case: the candidates are for two-person review,\n"
           "none is an identification until reviewers confirm it.")
      .def("verify", &Vault::verify, py::arg("image"), py::arg("subject"), py::arg("purpose"), py::arg("case"),
           py::arg("max_fmr") = py::none(), py::arg("authorisation") = py::none(),
           "Compares a photo's largest face with one enrolled subject, under search policy (purpose and case).")
      .def("erase", &Vault::erase, py::arg("subject"), py::arg("reason") = "erasure request",
           "Erases everything held about a subject (reference or vault id) and returns the ErasureReceipt.")
      .def("expire", &Vault::expire, py::arg("as_of") = py::none(), py::arg("dry_run") = false,
           "Erases the subjects whose retention ended by as_of (default now; a future date needs dry_run).")
      .def("export", &Vault::export_subject, py::arg("subject"), py::arg("include_templates") = false,
           py::arg("images_dir") = py::none(),
           "Everything held about a subject (the access export) as a dict; kept photos are written to images_dir.")
      .def("optout_add", &Vault::optout_add, py::arg("image"), py::arg("face") = py::none(),
           "Adds a face to the opt-out registry: enrollment of a matching face is refused from then on.")
      .def("review_list", &Vault::review_list, py::arg("status") = py::none(), py::arg("awaiting") = false,
           "The review cases this caller may see (status: open or closed; awaiting: those with a candidate\n"
           "the caller may still decide), as dicts.")
      .def("review_show", &Vault::review_show, py::arg("case"),
           "One review case as a dict: candidates, their status, and the decisions the caller may see (a\n"
           "reviewer sees the others' decisions on a candidate only after recording their own).")
      .def("review_decide", &Vault::review_decide, py::arg("case"), py::arg("candidate"), py::arg("decision"),
           py::arg("reason"),
           "Records this caller's decision (confirm, reject or inconclusive, with a reason) on a candidate of a\n"
           "review case; audited naming the caller. Returns the decision as a dict.")
      .def("audit_verify", &Vault::audit_verify, "Checks the audit chain's hashes and links.")
      .def("close", &Vault::close, "Releases this handle (the vault closes with its last handle).")
      .def("__enter__", [](Vault& v) -> Vault& { return v; }, py::return_value_policy::reference)
      .def("__exit__", [](Vault& v, const py::args&) { v.close(); })
      .def("__repr__",
           [](const Vault& v) {
             return "Vault(" + py::repr(py::str(v.path().string())).cast<std::string>() +
                    ", actor=" + py::repr(py::str(v.actor())).cast<std::string>() + ", role='" + v.role() + "')";
           })
      .def_property_readonly("path", [](const Vault& v) { return v.path().string(); }, "The vault's folder.")
      .def_property_readonly("actor", &Vault::actor, "Who this handle acts as.")
      .def_property_readonly("role", &Vault::role, "The role this handle acts in.");
}

}  // namespace fv::python
