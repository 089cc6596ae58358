// The facade's construction and accessors, and what every use case shares: the audit
// helpers, the role check, the gallery's loading from the vault and the input checks.
#include <sodium.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "face/registry.h"
#include "service/service_impl.h"
#include "vault/timeutil.h"

namespace fv::service {

using vault::AuditEntry;

// ---------------------------------------------------------------- input checks

bool valid_token(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("._:/-", c)) return false;
  return true;
}

namespace {

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

}  // namespace

bool valid_text(const std::string& s, size_t max) {
  if (s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return valid_utf8(s);
}

bool valid_ref(const std::string& s) { return !s.empty() && valid_text(s, 200); }

std::string optout_ad(const std::string& uid, const std::string& model_id, int version) {
  return "facevault/optout/" + uid + "/" + model_id + "/" + std::to_string(version);
}

Result<face::FaceTemplate> open_template(const vault::SecretKey& key, const vault::Bytes& sealed, const std::string& ad,
                                         const std::string& model_id, int version) {
  auto plain = vault::open_sealed(key, sealed, ad);
  if (!plain.is_ok()) return corrupt_data("a stored template does not decrypt: " + plain.status().message());
  face::FaceTemplate t{model_id, version, std::vector<float>(plain->size() / sizeof(float))};
  std::memcpy(t.values.data(), plain->data(), t.values.size() * sizeof(float));
  vault::wipe(*plain);
  return t;
}

// ---------------------------------------------------------------- the facade

Result<std::unique_ptr<Service>> Service::open(const std::filesystem::path& dir, ServiceOptions options) {
  std::unique_ptr<Service> s(new Service());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  FV_ASSIGN_OR_RETURN(m.vault, vault::Vault::open(dir));
  m.options = std::move(options);
  // Before any other connection is opened: those inherit it.
  if (m.options.commit_interceptor) m.vault->set_commit_interceptor(m.options.commit_interceptor);
  const auto& cfg = m.vault->config();
  if (auto c = face::Calibration::builtin(face::builtin_embedder_model_id(cfg.embedder)); c.is_ok())
    m.calibration_table = std::move(*c);
  if (m.options.shared_pool) {
    m.pool = m.options.shared_pool;
  } else if (m.options.shared_pipeline) {
    m.pool = std::make_unique<PipelinePool>(m.options.shared_pipeline);
  } else {
    PipelinePool::Factory factory = m.options.pipeline_factory;
    if (!factory) {
      face::PipelineOptions po;
      po.detector = cfg.detector;
      po.landmarker = cfg.landmarker;
      po.embedder = cfg.embedder;
      factory = [po] { return face::FacePipeline::create(nn::ModelStore(), po); };
    }
    m.pool = std::make_unique<PipelinePool>(static_cast<size_t>(std::max(1, m.options.pipelines)), std::move(factory));
  }
  GalleryOptions go;
  go.index_kind = cfg.index_kind;
  go.ann_min_size = static_cast<size_t>(cfg.index_ann_min_size);
  go.threads = cfg.search_threads;
  go.store_dir = m.vault->paths().dir;
  m.gallery = std::make_unique<Gallery>(go);
  return s;
}

Service::~Service() = default;

const vault::VaultConfig& Service::config() const { return impl_->config(); }
const vault::VaultPaths& Service::paths() const { return impl_->vault->paths(); }
std::string Service::now() const { return impl_->now(); }
double Service::optout_threshold() { return impl_->optout_threshold(); }
double Service::search_threshold(double max_fmr) { return impl_->search_threshold(max_fmr); }
const face::Calibration* Service::calibration() { return impl_->calibration(); }
vault::Vault& Service::vault_for_testing() { return *impl_->vault; }

size_t Service::gallery_size() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->gallery->size();
}

const index::VectorIndex* Service::search_index(const std::string& model_id, int model_version) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->gallery->index_for(model_id, model_version);
}

// ---------------------------------------------------------------- Impl: clock, thresholds

std::string Service::Impl::now() const { return options.clock ? options.clock() : vault::utc_now(); }

double Service::Impl::optout_threshold() const {
  const auto* c = calibration();
  return c ? c->threshold_at(config().optout_fmr) : config().optout_fallback_threshold;
}

double Service::Impl::search_threshold(double max_fmr) const {
  const auto* c = calibration();
  if (!c) return config().search_fallback_threshold;
  return max_fmr >= 1.0 ? -1.0 : c->threshold_at(max_fmr);
}

// ---------------------------------------------------------------- Impl: audit, authorization

AuditEntry Service::Impl::entry(const Actor& actor, const std::string& action) const {
  AuditEntry e;
  e.ts = now();
  e.actor = actor.name;
  e.role = role_name(actor.role);
  e.action = action;
  return e;
}

