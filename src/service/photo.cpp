#include "service/photo.h"

#include "image/decode.h"
#include "vault/crypto.h"

namespace fv::service {
namespace {

void report(const WipeHook& on_wipe, WipeKind kind, size_t bytes) {
  if (on_wipe) on_wipe(kind, bytes);
}

// Zeroes the decoded pixels when the analysis is over, whatever its outcome.
struct PixelWipe {
  cv::Mat& m;
  const WipeHook& on_wipe;
  ~PixelWipe() {
    if (!m.data) return;
    size_t n = 0;
    if (m.isContinuous()) {
      n = m.total() * m.elemSize();
      vault::wipe(m.data, n);
    } else {
      for (int r = 0; r < m.rows; ++r) {
        vault::wipe(m.ptr(r), m.cols * m.elemSize());
        n += m.cols * m.elemSize();
      }
    }
    report(on_wipe, WipeKind::kDecodedPixels, n);
  }
};

}  // namespace

void Upload::wipe() {
  if (wiped_) return;
  wiped_ = true;
  const size_t n = bytes_.size();
  vault::wipe(bytes_);
  report(*on_wipe_, WipeKind::kUploadedBytes, n);
}

Photo::~Photo() {
  for (auto& f : faces_)
    if (f.face_template) {
      const size_t n = f.face_template->values.size() * sizeof(float);
      vault::wipe(f.face_template->values);
      report(*on_wipe_, WipeKind::kFaceTemplates, n);
    }
  // kept_ wipes itself (reported as uploaded bytes).
}

Result<std::unique_ptr<Photo>> Photo::analyze(PipelinePool& pool, Upload upload, const PhotoOptions& options,
                                              const WipeHook& on_wipe) {
  std::unique_ptr<Photo> photo(new Photo(on_wipe));
  photo->byte_count_ = upload.bytes().size();
  if (options.hash) photo->sha256_ = vault::sha256_hex(upload.bytes());
  auto img = image::decode_image(upload.bytes());
  if (options.keep_bytes && img.is_ok()) photo->kept_.emplace(std::move(upload));
  else upload.wipe();
  if (!img.is_ok()) return img.status();
  PixelWipe pixel_wipe{img->rgb, on_wipe};
  photo->width_ = img->rgb.cols;
  photo->height_ = img->rgb.rows;
  photo->format_ = img->format;
  FV_ASSIGN_OR_RETURN(auto lease, pool.acquire());
  FV_ASSIGN_OR_RETURN(photo->faces_, lease->analyze(img->rgb, options.embed));
  return photo;
}

}  // namespace fv::service
