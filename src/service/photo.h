// Photos handed to the service: decoding and analysis on a leased pipeline, and the one place
// where what a photo leaves in memory is wiped — the uploaded bytes (as soon as they are
// decoded, or when an Upload goes unused: a refusal before any analysis), the decoded pixels
// (as soon as the pipeline is done with them), every face's template and aligned crop (when
// the Photo goes, on every path, refusals included). Each wipe is reported to
// ServiceOptions::on_wipe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "face/liveness.h"
#include "face/types.h"
#include "service/pipeline_pool.h"
#include "service/service.h"

namespace fv::service {

using WipeHook = std::function<void(WipeKind, size_t bytes)>;

// Photo bytes as received; zeroed when it goes unless wiped before.
class Upload {
 public:
  Upload(std::vector<uint8_t> bytes, const WipeHook& on_wipe) : bytes_(std::move(bytes)), on_wipe_(&on_wipe) {}
  Upload(Upload&& o) noexcept : bytes_(std::move(o.bytes_)), on_wipe_(o.on_wipe_), wiped_(o.wiped_) { o.wiped_ = true; }
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  ~Upload() { wipe(); }

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  void wipe();
  // Hands the bytes on to a use case that wipes them itself (an adapter holding a photo while
  // it reads the rest of a request); nothing is wiped or reported here then.
  std::vector<uint8_t> release() {
    wiped_ = true;
    std::vector<uint8_t> out = std::move(bytes_);
    bytes_.clear();
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
  const WipeHook* on_wipe_;
  bool wiped_ = false;
};

struct PhotoOptions {
  bool embed = true;        // compute templates
  bool keep_bytes = false;  // keep the uploaded bytes (enrollment --keep-image) until the Photo goes
  bool hash = false;        // SHA-256 of the bytes (enrollment's provenance, a review case's probe)
  // Keep, per face, a JPEG of the face aligned on its 5 points with some margin (kCropSize²):
  // what a reviewer compares (a review case's probe crop, an enrolled face's reference crop).
  bool crops = false;
  // Score the face 1:1 verification compares (face::verification_face; needs embed) for a
  // presentation attack while the pixels are held (Photo::liveness()). Null: not scored.
  face::LivenessChecker* liveness = nullptr;
};

inline constexpr int kCropSize = 160;

// A photo decoded and analyzed. Its faces' templates (and kept bytes) are wiped when it goes.
class Photo {
 public:
  ~Photo();
  Photo(const Photo&) = delete;
  Photo& operator=(const Photo&) = delete;

  std::vector<face::Face>& faces() { return faces_; }
  const std::vector<face::Face>& faces() const { return faces_; }
  int width() const { return width_; }
  int height() const { return height_; }
  const std::string& format() const { return format_; }
  const std::string& sha256() const { return sha256_; }
  size_t byte_count() const { return byte_count_; }
  const std::vector<uint8_t>* kept_bytes() const { return kept_ ? &kept_->bytes() : nullptr; }
  // The aligned crop (JPEG) of face i, when PhotoOptions::crops; null otherwise.
  const std::vector<uint8_t>* crop(size_t i) const {
    return i < crops_.size() && !crops_[i].empty() ? &crops_[i] : nullptr;
  }
  // The verification face's liveness, when PhotoOptions::liveness and the photo has one.
  const std::optional<face::LivenessScore>& liveness() const { return liveness_; }

  // Decodes the upload (and wipes it, unless kept), analyzes it on a pipeline leased from
  // `pool`, and wipes the pixels. A photo that cannot be decoded is kCorruptData/kUnsupported.
  static Result<std::unique_ptr<Photo>> analyze(PipelinePool& pool, Upload upload, const PhotoOptions& options,
                                                const WipeHook& on_wipe);

 private:
  explicit Photo(const WipeHook& on_wipe) : on_wipe_(&on_wipe) {}

  std::vector<face::Face> faces_;
  int width_ = 0, height_ = 0;
  std::string format_, sha256_;
  size_t byte_count_ = 0;
  std::optional<Upload> kept_;
  std::vector<std::vector<uint8_t>> crops_;  // per face; empty when not kept
  std::optional<face::LivenessScore> liveness_;
  const WipeHook* on_wipe_;
};

}  // namespace fv::service