namespace {

// An audit entry in a transaction of its own, written again after a catch-up when another
// node's write got to the stream first (cluster mode): appending to the chain is all it does.
Result<std::string> record_with_catch_up(vault::Catalog& cat, AuditEntry& e, const std::function<Status()>& catch_up) {
  for (int attempt = 1;; ++attempt) {
    auto h = cat.record_audit(e);
    if (h.is_ok() || h.status().code() != StatusCode::kAborted || !catch_up || attempt >= 12) return h;
    FV_RETURN_IF_ERROR(catch_up());
    // Writers that lost together would retry together: spread them out (0-10 ms per attempt).
    std::this_thread::sleep_for(std::chrono::microseconds(randombytes_uniform(10000u * static_cast<uint32_t>(attempt))));
  }
}

}  // namespace

Result<std::string> Service::Impl::audit_now(AuditEntry& e) {
  auto h = record_with_catch_up(catalog(), e, options.catch_up);
  if (!h.is_ok()) ++audit_write_failures;
  return h;
}

Result<std::string> Service::Impl::audit_in_txn(AuditEntry& e) {
  auto h = catalog().append_audit(e);
  if (!h.is_ok()) ++audit_write_failures;
  return h;
}

Result<vault::Catalog*> Service::Impl::aux_catalog() {
  if (!aux) {
    FV_ASSIGN_OR_RETURN(aux, vault->open_second_connection());
  }
  return aux.get();
}

Result<std::string> Service::Impl::audit_aux(AuditEntry& e) {
  std::lock_guard<std::mutex> l(aux_mu);
  auto c = aux_catalog();
  Result<std::string> h = c.is_ok() ? record_with_catch_up(**c, e, options.catch_up) : Result<std::string>(c.status());
  if (!h.is_ok()) ++audit_write_failures;
  return h;
}

Status Service::Impl::refuse(AuditEntry e, const std::string& outcome, const nlohmann::json& details, Status refusal,
                             AuditVia via) {
  e.outcome = outcome;
  for (auto& [k, v] : details.items()) e.details[k] = v;
  auto h = via == AuditVia::kAux ? audit_aux(e) : audit_now(e);
  return h.is_ok() ? refusal : h.status();
}

Status Service::Impl::authorize(const Actor& actor, Action action, const std::string& purpose, const std::string& case_ref,
                                AuditVia via) {
  if (actor.name.empty()) return invalid_argument("an actor name is required");
  if (!valid_ref(actor.name)) return invalid_argument("the actor name must be 1-200 printable UTF-8 characters");
  if (role_may(actor.role, action)) return Status::ok();
  AuditEntry e = entry(actor, action);
  e.purpose = purpose;
  e.case_ref = case_ref;
  const std::string role = role_name(actor.role), what = action_name(action);
  return refuse(std::move(e), "denied", {{"reason", "role " + role + " may not " + what}},
                permission_denied("role '" + role + "' may not " + what), via);
}

// ---------------------------------------------------------------- Impl: the gallery from the vault

Status Service::Impl::load_gallery() {
  // Another process may have enrolled or erased since the index was built: then rebuild.
  FV_ASSIGN_OR_RETURN(const int64_t generation, catalog().generation(vault::Generation::kGallery));
  if (gallery->loaded() && generation == gallery->generation()) return Status::ok();
  // How many templates each model has decides its index kind before the first one is read.
  Gallery::ModelTotals totals;
  FV_ASSIGN_OR_RETURN(auto counts, catalog().faces_by_model());
  for (auto& c : counts) totals[Gallery::model_key(c.model_id, c.model_version)] = static_cast<size_t>(c.faces);
  // The vault is decrypted once per process (no second copy of the templates on disk): one
  // subject key per subject, each template opened, handed over and wiped by the gallery.
  auto rows = [this](const std::function<Status(GalleryRow&)>& sink) -> Status {
    int64_t key_owner = -1;
    vault::SecretKey key;
    return catalog().faces_for_gallery([&](const vault::GalleryFaceRow& r) -> Status {
      if (r.subject_id != key_owner) {
        FV_ASSIGN_OR_RETURN(key, vault->subject_key_from_wrapped(r.subject_id, r.wrapped_key));
        key_owner = r.subject_id;
      }
      GalleryRow row{{r.face_id, r.subject_id, r.basis_id, r.subject_uid, r.subject_ref}, {}};
      FV_ASSIGN_OR_RETURN(row.tmpl, open_template(key, r.sealed_template,
                                                  vault::face_ad(r.subject_id, r.face_id, r.model_id, r.model_version),
                                                  r.model_id, r.model_version));
      Status st = sink(row);
      vault::wipe(row.tmpl.values);
      return st;
    });
  };
  return gallery->load(generation, totals, rows);
}

Status Service::Impl::rebuild_gallery() {
  gallery->drop();
  return load_gallery();
}

}  // namespace fv::service
