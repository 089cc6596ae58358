// Subjects and what is held about them: lawful bases (and their withdrawal), enrollment of a
// photo, erasure and the access export.
#include <algorithm>
#include <cctype>

#include "server/server_impl.h"
#include "service/render.h"

using nlohmann::json;
using fv::service::Action;

namespace fv::server {
namespace {

service::BasisRequest basis_request(const json& j, const std::string& ref) {
  service::BasisRequest r;
  r.subject_ref = ref;
  const std::string kind = json_string(j, "kind", true);
  auto k = service::parse_basis_kind(kind);
  if (!k) throw http_error(400, "unknown basis kind '" + kind + "' (consent, legal-obligation, public-task, law-enforcement)");
  r.kind = *k;
  r.reference = json_string(j, "reference", true);
  r.purposes = json_strings(j, "purposes");
  if (auto exp = json_string(j, "expires", false); !exp.empty()) r.expires = exp;
  return r;
}

// The enrollment fields come as form fields, or as one JSON part "metadata" (form fields win).
service::EnrollRequest enroll_request(const httplib::Request& req, const std::string& ref, size_t max_json_bytes) {
  json meta = json::object();
  if (req.has_file("metadata")) {
    // The same bound as a JSON body: parsing costs many times the text's size in memory.
    if (const auto part = req.files.find("metadata"); part->second.content.size() > max_json_bytes)
      throw http_error(413, "the 'metadata' part is larger than " + std::to_string(max_json_bytes >> 10) + " KiB");
    meta = json::parse(form_field(req, "metadata"), nullptr, false);
    if (meta.is_discarded() || !meta.is_object()) throw http_error(400, "malformed JSON in the 'metadata' part");
  }
  auto get = [&](const std::string& k) -> std::string {
    if (req.has_file(k)) return form_field(req, k);
    if (!meta.contains(k) || meta[k].is_null()) return "";
    if (meta[k].is_string()) return meta[k].get<std::string>();
    if (meta[k].is_number_integer() || meta[k].is_boolean()) return meta[k].dump();
    throw http_error(400, "metadata field '" + k + "' has the wrong type");
  };
  service::EnrollRequest r;
  r.subject_ref = ref;
  const std::string basis = get("basis");
  if (basis.empty()) throw http_error(400, "missing field 'basis' (the lawful basis id)");
  r.basis_id = id_field(basis, "basis");
  r.face_index = int_field(get("face"), "face", 0, 199, -1);
  if (auto p = get("purpose"); !p.empty()) r.purpose = p;
  r.keep_image = flag_field(get("keep_image"), "keep_image");  // "yes" is refused, not read as false
  // A sealed reference crop for reviewers (review cases); absent: the vault's setting.
  if (const std::string keep = get("keep_reference"); keep == "true") r.keep_reference = true;
  else if (keep == "false") r.keep_reference = false;
  else if (!keep.empty()) throw http_error(400, "'keep_reference' must be true or false");
  r.provenance.method = "http";
  r.provenance.supplied_by = get("supplied_by");
  r.provenance.source = get("source");
  if (r.provenance.source.empty())
    if (auto part = req.files.find("image"); part != req.files.end()) r.provenance.source = part->second.filename;
  return r;
}

}  // namespace

void add_subject_routes(Server::Impl& s) {
  s.add("POST", "/v1/subjects", Action::kBasisAdd, [&s](Call& c) {
    json j = s.json_body(c.req);
    const std::string ref = json_string(j, "ref", true);
    if (!j.contains("kind") && !j.contains("reference") && !j.contains("purposes"))
      throw http_error(400, "a subject is created with its first lawful basis: send {ref, kind, reference, purposes[, expires]}");
    auto r = value_or_throw(s.svc->add_basis(c.caller.who(), basis_request(j, ref)));
    reply(c.res, 201, service::render::basis(r));
  });

  s.add("POST", "/v1/subjects/{ref}/bases", Action::kBasisAdd, [&s](Call& c) {
    const std::string ref = c.req.matches[1];
    json j = s.json_body(c.req);
    auto r = value_or_throw(s.svc->add_basis(c.caller.who(), basis_request(j, ref)));
    reply(c.res, 201, service::render::basis(r));
  });

  // Withdrawal erases: the policy table admits the roles that may erase (docs/privacy.md).
  s.add("POST", "/v1/bases/{id}/withdraw", Action::kBasisWithdraw, [&s](Call& c) {
    const int64_t id = id_field(c.req.matches[1], "id");
    auto r = value_or_throw(s.svc->withdraw_basis(c.caller.who(), id));
    reply(c.res, 200, service::render::erase_receipt(r));
  });

  s.add("POST", "/v1/subjects/{ref}/faces", Action::kEnroll, [&s](Call& c) {
    require_multipart(c.req);
    service::EnrollRequest req = enroll_request(c.req, c.req.matches[1], s.opt.max_json_bytes);
    std::vector<uint8_t> bytes = s.image_part(c.req, "image");
    // The service analyzes the photo outside its lock, then commits; it wipes bytes, pixels and
    // templates on every path, and audits a refusal.
    auto e = value_or_throw(s.photo_use_case("enroll", [&](service::Api& svc) {
      return svc.enroll(c.caller.who(), req, std::move(bytes));
    }));
    reply(c.res, 201, service::render::enrollment(e));
  });

  s.add("DELETE", "/v1/subjects/{ref}", Action::kErase, [&s](Call& c) {
    const std::string ref = c.req.matches[1];
    std::string reason = c.req.has_param("reason") ? c.req.get_param_value("reason") : "erasure request (HTTP API)";
    if (reason.empty() || reason.size() > 500) throw http_error(400, "'reason' must be 1 to 500 characters");
    auto r = value_or_throw(s.svc->erase(c.caller.who(), ref, reason));
    reply(c.res, 200, service::render::erase_receipt(r));
  });

  s.add("GET", "/v1/subjects/{ref}/export", Action::kExport, [&s](Call& c) {
    const std::string ref = c.req.matches[1];
    // Template metadata only: values are for the CLI's --with-templates (docs/privacy.md).
    auto j = value_or_throw(s.svc->export_subject(c.caller.who(), ref, false, std::nullopt));
    if (c.req.get_param_value("download") == "1") {
      std::string uid = j["subject"].value("id", "subject");
      // The vault's id, never the caller's reference, and only filename-safe characters: no
      // quote, CR or LF can reach the header (security_test ExportFilename).
      std::erase_if(uid, [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_'; });
      c.res.set_header("Content-Disposition", "attachment; filename=\"facevault-export-" + uid + ".json\"");
    }
    reply(c.res, 200, j);
  });
}

}  // namespace fv::server
