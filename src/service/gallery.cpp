#include "service/gallery.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "index/graph_index.h"
#include "index/index.h"
#include "index/ivf_index.h"
#include "vault/crypto.h"

namespace fv::service {
namespace {

// Zeroes floats that held templates (the index keeps its own compact copy).
void wipe_floats(std::vector<float>& v) { vault::wipe(v); }

// Templates decrypted before they go into the index together: the first chunk of a model is
// an IVF's training sample. 256 k rows is 16 per cell at 16 M templates, under the index's
// own default (IvfIndex::default_train_rows: 2^19 there); a larger chunk would hold 1 GiB of
// decrypted templates at once. Known limit, docs/index.md.
constexpr size_t kLoadFirstChunk = 262144, kLoadChunk = 65536;

}  // namespace

Gallery::Gallery(GalleryOptions options) : options_(std::move(options)) {}
Gallery::~Gallery() = default;

std::string Gallery::model_key(const std::string& model_id, int version) {
  return model_id + "/" + std::to_string(version);
}

void Gallery::drop() {
  indexes_.clear();
  face_owner_.clear();
  subjects_.clear();
  max_faces_per_subject_ = 1;
  loaded_ = false;
  held_ = 0;
  ++version_;
}

Status Gallery::load(int64_t generation, const ModelTotals& totals_in, const RowSource& rows) {
  drop();
  generation_ = generation;
  ModelTotals totals = totals_in;
  index::IndexOptions o;
  o.kind = options_.index_kind;
  o.ann_min_size = options_.ann_min_size;
  o.threads = options_.threads;
  struct Pending {
    size_t dim = 0;
    std::vector<index::Id> ids;
    std::vector<float> values;
  };
  std::map<std::string, Pending> pending;
  struct Wipe {
    std::map<std::string, Pending>& p;
    ~Wipe() {
      for (auto& [k, v] : p) wipe_floats(v.values);
    }
  } wipe_on_exit{pending};
  size_t nth = 0;
  auto kind_for = [&](const std::string& mk) {
    return o.kind != "auto" ? o.kind : totals[mk] >= o.ann_min_size ? "ivf" : "exact";
  };
  // Moves one model's pending chunk into its index (building it from the first chunk, which
  // is also an IVF's training sample) and wipes the floats.
  auto flush = [&](const std::string& mk, Pending& p) -> Status {
    if (p.ids.empty()) return Status::ok();
    auto ix = indexes_.find(mk);
    Status st = Status::ok();
    if (ix == indexes_.end()) {
      index::IndexOptions mo = o;
      mo.kind = kind_for(mk);
      mo.ivf.expected_size = std::max(totals[mk], p.ids.size());
      // An ANN index keeps its full-precision re-rank copy on disk, each record sealed under
      // a key that lives only in this process (unreadable once the process ends, removed with
      // the index); an exact index ignores it.
      mo.ivf.store_path = options_.store_dir / ("search-index-" + std::to_string(::getpid()) + "-" + std::to_string(nth++) + ".rerank");
      mo.graph.store_path = mo.ivf.store_path;
      auto built = index::build_index(mo, p.dim, p.ids, p.values);
      if (built.is_ok()) indexes_[mk] = std::move(built).value();
      else st = built.status();
    } else {
      st = ix->second->add(p.ids, p.values);
    }
    wipe_floats(p.values);
    p.ids.clear();
    return st;
  };
  auto sink = [&](GalleryRow& r) -> Status {
    const std::string mk = model_key(r.tmpl.model_id, r.tmpl.model_version);
    Pending& p = pending[mk];
    if (p.dim == 0) p.dim = r.tmpl.values.size();
    if (r.tmpl.values.size() != p.dim || p.dim == 0) {
      wipe_floats(r.tmpl.values);
      return corrupt_data("face " + std::to_string(r.who.face_id) + ": template dimension differs from the model's");
    }
    p.ids.push_back(r.who.face_id);
    p.values.insert(p.values.end(), r.tmpl.values.begin(), r.tmpl.values.end());
    wipe_floats(r.tmpl.values);
    face_owner_[r.who.face_id] = {r.who.subject_id, mk, r.who.basis_id};
    auto& info = subjects_[r.who.subject_id];
    if (info.uid.empty()) {
      info.uid = r.who.subject_uid;
      info.ref = r.who.subject_ref;
    }
    info.faces.push_back(r.who.face_id);
    max_faces_per_subject_ = std::max(max_faces_per_subject_, info.faces.size());
    // The first chunk of a model trains an IVF: as large as its training sample can be.
    const size_t chunk = !indexes_.count(mk) && kind_for(mk) == "ivf" ? kLoadFirstChunk : kLoadChunk;
    if (p.ids.size() >= chunk) return flush(mk, p);
    return Status::ok();
  };
  Status st = rows(sink);
  for (auto& [mk, p] : pending) {
    if (!st.is_ok()) break;
    st = flush(mk, p);
  }
  if (!st.is_ok()) {
    drop();
    return st;
  }
  for (auto& [mk, ix] : indexes_)
    if (auto* ivf = dynamic_cast<index::IvfIndex*>(ix.get())) ivf->shrink();
    else if (auto* graph = dynamic_cast<index::GraphIndex*>(ix.get())) graph->shrink();
  ++version_;
  loaded_ = true;
  held_ = face_owner_.size();
  return Status::ok();
}

void Gallery::add_enrolled(int64_t generation, const FaceIdentity& who, const face::FaceTemplate& tmpl) {
  if (!loaded_) return;
  if (generation != generation_ + 1) {  // someone else changed the templates meanwhile
    drop();
    return;
  }
  generation_ = generation;
  const std::string mk = model_key(tmpl.model_id, tmpl.model_version);
  auto ix = indexes_.find(mk);
  Status added = Status::ok();
  if (ix == indexes_.end()) {
    index::IndexOptions o;
    o.kind = options_.index_kind == "ivf" ? "exact" : options_.index_kind;  // an IVF needs a training set
    o.threads = options_.threads;
    // A graph keeps its re-rank copy on disk, sealed, as load()'s indexes do.
    o.graph.store_path = options_.store_dir / ("search-index-" + std::to_string(::getpid()) + "-new-" +
                                               std::to_string(indexes_.size()) + ".rerank");
    auto b = index::build_index(o, tmpl.values.size(), std::vector<index::Id>{who.face_id}, tmpl.values);
    if (b.is_ok()) indexes_[mk] = std::move(b).value();
    else added = b.status();
  } else {
    added = ix->second->add(std::vector<index::Id>{who.face_id}, tmpl.values);
  }
  if (!added.is_ok()) {
    drop();
    return;
  }
  face_owner_[who.face_id] = {who.subject_id, mk, who.basis_id};
  auto& info = subjects_[who.subject_id];
  info.uid = who.subject_uid;
  info.ref = who.subject_ref;
  info.faces.push_back(who.face_id);
  max_faces_per_subject_ = std::max(max_faces_per_subject_, info.faces.size());
  held_ = face_owner_.size();
  ++version_;
}

size_t Gallery::templates_of_basis(int64_t subject_id, int64_t basis_id) const {
  auto it = subjects_.find(subject_id);
  if (it == subjects_.end()) return 0;
  size_t n = 0;
  for (int64_t f : it->second.faces) {
    auto o = face_owner_.find(f);
    if (o != face_owner_.end() && o->second.basis_id == basis_id) ++n;
  }
  return n;
}

Result<size_t> Gallery::forget_subject(int64_t subject_id) {
  auto it = subjects_.find(subject_id);
  if (it == subjects_.end()) return size_t(0);
  std::map<std::string, std::vector<index::Id>> by_model;
  for (int64_t f : it->second.faces) {
    auto o = face_owner_.find(f);
    if (o == face_owner_.end()) continue;
    by_model[o->second.model_key].push_back(f);
    face_owner_.erase(o);
  }
  subjects_.erase(it);
  held_ = face_owner_.size();
  ++version_;
  size_t removed = 0;
  for (auto& [key, ids] : by_model) {
    auto ix = indexes_.find(key);
    if (ix == indexes_.end()) continue;
    auto r = ix->second->remove(ids);
    if (!r.is_ok()) {
      drop();  // never keep an index that may still hold the subject
      return r.status();
    }
    removed += *r;
  }
  return removed;
}

Result<std::map<int64_t, SubjectHit>> Gallery::search(const face::FaceTemplate& probe, size_t k_subjects, double threshold,
                                                      const index::IdFilter* filter, const std::function<Status()>& rebuild) {
  std::map<int64_t, SubjectHit> best;
  const std::string mk = model_key(probe.model_id, probe.model_version);
  auto ix = indexes_.find(mk);
  if (ix == indexes_.end() || ix->second->size() == 0 || probe.values.size() != ix->second->dim()) return best;
  size_t n = ix->second->size();
  const bool range = k_subjects == SIZE_MAX;
  size_t want = range ? 64 : std::min(n, k_subjects * max_faces_per_subject_);
  bool rebuilt = false;
  for (;;) {
    auto found = ix->second->search(probe.values, want, filter);
    if (!found.is_ok() && !rebuilt && rebuild &&
        (found.status().code() == StatusCode::kCorruptData || found.status().code() == StatusCode::kIoError)) {
      // An ANN index re-ranks from a scratch file in the vault directory; if that file was
      // damaged or cut (a disk error, a stray hand), every later search of this process would
      // fail. The index is a cache of the vault: rebuild it once and search again
      // (tests/fault/index_corruption_test.cpp).
      rebuilt = true;
      drop();
      FV_RETURN_IF_ERROR(rebuild());
      ix = indexes_.find(mk);
      if (ix == indexes_.end() || ix->second->size() == 0 || probe.values.size() != ix->second->dim()) return best;
      n = ix->second->size();
      want = range ? 64 : std::min(n, k_subjects * max_faces_per_subject_);
      continue;
    }
    if (!found.is_ok()) return found.status();
    auto& r = *found;
    best.clear();
    for (size_t i = 0; i < r.ids.size(); ++i) {
      if (r.scores[i] < threshold) break;
      auto o = face_owner_.find(r.ids[i]);
      if (o == face_owner_.end()) continue;
      auto& b = best[o->second.subject_id];
      if (b.face_id == 0 || r.scores[i] > b.similarity) b = {r.scores[i], r.ids[i]};
    }
    const bool exhausted = r.ids.size() < want || want >= n;
    if (!range || exhausted || r.scores.back() < threshold) break;
    want = std::min(n, want * 4);
  }
  return best;
}

const Gallery::FaceOwner* Gallery::owner(int64_t face_id) const {
  auto it = face_owner_.find(face_id);
  return it == face_owner_.end() ? nullptr : &it->second;
}

const Gallery::SubjectInfo* Gallery::subject(int64_t subject_id) const {
  auto it = subjects_.find(subject_id);
  return it == subjects_.end() ? nullptr : &it->second;
}

size_t Gallery::size() const {
  size_t n = 0;
  for (auto& [k, ix] : indexes_) n += ix->size();
  return n;
}

const index::VectorIndex* Gallery::index_for(const std::string& model_id, int model_version) const {
  auto it = indexes_.find(model_key(model_id, model_version));
  return it == indexes_.end() ? nullptr : it->second.get();
}

std::shared_ptr<Gallery::Eligibility> Gallery::cached_eligibility(const std::string& purpose, int64_t generation,
                                                                  const std::string& now) const {
  auto it = eligibility_.find(purpose);
  if (it == eligibility_.end()) return nullptr;
  const Eligibility& c = *it->second;
  // A clock that went back (tests set it) could make an expired basis current again.
  if (c.generation == generation && now >= c.computed_at && (c.valid_until.empty() || now < c.valid_until))
    return it->second;
  return nullptr;
}

void Gallery::remember_eligibility(const std::string& purpose, std::shared_ptr<Eligibility> e) {
  if (eligibility_.size() >= 64) eligibility_.clear();  // purposes are few; bound it anyway
  eligibility_[purpose] = std::move(e);
}

void Gallery::forget_eligibility() { eligibility_.clear(); }

int64_t Gallery::eligible_templates(Eligibility& e) const {
  if (e.templates_at != version_) {
    e.templates = 0;
    for (int64_t sid : e.subjects)
      if (auto it = subjects_.find(sid); it != subjects_.end()) e.templates += static_cast<int64_t>(it->second.faces.size());
    e.templates_at = version_;
  }
  return e.templates;
}

}  // namespace fv::service
