// The in-memory search gallery: one index per embedder model ("model/version": templates of
// different models never compare), who owns each face (subject, lawful basis), and who a
// purpose may search (eligibility, cached per purpose). It is a cache of the vault: built from
// rows handed to it (a callback, so tests build one without a vault on disk), kept current by
// online adds while nobody else changes the vault, and rebuilt when the vault's gallery
// generation moved. The index holds the only in-memory copy of the templates (quantized);
// the floats handed in are wiped once added.
//
// Not thread-safe: the service enters it under its one mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "face/types.h"
#include "index/vector_index.h"

namespace fv::service {

struct GalleryOptions {
  std::string index_kind = "auto";  // auto | exact | ivf | hnsw (vault config index_kind)
  size_t ann_min_size = 16000000;   // auto: IVF from this many templates of a model on
  int threads = 1;
  // Where ANN indexes keep their sealed re-rank copy ("search-index-<pid>-<n>.rerank").
  std::filesystem::path store_dir;
};

// Whose a template is.
struct FaceIdentity {
  int64_t face_id = 0, subject_id = 0, basis_id = 0;
  std::string subject_uid, subject_ref;
};

// One template handed to the gallery by a load.
struct GalleryRow {
  FaceIdentity who;
  face::FaceTemplate tmpl;
};

struct SubjectHit {
  double similarity = 0;
  int64_t face_id = 0;
};

class Gallery {
 public:
  // Calls `sink` for every template of the vault, ordered by subject; stops at an error.
  using RowSource = std::function<Status(const std::function<Status(GalleryRow&)>& sink)>;
  // Templates per model key: decides each index's kind before the first row is read.
  using ModelTotals = std::map<std::string, size_t>;

  struct FaceOwner {
    int64_t subject_id = 0;
    std::string model_key;
    int64_t basis_id = 0;  // the lawful basis the template was collected under
  };
  struct SubjectInfo {
    std::string uid, ref;
    std::vector<int64_t> faces;
  };
  // Who a search for one purpose may return: the bases in force that cover it and their
  // subjects. Valid while the vault's eligibility generation is unchanged and the clock is
  // before the earliest expiry or retention end among them.
  struct Eligibility {
    std::unordered_set<int64_t> subjects, bases;
    int64_t generation = -1;
    std::string computed_at, valid_until;  // valid_until empty: nothing in it expires
    int64_t templates = 0;                 // the subjects' templates (the N of FPIR) ...
    uint64_t templates_at = ~uint64_t{0};  // ... as of this gallery version
  };

  explicit Gallery(GalleryOptions options);
  ~Gallery();

  static std::string model_key(const std::string& model_id, int version);

  bool loaded() const { return loaded_; }
  int64_t generation() const { return generation_; }  // the vault generation the indexes reflect

  // Rebuilds every index from `rows` (streamed in chunks: a large gallery never exists as
  // floats in memory all at once). Any failure leaves the gallery dropped.
  Status load(int64_t generation, const ModelTotals& totals, const RowSource& rows);
  void drop();  // index buffers zero themselves when freed
  // After a committed enrollment: `generation` is the vault's after it. When nobody else
  // changed the vault since the load (generation is ours + 1) the template joins the index
  // now; otherwise (or when the add fails) the gallery is dropped and the next search
  // rebuilds it. Does nothing while not loaded.
  void add_enrolled(int64_t generation, const FaceIdentity& who, const face::FaceTemplate& tmpl);
  // Erasure: the subject's templates leave the index physically (VectorIndex::remove
  // overwrites them before it returns); there is no tombstone. Returns how many left.
  Result<size_t> forget_subject(int64_t subject_id);
  // How many of the subject's templates in the index were collected under `basis_id` (0 while
  // not loaded): what a withdrawal or lapse of that basis takes out.
  size_t templates_of_basis(int64_t subject_id, int64_t basis_id) const;

  // Subjects scoring >= threshold, best face each: at least k_subjects of them when there are
  // as many (SIZE_MAX: every one); the caller keeps the k best. Subjects have several faces,
  // so the index is asked for k × (most faces any subject has);
  // a search for everyone above a threshold widens until the list ends below it. When the
  // index's re-rank file turns out damaged, `rebuild` (which reloads from the vault) runs
  // once and the search is repeated.
  Result<std::map<int64_t, SubjectHit>> search(const face::FaceTemplate& probe, size_t k_subjects, double threshold,
                                               const index::IdFilter* filter, const std::function<Status()>& rebuild);

  const FaceOwner* owner(int64_t face_id) const;
  const SubjectInfo* subject(int64_t subject_id) const;
  size_t size() const;  // templates in the indexes
  // Templates the loaded gallery holds (0 while not loaded): safe to read from any thread, for
  // /metrics, which must not wait for a use case's lock.
  size_t held() const { return held_.load(std::memory_order_relaxed); }
  const index::VectorIndex* index_for(const std::string& model_id, int model_version) const;

  // The cached eligibility of a purpose, or null when absent or stale.
  std::shared_ptr<Eligibility> cached_eligibility(const std::string& purpose, int64_t generation,
                                                  const std::string& now) const;
  void remember_eligibility(const std::string& purpose, std::shared_ptr<Eligibility> e);
  void forget_eligibility();
  // The eligible subjects' templates in the gallery (recounted when the gallery changed).
  int64_t eligible_templates(Eligibility& e) const;

 private:
  GalleryOptions options_;
  std::map<std::string, std::unique_ptr<index::VectorIndex>> indexes_;  // by model key
  std::unordered_map<int64_t, FaceOwner> face_owner_;
  std::unordered_map<int64_t, SubjectInfo> subjects_;
  size_t max_faces_per_subject_ = 1;
  bool loaded_ = false;
  std::atomic<size_t> held_{0};
  int64_t generation_ = -1;
  uint64_t version_ = 0;  // bumped by every change to subjects_ / face_owner_
  std::map<std::string, std::shared_ptr<Eligibility>> eligibility_;  // by purpose
};

}  // namespace fv::service
